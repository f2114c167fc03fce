"""Bad input and wrong-state calls end at once with an error that names the problem, never in a retry loop."""

from foodorder.models import Status
from tests.integration.conftest import Client, new_order


def test_unknown_restaurant_is_a_terminal_error_naming_the_field(client: Client) -> None:
    order = new_order(restaurantId="nowhere")

    response = client.call(f"order-workflow/{order['id']}/run", order)

    assert response.status_code == 400
    assert "restaurantId" in response.text and "nowhere" in response.text
    assert client.status(order["id"])["status"] == Status.REJECTED
    assert client.payments(order["id"]) == []


def test_unknown_product_is_a_terminal_error_naming_the_line(client: Client) -> None:
    order = new_order(products=[{"productId": "9999", "description": "?", "quantity": 1}])

    response = client.call(f"order-workflow/{order['id']}/run", order)

    assert response.status_code == 400
    assert "products[0].productId" in response.text


def test_malformed_order_is_refused_naming_the_field(client: Client) -> None:
    order = new_order(products=[{"productId": "1000", "description": "pizza", "quantity": 0}])

    response = client.call(f"order-workflow/{order['id']}/run", order)

    assert not response.is_success
    assert "quantity" in response.text
    assert client.status(order["id"])["status"] is None


def test_driver_twin_refuses_a_call_in_the_wrong_state(client: Client) -> None:
    response = client.call("driver-digital-twin/driver-never-started/notifyDeliveryPickUp")

    assert response.status_code == 409
    assert "expected DELIVERING" in response.text


def test_a_late_location_from_the_driver_after_delivery_changes_nothing(client: Client) -> None:
    order = new_order()
    client.submit(order)
    client.wait_for(order["id"], Status.DELIVERED)
    events = client.call(f"order-status/{order['id']}/getEvents", 0).json()
    driver_id = client.state("order-workflow", order["id"], "courier")["driverId"]

    response = client.call(
        f"driver-digital-twin/{driver_id}/handleDriverLocationUpdateEvent", {"lat": 37.33, "long": -121.89}
    )

    assert response.status_code == 200
    assert client.status(order["id"]) == {"status": "DELIVERED", "eta": 0}
    assert client.call(f"order-status/{order['id']}/getEvents", 0).json() == events
    assert client.call(f"order-status/{order['id']}/getTracking").json()["driver"] is None  # the twin let go


def test_a_missing_body_is_a_terminal_error_not_a_retry_loop(client: Client) -> None:
    for target in (
        "order-workflow/no-body/run",
        "driver-digital-twin/no-body/handleDriverLocationUpdateEvent",
    ):
        response = client.call(target)

        assert not response.is_success
        assert "request body is empty" in response.text


def test_an_order_id_that_cannot_be_a_key_is_refused(client: Client) -> None:
    order = new_order(id="a b?c")

    response = client.call("order-workflow/safe-key/run", order)

    assert not response.is_success
    assert "id" in response.text and "pattern" in response.text
