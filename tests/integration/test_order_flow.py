"""Orders through the real stack, as the seed describes them, seen through order-status and the ledgers."""

import time
from concurrent.futures import ThreadPoolExecutor

from foodorder import introspection
from foodorder.models import Status, epoch_ms
from tests.integration.conftest import Client, new_order

PEPPERONI = 1090  # cents, at every demo restaurant (the seed web UI's price)
DELIVERED_SEQUENCE = [
    "CREATED",
    "SCHEDULED",
    "IN_PREPARATION",
    "SCHEDULING_DELIVERY",
    "WAITING_FOR_DRIVER",
    "IN_DELIVERY",
    "DELIVERED",
]


def test_order_is_delivered_through_every_status_with_a_live_eta(client: Client) -> None:
    order = new_order()
    submitted = epoch_ms()
    client.submit(order)

    seen = client.wait_for(order["id"], Status.DELIVERED)

    history = client.history(order["id"])
    assert [entry["status"] for entry in history] == DELIVERED_SEQUENCE
    times = [entry["at"] for entry in history]
    assert times == sorted(times)
    assert submitted <= times[0] and times[-1] <= epoch_ms(), (
        "every status is timed between submission and now"
    )
    etas_in_delivery = {answer["eta"] for answer in seen if answer["status"] == "IN_DELIVERY"}
    assert len(etas_in_delivery) >= 2, f"the ETA did not move during delivery: {etas_in_delivery}"
    assert all(eta >= 0 for eta in etas_in_delivery)
    assert seen[-1]["eta"] == 0

    assert client.payments(order["id"]) == ["authorize", "capture"]
    assert client.net_paid(order["id"]) == 2 * PEPPERONI
    assert len(client.preparations(order["id"])) == 1


def test_declined_payment_rejects_the_order_and_nothing_is_prepared(client: Client) -> None:
    pizzas = int(client.settings.payment_decline_above // PEPPERONI) + 1
    order = new_order(
        products=[{"productId": "1000", "description": "Pepperoni pizza", "quantity": pizzas}],
        totalCost=pizzas * PEPPERONI,
    )
    client.submit(order)

    client.wait_for(order["id"], Status.REJECTED, timeout_s=30)

    assert [(e["status"], e["reason"]) for e in client.history(order["id"])] == [
        ("CREATED", None),
        ("REJECTED", "payment declined"),
    ]
    assert client.payments(order["id"]) == ["authorize declined"]
    assert client.net_paid(order["id"]) == 0
    assert client.preparations(order["id"]) == []


def test_more_orders_than_drivers_are_all_delivered_and_charged_once(client: Client) -> None:
    orders = [
        new_order(restaurantId=r)
        for r in ("bites_n_bytes", "snack_in_the_box", "mcstate", "mcstate", "bites_n_bytes")
    ]
    for order in orders:
        client.submit(order)

    with ThreadPoolExecutor(len(orders)) as pool:
        list(pool.map(lambda o: client.wait_for(o["id"], Status.DELIVERED, timeout_s=180), orders))

    for order in orders:
        assert client.payments(order["id"]) == ["authorize", "capture"]
        assert len(client.preparations(order["id"])) == 1


def test_delivery_delay_holds_the_order_in_scheduled(client: Client) -> None:
    delay_ms = 20_000  # 1 s of wall time at the tests' time scale of 20
    order = new_order(deliveryDelay=delay_ms)
    started = time.monotonic()
    client.submit(order)

    client.wait_for(order["id"], Status.SCHEDULED, timeout_s=10)
    client.wait_for(order["id"], Status.IN_PREPARATION, timeout_s=30)

    assert time.monotonic() - started >= delay_ms / 1000 / client.settings.time_scale


def test_the_workflow_keeps_every_status_and_order_status_nothing_of_an_unwatched_order(
    client: Client,
) -> None:
    order = new_order(restaurantId="snack_in_the_box")
    client.submit(order)
    client.wait_for(order["id"], Status.DELIVERED)

    statuses = client.call(f"order-workflow/{order['id']}/waitForStatus", 0).json()
    response = client.call(f"order-status/{order['id']}/getEvents", 0)
    assert response.status_code == 200, response.text

    assert [e["seq"] for e in statuses] == list(range(1, len(DELIVERED_SEQUENCE) + 1))
    assert [e["status"] for e in statuses] == DELIVERED_SEQUENCE
    assert [h["status"] for h in client.history(order["id"])] == DELIVERED_SEQUENCE
    # The first estimate comes with IN_PREPARATION; the driver stays with the workflow and the twin.
    preparing = statuses[DELIVERED_SEQUENCE.index("IN_PREPARATION")]
    assert preparing["arrival"] > preparing["at"]
    assert all(e["arrival"] is None for e in statuses if e["status"] != "IN_PREPARATION")
    assert client.state("order-workflow", order["id"], "courier")["driverId"]
    # Nobody watched: order-status was told nothing, and keeps nothing of the order.
    assert response.json() == []
    kept = (
        "SELECT count(*) AS n FROM state"
        f" WHERE service_name = 'order-status' AND service_key = '{order['id']}'"
    )
    assert introspection.query_blocking(client.settings.admin_url, kept)[0]["n"] == 0
    # A reader that saw every status of an ended order is answered its end at once, not made to wait.
    assert client.call(f"order-workflow/{order['id']}/waitForStatus", len(statuses)).json() == statuses[-1:]
    query = f"SELECT sum(length(value)) AS bytes FROM state WHERE service_key = '{order['id']}'"
    assert introspection.query_blocking(client.settings.admin_url, query)[0]["bytes"] <= 4096
