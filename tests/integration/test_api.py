"""The public API: orders from submission to DELIVERED, live events, idempotency and isolation."""

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from foodorder.models import MAX_DELAY_MS, Status
from tests.integration.conftest import OTHER_PROVIDER_KEY, Api, api_order
from tests.integration.test_order_flow import DELIVERED_SEQUENCE

PRICE = 2 * 1090 + 340  # two pepperoni pizzas and chicken wings


def test_an_order_is_priced_from_the_menu_and_delivered(api: Api) -> None:
    order = api_order()

    accepted = api.request("POST", "/api/v1/orders", json=order)

    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert body["id"] == order["id"]
    assert body["links"]["self"] == f"/api/v1/orders/{order['id']}"

    in_delivery = api.wait_for(order["id"], Status.IN_DELIVERY)
    assert in_delivery["driver"]["id"].startswith("driver-")
    assert datetime.fromisoformat(in_delivery["eta"]) > datetime.fromisoformat(
        in_delivery["history"][0]["at"]
    )

    view = api.wait_for(order["id"], Status.DELIVERED)
    assert [h["status"] for h in view["history"]] == DELIVERED_SEQUENCE
    assert view["totalCost"] == PRICE
    assert [(i["productId"], i["quantity"], i["unitPrice"]) for i in view["items"]] == [
        ("1000", 2, 1090),
        ("1003", 1, 340),
    ]
    assert view["eta"] is None and view["driver"] is None


def test_the_event_stream_follows_the_order_to_delivered_and_resumes_after_a_reconnect(api: Api) -> None:
    order = api_order(restaurantId="mcstate", products=[{"productId": "1300", "quantity": 3}])
    assert api.request("POST", "/api/v1/orders", json=order).status_code == 202

    first = api.events(order["id"], limit=3)
    rest = api.events(order["id"], last_event_id=first[-1]["id"])

    events = first + rest
    ids = [tuple(int(n) for n in e["id"].split(".")) for e in events]
    # `<status>.<tracking>`: each event moves one of them on; positions a stream missed were replaced.
    assert ids == sorted(set(ids))
    assert [e["data"]["status"] for e in events if e["event"] == "status"] == DELIVERED_SEQUENCE
    assert events[-1]["data"]["status"] == "DELIVERED"
    driver_points = {
        (e["data"]["driver"]["location"]["lat"], e["data"]["driver"]["location"]["long"])
        for e in events
        if e["event"] == "driver"
    }
    assert len(driver_points) >= 2


def test_submitting_the_same_order_again_is_idempotent_and_a_different_one_conflicts(api: Api) -> None:
    order = api_order()
    first = api.request("POST", "/api/v1/orders", json=order)
    again = api.request("POST", "/api/v1/orders", json=order)
    changed = api.request(
        "POST", "/api/v1/orders", json=order | {"products": [{"productId": "1001", "quantity": 1}]}
    )

    assert first.status_code == 202
    assert again.status_code == 200 and again.json()["id"] == order["id"]
    assert changed.status_code == 409
    assert "different" in changed.json()["detail"]


def test_an_order_is_found_right_after_its_202(api: Api) -> None:
    """The 202 comes before the workflow stored the order: reads in that window still find it."""
    orders = [api_order(deliveryDelay=MAX_DELAY_MS) for _ in range(20)]

    def submit_then_read(order: dict[str, Any]) -> tuple[int, int, str, int]:
        accepted = api.request("POST", "/api/v1/orders", json=order)
        view = api.request("GET", f"/api/v1/orders/{order['id']}")
        again = api.request("POST", "/api/v1/orders", json=order)
        return accepted.status_code, view.status_code, view.json().get("id"), again.status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(submit_then_read, orders))

    assert answers == [(202, 200, order["id"], 200) for order in orders]


def test_a_provider_sees_only_its_own_orders(api: Api) -> None:
    order = api_order()
    assert api.request("POST", "/api/v1/orders", json=order).status_code == 202

    for path in (f"/api/v1/orders/{order['id']}", f"/api/v1/orders/{order['id']}/events"):
        response = api.request("GET", path, key=OTHER_PROVIDER_KEY)
        assert response.status_code == 404, path

    # The other provider may use the same reference for an order of its own.
    theirs = api.request(
        "POST", "/api/v1/orders", key=OTHER_PROVIDER_KEY, json=order | {"restaurantId": "mcstate"}
    )
    assert theirs.status_code == 202
    assert api.request("GET", f"/api/v1/orders/{order['id']}").json()["restaurantId"] == "bites_n_bytes"


def test_the_catalog_lists_restaurants_and_menus(api: Api) -> None:
    restaurants = api.request("GET", "/api/v1/restaurants", key=None).json()
    assert {r["id"] for r in restaurants} >= {"bites_n_bytes", "snack_in_the_box", "mcstate"}
    menu = api.request("GET", "/api/v1/restaurants/mcstate/menu", key=None).json()
    assert {"id": "1002", "name": "Cheese burger", "price": 850, "category": "burgers"} in menu
    assert api.request("GET", "/api/v1/restaurants/nowhere/menu", key=None).status_code == 404


def test_health_and_readiness(api: Api) -> None:
    assert api.request("GET", "/healthz", key=None).json() == {"status": "ok"}
    assert api.request("GET", "/readyz", key=None).json() == {"status": "ready"}
    assert api.request("GET", "/openapi.json", key=None).json()["info"]["title"] == "foodorder public API"
