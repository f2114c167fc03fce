"""Cancellation, refusal, timeouts and silent drivers: every order ends in a defined state, money right.

Two stacks of their own, without simulated drivers, so that each test decides what the kitchen and
the drivers do. In every test the payment ledger nets to zero for an order that was not delivered
and to exactly its price for one that was.
"""

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from foodorder.config import DEV_DRIVER_KEY
from foodorder.models import Status
from foodorder.stack import Stack
from tests.integration.conftest import Api, Client, api_order, running_stack, stack_settings

PRICE = 2 * 1090 + 340  # api_order(): two pepperoni pizzas and chicken wings
REFUSED_PRODUCT = "1101"  # the stalling kitchen cannot make garlic knots
NEAR_BITES_N_BYTES = {"lat": 37.3330, "long": -121.8890}


class Party:
    """A provider and its drivers on one stack, and the ledgers to audit them."""

    def __init__(self, stack: Stack) -> None:
        self.api = Api(stack.settings)
        self.client = Client(stack.settings)

    def order(self, **overrides: Any) -> str:
        order = api_order(**overrides)
        response = self.api.request("POST", "/api/v1/orders", json=order)
        assert response.status_code == 202, response.text
        ref: str = order["id"]
        return ref

    def cancel(self, ref: str, reason: str | None = None) -> Any:
        body = {"reason": reason} if reason else None
        return self.api.request("POST", f"/api/v1/orders/{ref}/cancel", json=body)

    def driver(self, driver_id: str, action: str, **kwargs: Any) -> Any:
        method = "GET" if action in ("assignment", "offers/current") else "POST"
        if action == "availability" and "json" not in kwargs:
            kwargs["json"] = {"location": NEAR_BITES_N_BYTES}  # a shift in San Jose
        response = self.api.request(
            method, f"/api/v1/drivers/{driver_id}/{action}", key=DEV_DRIVER_KEY, **kwargs
        )
        assert response.is_success, response.text
        return response.json() if response.content else None

    def hand_over(self, driver_id: str) -> None:
        """The driver delivers the order. Their shift goes on (the twin has them wait for work again,
        which ending it checks); it ends here, so that the next test's drivers get its offers."""
        self.driver(driver_id, "delivered")
        self.driver(driver_id, "availability", json={"available": False})

    def offer(self, driver_id: str, timeout_s: float = 60) -> dict[str, Any]:
        """Wait until the driver is offered a delivery; the offer."""
        deadline = time.monotonic() + timeout_s
        while (offer := self.driver(driver_id, "offers/current")["offer"]) is None:
            assert time.monotonic() < deadline, f"{driver_id} was offered nothing"
            time.sleep(0.05)
        return dict(offer)

    def take_offer(self, driver_id: str) -> dict[str, Any]:
        """Wait for the driver's next offer and accept it; the offer."""
        offer = self.offer(driver_id)
        self.driver(driver_id, f"offers/{offer['offerId']}/accept")
        return offer

    def history(self, ref: str) -> list[tuple[str, str | None]]:
        view = self.api.request("GET", f"/api/v1/orders/{ref}").json()
        return [(h["status"], h["reason"]) for h in view["history"]]

    def wait_for_history(self, ref: str, entry: tuple[str, str | None], timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while entry not in self.history(ref):
            assert time.monotonic() < deadline, f"{ref} never recorded {entry}: {self.history(ref)}"
            time.sleep(0.1)

    def payments(self, ref: str) -> list[str]:
        return self.client.payments(f"dev-provider:{ref}")

    def net_paid(self, ref: str) -> float:
        return self.client.net_paid(f"dev-provider:{ref}")

    def kitchen(self, ref: str) -> list[str]:
        return [p["state"] for p in self.client.preparations(f"dev-provider:{ref}")]

    def close(self) -> None:
        self.api.http.close()
        self.client.http.close()


def party_on(tmp: Path, name: str, **settings: Any) -> Iterator[Party]:
    config = stack_settings(tmp).model_copy(update={"drivers": 0, **settings})
    with running_stack(config, name) as stack:
        party = Party(stack)
        yield party
        party.close()


@pytest.fixture(scope="module")
def stalls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Party]:
    """A kitchen that never finishes (and refuses garlic knots) and a payment provider that is slow."""
    yield from party_on(
        tmp_path_factory.mktemp("stalls"),
        "stalls",
        preparation_s=100_000,
        restaurant_timeout_s=100,  # 5 s of wall time at the tests' time scale
        payment_latency_s=1.5,
        pos_refused_products=[REFUSED_PRODUCT],
    )


@pytest.fixture(scope="module")
def dispatch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Party]:
    """A normal kitchen and no drivers but those a test brings on shift through the driver API."""
    yield from party_on(
        tmp_path_factory.mktemp("dispatch"),
        "dispatch",
        driver_search_timeout_s=100,  # 5 s
        driver_silence_timeout_s=160,  # 8 s
    )


def assert_delivered_and_paid(party: Party, ref: str) -> None:
    """The order reached DELIVERED and its price was taken, once."""
    party.api.wait_for(ref, Status.DELIVERED)
    assert party.payments(ref) == ["authorize", "capture"]
    assert party.net_paid(ref) == PRICE


def assert_cancelled(party: Party, ref: str, reached: list[str], reason: str) -> None:
    """The order ended CANCELLED after `reached`, with `reason`, and the hold on the money was released."""
    assert party.history(ref) == [*[(s, None) for s in reached], ("CANCELLED", reason)]
    assert party.payments(ref) == ["authorize", "void"]
    assert party.net_paid(ref) == 0


# --- cancellation in each status before pickup ------------------------------------------------


def test_cancel_while_created_voids_the_authorization_as_soon_as_it_exists(stalls: Party) -> None:
    ref = stalls.order()
    stalls.api.wait_for(ref, Status.CREATED)

    response = stalls.cancel(ref, "customer changed their mind")

    assert response.status_code == 200, response.text
    assert response.json() == {"id": ref, "status": "CANCELLED"}
    assert_cancelled(stalls, ref, ["CREATED"], "customer changed their mind")
    assert stalls.kitchen(ref) == []


def test_cancel_while_scheduled_cuts_the_wait_short(stalls: Party) -> None:
    ref = stalls.order(deliveryDelay=3_600_000)
    stalls.api.wait_for(ref, Status.SCHEDULED)

    response = stalls.cancel(ref)

    assert response.status_code == 200, response.text
    assert_cancelled(stalls, ref, ["CREATED", "SCHEDULED"], "cancelled by the provider")
    assert stalls.kitchen(ref) == []


def test_cancel_while_in_preparation_stops_the_kitchen(stalls: Party) -> None:
    ref = stalls.order()
    stalls.api.wait_for(ref, Status.IN_PREPARATION)

    response = stalls.cancel(ref)

    assert response.status_code == 200, response.text
    assert_cancelled(stalls, ref, ["CREATED", "SCHEDULED", "IN_PREPARATION"], "cancelled by the provider")
    assert stalls.kitchen(ref) == ["cancelled"]


def test_cancelling_twice_is_harmless(stalls: Party) -> None:
    ref = stalls.order(deliveryDelay=3_600_000)
    stalls.api.wait_for(ref, Status.SCHEDULED)

    first, second = stalls.cancel(ref, "first"), stalls.cancel(ref, "second")

    assert first.status_code == second.status_code == 200
    assert_cancelled(stalls, ref, ["CREATED", "SCHEDULED"], "first")


def test_cancelling_an_unknown_order_is_a_404(stalls: Party) -> None:
    response = stalls.cancel("never-submitted")

    assert response.status_code == 404
    assert "never-submitted" in response.text


# --- the restaurant refuses or stalls ---------------------------------------------------------


def test_a_restaurant_refusal_rejects_the_order_and_voids_the_payment(stalls: Party) -> None:
    ref = stalls.order(products=[{"productId": REFUSED_PRODUCT, "quantity": 1}])

    stalls.api.wait_for(ref, Status.REJECTED)

    assert stalls.history(ref) == [
        ("CREATED", None),
        ("SCHEDULED", None),
        ("REJECTED", f"the restaurant refused: the kitchen cannot make product {REFUSED_PRODUCT} today"),
    ]
    assert stalls.payments(ref) == ["authorize", "void"]
    assert stalls.net_paid(ref) == 0
    late = stalls.cancel(ref)
    assert late.status_code == 409
    assert "REJECTED" in late.json()["detail"]


def test_a_restaurant_that_never_reports_ready_times_out_and_the_money_is_released(stalls: Party) -> None:
    ref = stalls.order()

    stalls.api.wait_for(ref, Status.CANCELLED, timeout_s=60)

    assert_cancelled(
        stalls,
        ref,
        ["CREATED", "SCHEDULED", "IN_PREPARATION"],
        "the restaurant did not report the order ready in time",
    )
    assert stalls.kitchen(ref) == ["cancelled"]


# --- drivers ----------------------------------------------------------------------------------


def test_cancel_while_scheduling_delivery_withdraws_the_driver_request(dispatch: Party) -> None:
    ref = dispatch.order()
    dispatch.api.wait_for(ref, Status.SCHEDULING_DELIVERY)

    response = dispatch.cancel(ref)

    assert response.status_code == 200, response.text
    assert_cancelled(
        dispatch,
        ref,
        ["CREATED", "SCHEDULED", "IN_PREPARATION", "SCHEDULING_DELIVERY"],
        "cancelled by the provider",
    )
    matcher = dispatch.client
    matcher.eventually(lambda: matcher.state("driver-delivery-matcher", "san-jose", "pending-deliveries"), [])
    dispatch.driver("late-driver", "availability")
    assert dispatch.driver("late-driver", "assignment") == {"delivery": None}
    dispatch.driver("late-driver", "availability", json={"available": False})


def test_no_driver_found_in_time_cancels_the_order(dispatch: Party) -> None:
    ref = dispatch.order()

    dispatch.api.wait_for(ref, Status.CANCELLED, timeout_s=60)

    assert_cancelled(
        dispatch,
        ref,
        ["CREATED", "SCHEDULED", "IN_PREPARATION", "SCHEDULING_DELIVERY"],
        "no driver was found in time",
    )


def test_cancel_while_waiting_for_driver_releases_the_driver_to_the_next_order(dispatch: Party) -> None:
    dispatch.driver("driver-a", "availability")
    cancelled = dispatch.order()
    dispatch.take_offer("driver-a")
    dispatch.api.wait_for(cancelled, Status.WAITING_FOR_DRIVER)
    assert dispatch.driver("driver-a", "assignment")["delivery"] is not None

    response = dispatch.cancel(cancelled)

    assert response.status_code == 200, response.text
    assert dispatch.history(cancelled)[-2:] == [
        ("WAITING_FOR_DRIVER", "driver driver-a"),
        ("CANCELLED", "cancelled by the provider"),
    ]
    assert dispatch.payments(cancelled) == ["authorize", "void"]
    assert dispatch.net_paid(cancelled) == 0
    late_pickup = dispatch.api.request("POST", "/api/v1/drivers/driver-a/pickup", key=DEV_DRIVER_KEY)
    assert late_pickup.status_code == 409

    # The released driver takes the next order and delivers it: that one is paid in full.
    delivered = dispatch.order()
    dispatch.take_offer("driver-a")
    dispatch.api.wait_for(delivered, Status.WAITING_FOR_DRIVER)
    assert dispatch.history(delivered)[-1] == ("WAITING_FOR_DRIVER", "driver driver-a")
    dispatch.driver("driver-a", "pickup")
    dispatch.hand_over("driver-a")
    assert_delivered_and_paid(dispatch, delivered)


def test_a_cancel_racing_the_drivers_accept_frees_the_driver_and_the_money(dispatch: Party) -> None:
    dispatch.driver("racer", "availability")
    ref = dispatch.order()
    offer = dispatch.offer("racer")
    accept = f"/api/v1/drivers/racer/offers/{offer['offerId']}/accept"

    # Whichever the matcher hears first: the accept (the order then hears of its driver as its
    # search is withdrawn, and releases them) or the withdrawal (the accept is then too late).
    with ThreadPoolExecutor(2) as both:
        accepted = both.submit(dispatch.api.request, "POST", accept, key=DEV_DRIVER_KEY)
        cancelled = both.submit(dispatch.cancel, ref)

    assert cancelled.result().status_code == 200, cancelled.result().text
    assert accepted.result().status_code in (200, 409), accepted.result().text
    dispatch.api.wait_for(ref, Status.CANCELLED)
    assert dispatch.history(ref)[-1] == ("CANCELLED", "cancelled by the provider")
    assert dispatch.payments(ref) == ["authorize", "void"]
    assert dispatch.driver("racer", "assignment") == {"delivery": None}
    dispatch.driver("racer", "availability", json={"available": False})  # they wait for work again


def test_cancel_after_pickup_is_refused_and_the_order_is_delivered(dispatch: Party) -> None:
    dispatch.driver("driver-b", "availability")
    ref = dispatch.order()
    dispatch.take_offer("driver-b")
    dispatch.api.wait_for(ref, Status.WAITING_FOR_DRIVER)
    dispatch.driver("driver-b", "pickup")

    response = dispatch.cancel(ref)  # at once: the pickup was answered, so it stands

    assert response.status_code == 409
    assert "can no longer be cancelled: it is IN_DELIVERY" in response.json()["detail"]
    dispatch.hand_over("driver-b")
    assert_delivered_and_paid(dispatch, ref)


def test_a_silent_driver_is_replaced_and_taken_off_the_pool(dispatch: Party) -> None:
    dispatch.driver("silent-driver", "availability")
    ref = dispatch.order()
    dispatch.take_offer("silent-driver")
    dispatch.api.wait_for(ref, Status.WAITING_FOR_DRIVER)
    dispatch.driver("stand-in", "availability")
    dispatch.take_offer("stand-in")

    dispatch.wait_for_history(ref, ("WAITING_FOR_DRIVER", "driver stand-in"))

    (first, replaced, second) = dispatch.history(ref)[-3:]
    assert first == ("WAITING_FOR_DRIVER", "driver silent-driver")
    assert replaced[0] == "SCHEDULING_DELIVERY"
    # 160 s of silence at the tests' time scale: 8 s of wall time
    assert re.fullmatch(
        r"driver silent-driver was silent for (8|9|1\d) s; finding another", replaced[1] or ""
    )
    assert second == ("WAITING_FOR_DRIVER", "driver stand-in")
    assert dispatch.driver("silent-driver", "assignment") == {"delivery": None}
    dispatch.driver("stand-in", "pickup")
    dispatch.hand_over("stand-in")
    assert_delivered_and_paid(dispatch, ref)
