"""Bad input and wrong-state calls end at once with an error that names the problem, never in a retry loop."""

from foodorder.models import Status
from tests.integration.conftest import Client, new_order


def test_unknown_restaurant_is_a_terminal_error_naming_the_field(client: Client) -> None:
    order = new_order(restaurantId="nowhere")

    response = client.call(f"order-workflow/{order['id']}/run", order)

    assert response.status_code == 400
    assert "restaurantId" in response.text and "nowhere" in response.text
    assert client.status(order["id"])["status"] == Status.REJECTED
    assert client.ledger(order["id"]) == []


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


def test_a_late_location_event_for_a_finished_delivery_is_ignored(client: Client) -> None:
    response = client.call(
        "delivery-manager/no-such-delivery/handleDriverLocationUpdate", {"lat": 37.33, "long": -121.89}
    )

    assert response.status_code == 200


def test_an_eta_that_is_not_a_number_is_refused(client: Client) -> None:
    response = client.call("order-status/some-order/setETA", "soon")

    assert response.status_code == 400
    assert "eta" in response.text
