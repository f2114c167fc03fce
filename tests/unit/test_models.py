"""The wire models speak the seed's camelCase JSON and refuse what cannot be an order."""

import pytest
from pydantic import ValidationError

from foodorder.models import Order, RejectionReason, Status, StatusChange
from foodorder.ordering.workflow import order_terms
from foodorder.state import PydanticSerde

SEED_ORDER = (
    b'{"id":"o1","restaurantId":"mcstate","products":[{"productId":"1002","description":"Cheese burger",'
    b'"quantity":1}],"totalCost":850,"deliveryDelay":3000}'
)


def test_a_seed_order_round_trips_in_camel_case() -> None:
    order = Order.model_validate_json(SEED_ORDER)
    assert order.restaurant_id == "mcstate" and order.delivery_delay == 3000
    dumped = order.model_dump(mode="json", exclude_none=True)
    assert dumped["restaurantId"] == "mcstate"
    assert dumped["products"][0] == {"productId": "1002", "description": "Cheese burger", "quantity": 1}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"products": []}, "products"),
        ({"products": [{"productId": "1000", "quantity": 0}]}, "products.0.quantity"),
        ({"totalCost": -1}, "totalCost"),
        ({"deliveryDelay": "soon"}, "deliveryDelay"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_orders_name_the_field(change: dict[str, object], field: str) -> None:
    raw = Order.model_validate_json(SEED_ORDER).model_dump(mode="json") | change
    with pytest.raises(ValidationError) as error:
        Order.model_validate(raw)
    assert field in str(error.value)


def invalid_order_reason(order: Order) -> str | None:
    rejection = order_terms(order).rejection
    return None if rejection is None else rejection.reason


def test_the_catalog_check_names_the_field() -> None:
    order = Order.model_validate_json(SEED_ORDER)
    assert invalid_order_reason(order) is None
    assert "restaurantId" in str(invalid_order_reason(order.model_copy(update={"restaurant_id": "x"})))
    bad_line = order.products[0].model_copy(update={"product_id": "1100"})  # not on McState's menu
    assert invalid_order_reason(order.model_copy(update={"products": [bad_line]})) == (
        "products[0].productId: 'mcstate' has no product '1100'"
    )
    rejection = order_terms(order.model_copy(update={"products": [bad_line]})).rejection
    assert rejection is not None
    assert (rejection.reason_code, rejection.items) == (RejectionReason.ITEM_AVAILABILITY, ["1100"])


def test_the_seed_web_ui_catalog_is_served_by_every_seed_restaurant_at_its_prices() -> None:
    seed_ui_prices = {"1000": 10.90, "1001": 17.60, "1002": 8.50, "1003": 3.40}  # dollars
    for restaurant in ("bites_n_bytes", "snack_in_the_box", "mcstate"):
        for product, dollars in seed_ui_prices.items():
            order = Order(
                id="o",
                restaurant_id=restaurant,
                products=[{"productId": int(product), "quantity": 2}],
                total_cost=2 * dollars,
            )
            assert invalid_order_reason(order) is None
            assert order_terms(order).price == round(200 * dollars)


def test_state_serde_keeps_lists_of_models_as_plain_json() -> None:
    serde: PydanticSerde[list[StatusChange]] = PydanticSerde(list[StatusChange])
    history = [
        StatusChange(status=Status.CREATED, at=1),
        StatusChange(status=Status.REJECTED, at=2, reason="no"),
    ]
    assert serde.serialize(history).startswith(b'[{"status":"CREATED","at":1')
    assert serde.deserialize(serde.serialize(history)) == history
    assert serde.deserialize(b"") is None
