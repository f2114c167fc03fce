"""The seed's own web UI, replayed request for request on the Restate ingress, until the order is delivered.

The seed's UI places an order with a one-way send of `order-workflow/{id}/run` (product ids as
numbers, the total in dollars, two challenge headers of its own) and then polls
`order-status/{id}/get` every second with the body `{}`, as axios sends it.
"""

import time
import uuid
from typing import Any

from foodorder.models import Status
from tests.integration.conftest import Client

SEED_UI_ORDER_PRICE = 2 * 1090 + 340  # two pepperoni pizzas and chicken wings, at the seed UI's prices


def seed_ui_headers() -> dict[str, str]:
    return {
        "content-type": "application/json",
        "X-Challenge": uuid.uuid4().hex,
        "X-Challenge-Time": str(int(time.time() * 1000)),
    }


def seed_ui_order(order_id: str, total_cost: float) -> dict[str, Any]:
    return {
        "id": order_id,
        "restaurantId": "bites_n_bytes",
        "products": [
            {"productId": 1000, "description": "Pepperoni pizza", "quantity": 2},
            {"productId": 1003, "description": "Chicken wings", "quantity": 1},
        ],
        "totalCost": total_cost,
        "deliveryDelay": 0,
    }


def place(client: Client, order: dict[str, Any]) -> None:
    response = client.http.post(
        f"{client.settings.ingress_url}/order-workflow/{order['id']}/run/send",
        json=order,
        headers=seed_ui_headers(),
    )
    assert response.status_code == 202, response.text


def poll(client: Client, order_id: str) -> dict[str, Any]:
    """One of the seed UI's polls: a POST with `{}` and a JSON content type."""
    response = client.http.post(
        f"{client.settings.ingress_url}/order-status/{order_id}/get", content=b"{}", headers=seed_ui_headers()
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_the_seed_web_uis_requests_take_an_order_to_delivered(client: Client) -> None:
    order = seed_ui_order(f"seed-ui-{uuid.uuid4().hex}", total_cost=25.2)  # dollars, a float
    place(client, order)

    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 120
    while not seen or seen[-1]["status"] != Status.DELIVERED:
        assert time.monotonic() < deadline, f"never delivered; last answer {seen[-1] if seen else None}"
        seen.append(poll(client, order["id"]))
        time.sleep(0.2)

    statuses = [answer["status"] for answer in seen]
    assert "IN_DELIVERY" in statuses
    assert any(answer["eta"] for answer in seen if answer["status"] == "IN_DELIVERY")  # the UI's countdown
    assert seen[-1] == {"status": "DELIVERED", "eta": 0}
    assert client.payments(order["id"]) == ["authorize", "capture"]
    assert client.net_paid(order["id"]) == SEED_UI_ORDER_PRICE


def test_a_seed_ui_total_that_disagrees_with_the_menu_is_refused_naming_the_field(client: Client) -> None:
    order = seed_ui_order(f"seed-ui-{uuid.uuid4().hex}", total_cost=19.99)
    response = client.call(f"order-workflow/{order['id']}/run", order)

    assert response.status_code == 400, response.text
    assert "totalCost: the menu prices this order at 2520 cents ($25.20), not 19.99" in response.text
    assert poll(client, order["id"])["status"] == "REJECTED"
    assert client.payments(order["id"]) == []


def test_every_read_handler_takes_an_empty_body_or_an_empty_object(client: Client) -> None:
    order = seed_ui_order(f"seed-ui-{uuid.uuid4().hex}", total_cost=2520)  # in cents, as the API sends it
    place(client, order)
    client.wait_for(order["id"], Status.DELIVERED)
    reads = [
        f"order-status/{order['id']}/get",
        f"order-status/{order['id']}/getHistory",
        f"order-status/{order['id']}/getTracking",
        f"order-workflow/{order['id']}/getStatus",
        f"order-workflow/{order['id']}/getHistory",
        f"order-workflow/{order['id']}/getOrder",
        "driver-digital-twin/driver-1/getAssignedDelivery",
    ]
    for target in reads:
        url = f"{client.settings.ingress_url}/{target}"
        empty = client.http.post(url)
        braces = client.http.post(url, content=b"{}", headers={"content-type": "application/json"})
        assert empty.status_code == braces.status_code == 200, (target, empty.text, braces.text)
        assert empty.content == braces.content, target
    stray = client.http.post(
        f"{client.settings.ingress_url}/order-status/{order['id']}/get",
        content=b'{"orderId": 1}',
        headers={"content-type": "application/json"},
    )
    assert not stray.is_success and "send an empty body or {}" in stray.text
