"""Nearest-driver dispatch with offers: accept, decline, lapse, and races for a driver.

A stack of its own without simulated drivers: each test brings drivers on shift through the driver
API at chosen spots around Bites n Bytes (San Jose), answers their offers itself, and ends the
shifts of those left waiting so that the next test starts with an empty pool.
"""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from foodorder import geo, introspection
from foodorder.models import Location, Status, epoch_ms
from tests.integration.conftest import running_stack, stack_settings
from tests.integration.test_unhappy_paths import Party, assert_delivered_and_paid, party_on

BITES_N_BYTES = Location(lat=37.3318, long=-121.8883)


def spot(north_m: float) -> dict[str, float]:
    """A point `north_m` metres north of the restaurant."""
    return dict(geo.offset(BITES_N_BYTES, north_m, 0).model_dump(mode="json"))


class Dispatch(Party):
    """A Party whose drivers' shifts end after each test."""

    def __init__(self, party: Party) -> None:
        self.api, self.client = party.api, party.client
        self.on_duty: list[str] = []

    def on_shift(self, driver_id: str, north_m: float) -> None:
        shift = self.driver(driver_id, "availability", json={"location": spot(north_m)})
        assert shift == {"region": "san-jose"}
        self.on_duty.append(driver_id)

    def answer(self, driver_id: str, offer_id: str, verb: str) -> Any:
        return self.api.request(
            "POST", f"/api/v1/drivers/{driver_id}/offers/{offer_id}/{verb}", key="dev-driver-key"
        )

    def status_of(self, driver_id: str) -> Any:
        return self.client.state("driver-digital-twin", driver_id, "driver-status")

    def end_shifts(self) -> None:
        for driver_id in self.on_duty:
            if self.status_of(driver_id) == "WAITING_FOR_WORK":
                self.driver(driver_id, "availability", json={"available": False})
        self.on_duty = []


@pytest.fixture(scope="module")
def stack_party(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Party]:
    yield from party_on(
        tmp_path_factory.mktemp("offers"),
        "offers",
        offer_timeout_s=200,  # 10 s of wall time
        offer_misses_off_duty=2,
    )


@pytest.fixture
def dispatch(stack_party: Party) -> Iterator[Dispatch]:
    dispatch = Dispatch(stack_party)
    yield dispatch
    dispatch.end_shifts()


def deliver(dispatch: Dispatch, driver_id: str, ref: str) -> None:
    dispatch.api.wait_for(ref, Status.WAITING_FOR_DRIVER)
    assert dispatch.history(ref)[-1] == ("WAITING_FOR_DRIVER", f"driver {driver_id}")
    dispatch.driver(driver_id, "pickup")
    dispatch.driver(driver_id, "delivered")
    assert_delivered_and_paid(dispatch, ref)


def test_the_nearest_driver_is_offered_the_delivery_and_accepting_assigns_it(dispatch: Dispatch) -> None:
    dispatch.on_shift("far", 2_000)
    dispatch.on_shift("near", 150)
    dispatch.on_shift("middle", 600)
    ref = dispatch.order()

    offer = dispatch.offer("near")

    assert offer["delivery"]["orderId"] == f"dev-provider:{ref}"
    assert offer["region"] == "san-jose"
    assert 140 <= offer["distanceM"] <= 160
    assert dispatch.driver("far", "offers/current") == {"offer": None}
    assert dispatch.driver("middle", "offers/current") == {"offer": None}
    accepted = dispatch.answer("near", offer["offerId"], "accept")
    assert accepted.status_code == 200, accepted.text
    assert dispatch.driver("near", "offers/current") == {"offer": None}
    # The twin took the delivery as it accepted: the driver's assignment shows it at once.
    assert dispatch.driver("near", "assignment")["delivery"]["deliveryId"] == offer["delivery"]["deliveryId"]
    deliver(dispatch, "near", ref)
    assert dispatch.api.request("GET", f"/api/v1/orders/{ref}").json()["region"] == "san-jose"


def test_after_a_delivery_the_driver_is_offered_the_next_one_without_asking(dispatch: Dispatch) -> None:
    dispatch.on_shift("steady", 200)
    first = dispatch.order()
    dispatch.take_offer("steady")
    deliver(dispatch, "steady", first)

    second = dispatch.order()

    # The shift goes on after a delivery: no `availability` call in between.
    offer = dispatch.offer("steady")
    assert offer["delivery"]["orderId"] == f"dev-provider:{second}"
    dispatch.answer("steady", offer["offerId"], "accept")
    deliver(dispatch, "steady", second)
    assert dispatch.status_of("steady") == "WAITING_FOR_WORK"


def test_the_longest_idle_driver_wins_a_tie(dispatch: Dispatch) -> None:
    dispatch.on_shift("first-in", 300)
    dispatch.on_shift("second-in", 300)
    ref = dispatch.order()

    offer = dispatch.offer("first-in")

    assert dispatch.driver("second-in", "offers/current") == {"offer": None}
    dispatch.answer("first-in", offer["offerId"], "accept")
    deliver(dispatch, "first-in", ref)


def test_a_declined_offer_goes_to_the_next_nearest_driver(dispatch: Dispatch) -> None:
    dispatch.on_shift("picky", 100)
    dispatch.on_shift("next", 800)
    ref = dispatch.order()
    declined = dispatch.offer("picky")

    response = dispatch.answer("picky", declined["offerId"], "decline")

    assert response.status_code == 200, response.text
    offer = dispatch.offer("next")
    assert offer["delivery"]["deliveryId"] == declined["delivery"]["deliveryId"]
    assert offer["offerId"] != declined["offerId"]
    assert dispatch.answer("picky", declined["offerId"], "accept").status_code == 409
    dispatch.answer("next", offer["offerId"], "accept")
    deliver(dispatch, "next", ref)
    assert dispatch.driver("picky", "offers/current") == {"offer": None}  # not offered it again


def test_a_lapsed_offer_goes_to_the_next_nearest_and_lapsing_again_ends_the_shift(dispatch: Dispatch) -> None:
    dispatch.on_shift("sleepy", 100)
    dispatch.on_shift("awake", 900)
    first = dispatch.order()
    lapsing = dispatch.offer("sleepy")

    offer = dispatch.offer("awake", timeout_s=60)  # after the 10 s the first offer had

    assert offer["delivery"]["deliveryId"] == lapsing["delivery"]["deliveryId"]
    assert dispatch.driver("sleepy", "offers/current") == {"offer": None}
    too_late = dispatch.answer("sleepy", lapsing["offerId"], "accept")
    assert too_late.status_code == 409
    assert "not open" in too_late.json()["detail"]
    dispatch.answer("awake", offer["offerId"], "accept")
    deliver(dispatch, "awake", first)

    second = dispatch.order()
    dispatch.offer("sleepy")  # the second offer in a row they let lapse
    dispatch.client.eventually(lambda: dispatch.status_of("sleepy"), "IDLE", timeout_s=60)
    dispatch.on_shift("stand-by", 2_000)
    taken = dispatch.offer("stand-by")
    assert taken["delivery"]["orderId"] == f"dev-provider:{second}"
    dispatch.answer("stand-by", taken["offerId"], "accept")
    deliver(dispatch, "stand-by", second)


def test_two_deliveries_racing_for_one_driver_get_one_each_in_turn(dispatch: Dispatch) -> None:
    dispatch.on_shift("solo", 200)
    with ThreadPoolExecutor(2) as pool:
        refs = list(pool.map(lambda _: dispatch.order(), range(2)))

    offer = dispatch.offer("solo")
    dispatch.answer("solo", offer["offerId"], "accept")

    won = next(r for r in refs if offer["delivery"]["orderId"] == f"dev-provider:{r}")
    lost = next(r for r in refs if r != won)
    dispatch.api.wait_for(won, Status.WAITING_FOR_DRIVER)
    assert dispatch.driver("solo", "offers/current") == {"offer": None}
    assert dispatch.history(lost)[-1][0] == "SCHEDULING_DELIVERY"
    dispatch.on_shift("second", 3_000)
    other = dispatch.offer("second")
    assert other["delivery"]["orderId"] == f"dev-provider:{lost}"
    dispatch.answer("second", other["offerId"], "accept")
    deliver(dispatch, "solo", won)
    deliver(dispatch, "second", lost)


def test_a_driver_racing_two_offers_gets_only_the_open_one(dispatch: Dispatch) -> None:
    dispatch.on_shift("racer", 100)
    dispatch.on_shift("other", 1_500)
    first = dispatch.order()
    stale = dispatch.offer("racer")
    dispatch.answer("racer", stale["offerId"], "decline")
    dispatch.answer("other", dispatch.offer("other")["offerId"], "accept")
    dispatch.api.wait_for(first, Status.WAITING_FOR_DRIVER)
    second = dispatch.order()
    fresh = dispatch.offer("racer")

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda o: dispatch.answer("racer", o["offerId"], "accept"), [stale, fresh]))

    assert [a.status_code for a in answers] == [409, 200]
    deliver(dispatch, "other", first)
    deliver(dispatch, "racer", second)


def expiry_timers(dispatch: Dispatch, pending: bool) -> int:
    """The region's offer timers (`expireOffers`): those still to fire, or all of them so far."""
    query = (
        "SELECT count(*) AS n FROM sys_invocation WHERE target_service_name = 'driver-delivery-matcher'"
        " AND target_handler_name = 'expireOffers' AND target_service_key = 'san-jose'"
        + (" AND status <> 'completed'" if pending else "")
    )
    return int(introspection.query_blocking(dispatch.client.settings.admin_url, query)[0]["n"])


def test_one_timer_serves_the_open_offers_of_a_region(dispatch: Dispatch) -> None:
    dispatch.client.eventually(lambda: expiry_timers(dispatch, pending=True), 0, timeout_s=60)
    before = expiry_timers(dispatch, pending=False)
    dispatch.on_shift("one", 200)
    dispatch.on_shift("two", 1_200)
    with ThreadPoolExecutor(2) as pool:
        refs = list(pool.map(lambda _: dispatch.order(), range(2)))
    offers = {}
    for driver in ("one", "two"):
        offers[driver] = dispatch.offer(driver)
        assert dispatch.answer(driver, offers[driver]["offerId"], "accept").status_code == 200
    answered_at = epoch_ms()
    for driver, offer in offers.items():
        deliver(
            dispatch, driver, next(r for r in refs if offer["delivery"]["orderId"] == f"dev-provider:{r}")
        )

    # The timer fires at the first offer's time and, both being answered by then, is not set again
    # (on a machine so slow that the second was still open, it is set once more, for the second's).
    dispatch.client.eventually(lambda: expiry_timers(dispatch, pending=True), 0, timeout_s=60)
    first_expiry = min(offer["expires"] for offer in offers.values())
    timers = expiry_timers(dispatch, pending=False) - before
    assert timers == 1 if answered_at < first_expiry - 1_000 else timers in (1, 2)
    assert dispatch.client.state("driver-delivery-matcher", "san-jose", "expiry-due") is None


def test_an_open_offer_survives_a_full_restart_and_is_assigned_once(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path).model_copy(update={"drivers": 0})
    with running_stack(settings, "offers-restart-1") as stack:
        before = Dispatch(Party(stack))
        before.on_shift("steady", 100)
        ref = before.order()
        offer = before.offer("steady")
        before.close()

    with running_stack(settings, "offers-restart-2") as stack:
        after = Dispatch(Party(stack))
        assert after.driver("steady", "offers/current") == {"offer": offer}
        after.on_shift("newcomer", 50)  # nearer, but the delivery is already offered
        assert after.answer("steady", offer["offerId"], "accept").status_code == 200
        deliver(after, "steady", ref)
        assert after.driver("newcomer", "offers/current") == {"offer": None}
        assert after.driver("newcomer", "assignment") == {"delivery": None}
        after.close()


def twin_asked(dispatch: Dispatch, driver_id: str, handlers: tuple[str, ...]) -> int:
    """How many times the driver's twin was asked any of `handlers` so far."""
    names = ", ".join(f"'{name}'" for name in handlers)
    query = (
        "SELECT count(*) AS n FROM sys_invocation WHERE target_service_name = 'driver-digital-twin'"
        f" AND target_service_key = '{driver_id}' AND target_handler_name IN ({names})"
    )
    return int(introspection.query_blocking(dispatch.client.settings.admin_url, query)[0]["n"])


def test_a_phone_starting_its_shift_is_pushed_the_offer_its_driver_holds(dispatch: Dispatch) -> None:
    dispatch.on_shift("late-phone", 100)
    ref = dispatch.order()
    offer = dispatch.offer("late-phone")

    asked = twin_asked(dispatch, "late-phone", ("getOffer", "getAssignedDelivery"))  # by the test's polls

    # The simulated phone comes up now: its twin pushes it the open offer as it starts its shift, so the
    # phone accepts it, drives the delivery and reports it, without asking its twin for work.
    started = dispatch.client.call("driver-mobile-app/late-phone/startDriver", "san-jose")

    assert started.status_code == 200, started.text
    assert_delivered_and_paid(dispatch, ref)  # the phone drives fast: WAITING_FOR_DRIVER may be brief
    assert ("WAITING_FOR_DRIVER", "driver late-phone") in dispatch.history(ref)
    assert offer["delivery"]["orderId"] == f"dev-provider:{ref}"
    assert twin_asked(dispatch, "late-phone", ("getOffer", "getAssignedDelivery")) == asked
    # Back on shift after the delivery (the twin has them wait for work): the shift ends with the test.
    dispatch.client.eventually(lambda: dispatch.status_of("late-phone"), "WAITING_FOR_WORK", timeout_s=60)


def test_a_phone_starts_its_shift_with_one_call_to_its_twin(dispatch: Dispatch) -> None:
    started = dispatch.client.call("driver-mobile-app/new-phone/startDriver", "san-jose")

    assert started.status_code == 200, started.text
    dispatch.on_duty.append("new-phone")
    dispatch.client.eventually(lambda: dispatch.status_of("new-phone"), "WAITING_FOR_WORK", timeout_s=60)
    dispatch.client.eventually(
        lambda: dispatch.client.state("driver-digital-twin", "new-phone", "region"), "san-jose"
    )
    assert dispatch.client.state("driver-digital-twin", "new-phone", "phone-app") == "driver-mobile-app"
    # Where the phone is, where to push its work and that the driver takes work go in one call.
    assert twin_asked(dispatch, "new-phone", ("startShift",)) == 1
    separate = ("registerPhoneApp", "setDriverAvailable", "handleDriverLocationUpdateEvent")
    assert twin_asked(dispatch, "new-phone", separate) == 0
