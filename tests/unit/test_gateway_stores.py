"""The gateway's copy of a store's state: read at most once a second, once for every request that
finds it expired at the same time."""

import asyncio
from typing import Any, cast

from foodorder.gateway.restate import Ingress
from foodorder.gateway.stores import StoreStates
from foodorder.models import StoreState


class CountingIngress:
    """Answers `store-state/get` with a store that never set anything, after a moment; counts the reads."""

    def __init__(self) -> None:
        self.reads = 0

    async def call(self, service: str, key: str, handler: str, body: Any = None) -> Any:
        assert (service, handler) == ("store-state", "get")
        self.reads += 1
        await asyncio.sleep(0.05)
        return {}


def test_requests_that_find_the_copy_expired_together_wait_for_one_read() -> None:
    ingress = CountingIngress()
    stores = StoreStates(cast(Ingress, ingress))

    async def many() -> list[StoreState]:
        first = await asyncio.gather(*(stores.get("mcstate") for _ in range(50)))
        again = await stores.get("mcstate")  # within the second: the copy
        return [*first, again]

    states = asyncio.run(many())

    assert states == [StoreState()] * 51
    assert ingress.reads == 1
