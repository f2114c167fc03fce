"""A store's state judges an order: paused (until a time), closed by its hours, items snoozed."""

from datetime import UTC, datetime

from foodorder.models import (
    Hours,
    OpeningHours,
    RejectionReason,
    Snooze,
    StoreState,
    StoreStatus,
    StoreStatusUpdate,
)


def ms(text: str) -> int:
    """Epoch ms of an ISO time (UTC unless it says otherwise)."""
    moment = datetime.fromisoformat(text)
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


THURSDAY_NOON = ms("2026-11-26T12:00")


def test_a_store_that_never_set_anything_takes_every_order() -> None:
    assert StoreState().refusal(["1000"], THURSDAY_NOON) is None
    assert StoreState().state_at(THURSDAY_NOON) == StoreStatus.ONLINE


def test_a_pause_lasts_until_its_time_or_until_changed() -> None:
    until = StoreState(
        status=StoreStatusUpdate(state=StoreStatus.PAUSED, paused_until=THURSDAY_NOON + 60_000)
    )
    forever = StoreState(status=StoreStatusUpdate(state=StoreStatus.PAUSED))

    refusal = until.refusal(["1000"], THURSDAY_NOON)

    assert refusal is not None and refusal.reason_code == RejectionReason.RESTAURANT_PAUSED
    assert refusal.reason == "the restaurant is paused until 2026-11-26 12:01 UTC"
    assert until.refusal(["1000"], THURSDAY_NOON + 60_000) is None
    assert until.state_at(THURSDAY_NOON + 60_000) == StoreStatus.ONLINE
    assert forever.refusal(["1000"], THURSDAY_NOON + 10**9) is not None


def test_opening_hours_are_judged_in_the_store_time_zone_and_may_pass_midnight() -> None:
    hours = Hours(
        timezone="America/Los_Angeles",  # 12:00 UTC is 04:00 there
        hours=[OpeningHours(day="wed", opens="18:00", closes="05:00")],
    )
    store = StoreState(hours=hours)

    assert hours.open_at(THURSDAY_NOON)  # Wednesday night's opening, into Thursday
    assert not hours.open_at(THURSDAY_NOON + 3_600_000)  # 05:00 there: closed
    assert store.refusal([], THURSDAY_NOON + 3_600_000) is not None
    closed = store.refusal([], THURSDAY_NOON + 3_600_000)
    assert closed is not None and closed.reason_code == RejectionReason.KITCHEN_CLOSED


def test_snoozed_items_are_named_until_their_time() -> None:
    store = StoreState(snoozed=[Snooze(product_id="1003", until=THURSDAY_NOON + 1)])

    refusal = store.refusal(["1000", "1003"], THURSDAY_NOON)

    assert refusal is not None
    assert (refusal.reason_code, refusal.items) == (RejectionReason.ITEM_AVAILABILITY, ["1003"])
    assert store.refusal(["1000", "1003"], THURSDAY_NOON + 1) is None


def test_only_a_busy_store_adds_preparation_time() -> None:
    busy = StoreState(status=StoreStatusUpdate(state=StoreStatus.BUSY, extra_prep_minutes=15))

    assert busy.extra_prep_ms(THURSDAY_NOON) == 15 * 60_000
    assert busy.refusal(["1000"], THURSDAY_NOON) is None
    assert StoreState().extra_prep_ms(THURSDAY_NOON) == 0
