"""The gateway's copy of a store's state: read at most once a second, once for every request that
finds it expired at the same time, and answered from while it is read again."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import pytest

from foodorder.gateway import stores as stores_module
from foodorder.gateway.restate import Ingress
from foodorder.gateway.stores import STORE_STATE_STALE_S, STORE_STATE_TTL_S, StoreStates
from foodorder.models import StoreState, StoreStatus, StoreStatusUpdate

OPEN = StoreState()
PAUSED = StoreState(status=StoreStatusUpdate(state=StoreStatus.PAUSED))
T = TypeVar("T")


class Clock:
    """The cache's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class StoreStateIngress:
    """Answers `store-state/get` with `answer` (as it was when asked), or fails with `error`, once
    `gate` is open; counts the reads, and puts each outcome in `answered` as it gives it."""

    def __init__(self) -> None:
        self.reads = 0
        self.answered: asyncio.Queue[StoreState | Exception] = asyncio.Queue()
        self.answer = OPEN
        self.error: Exception | None = None
        self.gate = asyncio.Event()
        self.gate.set()

    async def call(self, service: str, key: str, handler: str, body: Any = None) -> Any:
        assert service == "store-state"
        if handler != "get":  # a change: answered at once with the new state
            return body
        self.reads += 1
        answer, error = self.answer, self.error
        await self.gate.wait()
        await asyncio.sleep(0.01)
        self.answered.put_nowait(error or answer)
        if error is not None:
            raise error
        return answer.model_dump(mode="json")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(stores_module, "monotonic", fake)
    return fake


def run(scenario: Callable[[StoreStateIngress, StoreStates], Awaitable[T]]) -> tuple[StoreStateIngress, T]:
    """Run `scenario` on a fresh cache and ingress; a scenario that hangs fails after 5 s."""

    async def main() -> tuple[StoreStateIngress, T]:
        ingress = StoreStateIngress()
        stores = StoreStates(cast(Ingress, ingress))
        result = await asyncio.wait_for(scenario(ingress, stores), 5)
        await stores.close()
        return ingress, result

    return asyncio.run(main())


def test_requests_that_find_no_copy_together_wait_for_one_read(clock: Clock) -> None:
    async def many(ingress: StoreStateIngress, stores: StoreStates) -> list[StoreState]:
        first = await asyncio.gather(*(stores.get("mcstate") for _ in range(50)))
        clock.now += STORE_STATE_TTL_S / 2
        return [*first, await stores.get("mcstate")]  # within the second: the copy

    ingress, states = run(many)

    assert states == [OPEN] * 51
    assert ingress.reads == 1


def test_an_expired_copy_answers_at_once_while_one_read_brings_the_new_state(clock: Clock) -> None:
    async def scenario(
        ingress: StoreStateIngress, stores: StoreStates
    ) -> tuple[StoreState, list[StoreState], int, StoreState]:
        first = await stores.get("mcstate")
        clock.now += STORE_STATE_TTL_S + 0.5
        ingress.answer, ingress.gate = PAUSED, asyncio.Event()  # paused through another replica
        meanwhile = [await stores.get("mcstate") for _ in range(20)]  # none of them waits
        await asyncio.sleep(0)  # the read starts
        reads_meanwhile = ingress.reads
        ingress.gate.set()
        while await ingress.answered.get() != PAUSED:  # the first read's answer is OPEN
            pass
        return first, meanwhile, reads_meanwhile, await stores.get("mcstate")

    _, (first, meanwhile, reads_meanwhile, after) = run(scenario)

    assert first == OPEN
    assert meanwhile == [OPEN] * 20
    assert reads_meanwhile == 2  # the first, and one read again for all twenty
    assert after == PAUSED


def test_a_copy_too_old_is_not_answered_from(clock: Clock) -> None:
    async def scenario(ingress: StoreStateIngress, stores: StoreStates) -> tuple[StoreState, StoreState]:
        first = await stores.get("mcstate")
        clock.now += STORE_STATE_STALE_S
        ingress.answer = PAUSED
        return first, await stores.get("mcstate")

    ingress, states = run(scenario)

    assert states == (OPEN, PAUSED)
    assert ingress.reads == 2


def test_a_read_does_not_undo_a_change_made_through_this_gateway_meanwhile(clock: Clock) -> None:
    async def scenario(ingress: StoreStateIngress, stores: StoreStates) -> StoreState:
        await stores.get("mcstate")
        clock.now += STORE_STATE_TTL_S
        ingress.gate = asyncio.Event()
        await stores.get("mcstate")
        await asyncio.sleep(0)  # a read of the open store is under way…
        await stores.change("mcstate", "pause", PAUSED.model_dump(mode="json"))  # …as it is paused here
        ingress.gate.set()
        for _ in range(2):  # the first read, then the one under way
            await ingress.answered.get()
        await asyncio.sleep(0)  # the read under way has its answer
        return await stores.get("mcstate")

    ingress, state = run(scenario)

    assert state == PAUSED
    assert ingress.reads == 2


def test_a_failed_read_keeps_the_copy_and_is_tried_again_a_second_later(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(ingress: StoreStateIngress, stores: StoreStates) -> list[tuple[StoreState, int]]:
        async def ask() -> tuple[StoreState, int]:
            state = await stores.get("mcstate")
            await asyncio.sleep(0)  # a read it started has started
            return state, ingress.reads

        seen = [await ask()]
        clock.now += STORE_STATE_TTL_S
        ingress.error = ConnectionError("the services endpoint is down")
        seen.append(await ask())
        await ingress.answered.get()  # the first read's answer
        assert isinstance(await ingress.answered.get(), ConnectionError)
        await asyncio.sleep(0)  # the failed read is done
        seen.append(await ask())  # not tried again yet
        clock.now += STORE_STATE_TTL_S
        seen.append(await ask())
        return seen

    with caplog.at_level(logging.WARNING, logger=stores_module.__name__):
        _, seen = run(scenario)

    assert [state for state, _ in seen] == [OPEN] * 4  # every request answered from the copy
    assert [reads for _, reads in seen] == [1, 2, 2, 3]
    assert "the services endpoint is down" in caplog.text


def test_without_a_copy_young_enough_a_failed_read_fails_the_request(clock: Clock) -> None:
    async def scenario(ingress: StoreStateIngress, stores: StoreStates) -> str:
        await stores.get("mcstate")
        clock.now += STORE_STATE_STALE_S
        ingress.error = ConnectionError("the services endpoint is down")
        with pytest.raises(ConnectionError) as failed:
            await stores.get("mcstate")
        return str(failed.value)

    _, message = run(scenario)

    assert message == "the services endpoint is down"
