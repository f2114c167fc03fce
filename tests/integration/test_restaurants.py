"""The restaurant's side: accept deadlines, reason codes, store state, and cancels that reach the POS.

A stack of its own without drivers: the kitchen holds orders with Margherita pizza for a person to
accept or deny through the API, refuses garlic knots, and never finishes on its own. Every
rejection carries a reason code in the API, the event stream and the history; the money is released.
"""

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from foodorder.config import DEV_RESTAURANT_KEY
from foodorder.models import Status
from foodorder.stack import Stack, wait_until
from tests.integration.conftest import running_stack, stack_settings
from tests.integration.test_unhappy_paths import Party

HELD, REFUSED, WINGS = "1100", "1101", "1003"  # Margherita pizza waits for a person; garlic knots are refused
SHOP = "bites_n_bytes"


class Kitchen(Party):
    """A provider, and the restaurant's staff using the restaurant API, on one stack."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(stack)
        self.stack = stack

    def restaurant(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.api.request(method, f"/api/v1/restaurants/{SHOP}{path}", key=DEV_RESTAURANT_KEY, **kwargs)

    def decide(self, ref: str, verdict: str, **body: Any) -> httpx.Response:
        return self.restaurant("POST", f"/orders/dev-provider:{ref}/{verdict}", json=body or None)

    def view(self) -> dict[str, Any]:
        response = self.api.request("GET", f"/api/v1/restaurants/{SHOP}", key=None)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def last(self, ref: str) -> dict[str, Any]:
        entry: dict[str, Any] = self.api.request("GET", f"/api/v1/orders/{ref}").json()["history"][-1]
        return entry

    def wait_for_kitchen(self, ref: str, wanted: list[str]) -> None:
        wait_until(lambda: self.kitchen(ref) == wanted, f"the POS to show {wanted} for {ref}", timeout_s=60)

    def cancels_at_pos(self, ref: str) -> list[dict[str, Any]]:
        response = self.client.http.get(f"{self.stack.settings.pos_url}/cancellations")
        assert response.status_code == 200, response.text
        return [c for c in response.json()["cancellations"] if c["orderId"] == f"dev-provider:{ref}"]


@pytest.fixture(scope="module")
def kitchen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kitchen]:
    settings = stack_settings(tmp_path_factory.mktemp("kitchen")).model_copy(
        update={
            "drivers": 0,
            "preparation_s": 100_000,
            "pos_held_products": [HELD],
            "pos_refused_products": [REFUSED],
            # 15 s of wall time at the tests' time scale: time enough to accept on a loaded machine
            "accept_deadline_s": 300,
        }
    )
    with running_stack(settings, "kitchen") as stack:
        party = Kitchen(stack)
        yield party
        party.close()


@pytest.fixture
def shop(kitchen: Kitchen) -> Iterator[Kitchen]:
    """The restaurant ONLINE, always open, nothing snoozed, before and after the test."""

    def reset() -> None:
        for path, body in (
            ("/status", {"state": "ONLINE"}),
            ("/hours", {"timezone": "UTC", "hours": []}),
            ("/availability", {"snoozed": []}),
        ):
            response = kitchen.restaurant("PUT", path, json=body)
            assert response.status_code == 200, response.text

    reset()
    yield kitchen
    reset()


def one(product: str) -> dict[str, Any]:
    return {"restaurantId": SHOP, "products": [{"productId": product, "quantity": 1}]}


def in_an_hour() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0).isoformat()


def assert_released(kitchen: Kitchen, ref: str) -> None:
    assert kitchen.payments(ref) == ["authorize", "void"]
    assert kitchen.net_paid(ref) == 0


# --- accepting and denying ------------------------------------------------------------------


def test_an_order_nobody_accepts_is_rejected_at_the_deadline_and_the_pos_told(kitchen: Kitchen) -> None:
    ref = kitchen.order(**one(HELD))

    view = kitchen.api.wait_for(ref, Status.REJECTED, timeout_s=90)

    assert view["history"][-1] | {"at": None} == {
        "status": "REJECTED",
        "at": None,
        "reason": "the restaurant did not accept the order in time",
        "reasonCode": "ACCEPT_DEADLINE",
        "items": None,
    }
    assert [h["status"] for h in view["history"]] == ["CREATED", "SCHEDULED", "REJECTED"]
    assert kitchen.api.events(ref)[-1]["data"]["reasonCode"] == "ACCEPT_DEADLINE"
    assert_released(kitchen, ref)
    kitchen.wait_for_kitchen(ref, ["cancelled"])
    late = kitchen.decide(ref, "accept")
    assert late.status_code == 409, late.text
    assert "REJECTED" in late.json()["detail"]


def test_a_person_accepts_a_held_order_and_it_is_prepared(kitchen: Kitchen) -> None:
    ref = kitchen.order(**one(HELD))
    kitchen.wait_for_kitchen(ref, ["held"])

    accepted = kitchen.decide(ref, "accept")

    assert accepted.status_code == 200, accepted.text
    view = kitchen.api.wait_for(ref, Status.IN_PREPARATION)
    assert view["eta"] is not None
    assert kitchen.decide(ref, "accept").status_code == 200  # accepting twice is harmless
    denied = kitchen.decide(ref, "deny", reasonCode="RESTAURANT_BUSY")
    assert denied.status_code == 409 and "accepted already" in denied.json()["detail"]
    ready = kitchen.restaurant("POST", f"/orders/dev-provider:{ref}/ready")
    assert ready.status_code == 202, ready.text
    kitchen.api.wait_for(ref, Status.SCHEDULING_DELIVERY)
    assert kitchen.cancel(ref).status_code == 200


def test_a_person_denies_an_order_naming_the_items(kitchen: Kitchen) -> None:
    ref = kitchen.order(**one(HELD))
    kitchen.wait_for_kitchen(ref, ["held"])

    denied = kitchen.decide(ref, "deny", reasonCode="ITEM_AVAILABILITY", reason="out of dough", items=[HELD])

    assert denied.status_code == 200, denied.text
    last = kitchen.api.wait_for(ref, Status.REJECTED)["history"][-1]
    assert (last["reason"], last["reasonCode"], last["items"]) == (
        "the restaurant refused: out of dough",
        "ITEM_AVAILABILITY",
        [HELD],
    )
    assert_released(kitchen, ref)
    kitchen.wait_for_kitchen(ref, ["cancelled"])


def test_a_deny_needs_a_known_reason_code(kitchen: Kitchen) -> None:
    ref = kitchen.order(**one(HELD))
    kitchen.wait_for_kitchen(ref, ["held"])

    response = kitchen.decide(ref, "deny", reasonCode="BORED")

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "reasonCode"]
    assert kitchen.cancel(ref).status_code == 200


def test_a_pos_refusal_carries_its_reason_code_and_items(kitchen: Kitchen) -> None:
    ref = kitchen.order(**one(REFUSED))

    last = kitchen.api.wait_for(ref, Status.REJECTED)["history"][-1]

    assert (last["reason"], last["reasonCode"], last["items"]) == (
        f"the restaurant refused: the kitchen cannot make product {REFUSED} today",
        "ITEM_AVAILABILITY",
        [REFUSED],
    )
    assert kitchen.api.events(ref)[-1]["data"]["items"] == [REFUSED]
    assert_released(kitchen, ref)


# --- store state ----------------------------------------------------------------------------


def test_a_paused_store_refuses_orders_until_it_is_online_again(shop: Kitchen) -> None:
    until = in_an_hour()
    paused = shop.restaurant("PUT", "/status", json={"state": "PAUSED", "until": until})
    assert paused.status_code == 200, paused.text
    assert paused.json()["state"] == "PAUSED"
    assert datetime.fromisoformat(shop.view()["pausedUntil"]) == datetime.fromisoformat(until)
    order = {"id": f"paused-{time.time_ns()}", **one(WINGS)}

    refused = shop.api.request("POST", "/api/v1/orders", json=order)

    assert refused.status_code == 409, refused.text
    assert refused.json()["reasonCode"] == "RESTAURANT_PAUSED"
    assert "paused until" in refused.json()["detail"]
    assert shop.api.request("GET", f"/api/v1/orders/{order['id']}").status_code == 404
    assert shop.restaurant("PUT", "/status", json={"state": "ONLINE"}).json()["state"] == "ONLINE"
    assert shop.api.request("POST", "/api/v1/orders", json=order).status_code == 202
    assert shop.cancel(order["id"]).status_code == 200


def test_a_closed_store_refuses_orders(shop: Kitchen) -> None:
    now = datetime.now(UTC)
    later = [(now + timedelta(hours=h)).strftime("%H:%M") for h in (2, 3)]
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[now.weekday()]
    hours = {"timezone": "UTC", "hours": [{"day": day, "opens": later[0], "closes": later[1]}]}
    assert shop.restaurant("PUT", "/hours", json=hours).status_code == 200
    assert shop.view()["open"] is False

    refused = shop.api.request(
        "POST", "/api/v1/orders", json={"id": f"closed-{time.time_ns()}", **one(WINGS)}
    )

    assert refused.status_code == 409, refused.text
    assert refused.json()["reasonCode"] == "KITCHEN_CLOSED"


def test_a_snoozed_item_is_refused_naming_it(shop: Kitchen) -> None:
    snoozed = shop.restaurant(
        "PUT", "/availability", json={"snoozed": [{"productId": WINGS, "until": in_an_hour()}]}
    )
    assert snoozed.status_code == 200, snoozed.text
    wings = next(i for i in shop.view()["availability"] if i["productId"] == WINGS)
    assert wings["available"] is False and wings["snoozedUntil"] is not None

    order = {
        "id": f"snoozed-{time.time_ns()}",
        "restaurantId": SHOP,
        "products": [{"productId": "1000", "quantity": 1}, {"productId": WINGS, "quantity": 2}],
    }
    refused = shop.api.request("POST", "/api/v1/orders", json=order)

    assert refused.status_code == 422, refused.text
    assert refused.json() | {"detail": None} == {
        "detail": None,
        "reasonCode": "ITEM_AVAILABILITY",
        "items": [WINGS],
    }


def test_store_state_input_is_checked(shop: Kitchen) -> None:
    busy_without_minutes = shop.restaurant("PUT", "/status", json={"state": "BUSY"})
    unknown_item = shop.restaurant(
        "PUT", "/availability", json={"snoozed": [{"productId": "9", "until": in_an_hour()}]}
    )
    bad_zone = shop.restaurant("PUT", "/hours", json={"timezone": "Mars/Olympus", "hours": []})
    other_key = shop.api.request(
        "PUT", "/api/v1/restaurants/bites_n_bytes/status", key="mcstate-only-key", json={"state": "ONLINE"}
    )

    assert busy_without_minutes.status_code == 422 and "extraPrepMinutes" in busy_without_minutes.text
    assert unknown_item.status_code == 422 and "no product '9'" in unknown_item.text
    assert bad_zone.status_code == 422 and "Mars/Olympus" in bad_zone.text
    assert other_key.status_code == 403


def test_the_workflow_judges_the_store_when_the_order_is_due(shop: Kitchen) -> None:
    ref = shop.order(deliveryDelay=300_000, **one(WINGS))  # due 15 s of wall time from now
    shop.api.wait_for(ref, Status.SCHEDULED)
    assert shop.restaurant("PUT", "/status", json={"state": "PAUSED"}).status_code == 200

    last = shop.api.wait_for(ref, Status.REJECTED, timeout_s=60)["history"][-1]

    assert last["reasonCode"] == "RESTAURANT_PAUSED"
    assert last["reason"] == "the restaurant is paused until further notice"
    assert_released(shop, ref)
    assert shop.kitchen(ref) == []


def test_a_busy_store_adds_its_extra_minutes_to_the_eta(shop: Kitchen) -> None:
    place = {"deliveryLocation": {"lat": 37.33, "long": -121.89}}
    normal = shop.order(**one(WINGS), **place)
    normal_eta = datetime.fromisoformat(shop.api.wait_for(normal, Status.IN_PREPARATION)["eta"])
    assert (
        shop.restaurant("PUT", "/status", json={"state": "BUSY", "extraPrepMinutes": 40}).json()["state"]
        == "BUSY"
    )
    assert shop.view()["extraPrepMinutes"] == 40

    busy = shop.order(**one(WINGS), **place)
    busy_eta = datetime.fromisoformat(shop.api.wait_for(busy, Status.IN_PREPARATION)["eta"])

    # 40 minutes at the tests' time scale (20) are 120 s of wall time; the orders came seconds apart.
    assert timedelta(seconds=120) <= busy_eta - normal_eta < timedelta(seconds=150)
    for ref in (normal, busy):
        assert shop.cancel(ref).status_code == 200


# --- a cancel reaches the POS ---------------------------------------------------------------


def test_a_cancel_reaches_the_pos_once_even_when_it_is_down_at_the_time(kitchen: Kitchen) -> None:
    ref = kitchen.order(**one(WINGS))
    kitchen.api.wait_for(ref, Status.IN_PREPARATION)
    pos = kitchen.stack.processes["pos"]
    pos.stop()

    response = kitchen.cancel(ref, "the customer moved")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "CANCELLED"
    # The money is not held for the kitchen: voided while the POS is still down.
    kitchen.client.eventually(lambda: kitchen.payments(ref), ["authorize", "void"], timeout_s=60)
    pos.start()
    wait_until(lambda: kitchen.client.http.get(f"{kitchen.stack.settings.pos_url}/healthz").is_success, "POS")
    kitchen.api.wait_for(ref, Status.CANCELLED, timeout_s=60)
    assert kitchen.last(ref)["reason"] == "the customer moved"
    assert kitchen.kitchen(ref) == ["cancelled"]
    assert [c["idempotencyKey"] for c in kitchen.cancels_at_pos(ref)] == [f"cancel-dev-provider:{ref}"]
