"""The gateway's copy of a store's state: read at most once a second, once for every request that
finds it expired at the same time, and answered from while it is read again."""

import asyncio
from typing import Any, cast

import pytest

from foodorder.gateway import stores as stores_module
from foodorder.gateway.restate import Ingress
from foodorder.gateway.stores import StoreStates
from foodorder.models import StoreState, StoreStatus, StoreStatusUpdate

OPEN = StoreState()
PAUSED = StoreState(status=StoreStatusUpdate(state=StoreStatus.PAUSED))


class StoreStateIngress:
    """Answers `store-state/get` with `answer` (as it was when asked) once `gate` is open; counts the
    reads, and puts each answer in `answered` as it gives it."""

    def __init__(self, answer: StoreState = OPEN) -> None:
        self.reads = 0
        self.answered: asyncio.Queue[StoreState] = asyncio.Queue()
        self.answer = answer
        self.gate = asyncio.Event()
        self.gate.set()

    async def call(self, service: str, key: str, handler: str, body: Any = None) -> Any:
        assert service == "store-state"
        if handler != "get":  # a change: answered at once with the new state
            return body
        self.reads += 1
        answer = self.answer
        await self.gate.wait()
        await asyncio.sleep(0.01)
        self.answered.put_nowait(answer)
        return answer.model_dump(mode="json")


def store_states(ingress: StoreStateIngress) -> StoreStates:
    return StoreStates(cast(Ingress, ingress))


def test_requests_that_find_no_copy_together_wait_for_one_read() -> None:
    ingress = StoreStateIngress()
    stores = store_states(ingress)

    async def many() -> list[StoreState]:
        first = await asyncio.gather(*(stores.get("mcstate") for _ in range(50)))
        again = await stores.get("mcstate")  # within the second: the copy
        return [*first, again]

    states = asyncio.run(many())

    assert states == [OPEN] * 51
    assert ingress.reads == 1


def test_an_expired_copy_answers_at_once_while_one_read_brings_the_new_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ingress = StoreStateIngress()
    stores = store_states(ingress)

    async def scenario() -> tuple[StoreState, list[StoreState], int, StoreState]:
        first = await stores.get("mcstate")
        monkeypatch.setattr(stores_module, "STORE_STATE_TTL_S", 0.0)  # the copy is expired from now on
        ingress.answer, ingress.gate = PAUSED, asyncio.Event()  # paused through another replica
        meanwhile = [await stores.get("mcstate") for _ in range(20)]  # none of them waits
        await asyncio.sleep(0)  # the read starts
        reads_meanwhile = ingress.reads
        ingress.gate.set()
        while await ingress.answered.get() != PAUSED:  # the first read's answer is OPEN
            pass
        return first, meanwhile, reads_meanwhile, await stores.get("mcstate")

    first, meanwhile, reads_meanwhile, after = asyncio.run(scenario())

    assert first == OPEN
    assert meanwhile == [OPEN] * 20
    assert reads_meanwhile == 2  # the first, and one read again for all twenty
    assert after == PAUSED


def test_a_copy_too_old_is_not_answered_from(monkeypatch: pytest.MonkeyPatch) -> None:
    ingress = StoreStateIngress()
    stores = store_states(ingress)

    async def scenario() -> tuple[StoreState, StoreState]:
        first = await stores.get("mcstate")
        monkeypatch.setattr(stores_module, "STORE_STATE_TTL_S", 0.0)
        monkeypatch.setattr(stores_module, "STORE_STATE_STALE_S", 0.0)
        ingress.answer = PAUSED
        return first, await stores.get("mcstate")

    assert asyncio.run(scenario()) == (OPEN, PAUSED)
    assert ingress.reads == 2


def test_a_read_does_not_undo_a_change_made_through_this_gateway_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ingress = StoreStateIngress()
    stores = store_states(ingress)

    async def scenario() -> StoreState:
        await stores.get("mcstate")
        monkeypatch.setattr(stores_module, "STORE_STATE_TTL_S", 0.0)
        ingress.gate = asyncio.Event()
        await stores.get("mcstate")
        await asyncio.sleep(0)  # a read of the open store is under way…
        monkeypatch.setattr(stores_module, "STORE_STATE_TTL_S", 60.0)
        await stores.change("mcstate", "pause", PAUSED.model_dump(mode="json"))  # …as it is paused here
        ingress.gate.set()
        for _ in range(2):  # the first read, then the one under way
            await ingress.answered.get()
        return await stores.get("mcstate")

    assert asyncio.run(scenario()) == PAUSED
    assert ingress.reads == 2
