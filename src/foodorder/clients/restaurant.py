"""Client of the restaurants' point of sale."""

from foodorder.clients.http import check_response, field, post
from foodorder.config import get_settings

REFUSED = 409
WHAT = "restaurant POS"


async def prepare(order_id: str, restaurant_id: str, product_ids: list[str]) -> str | None:
    """Ask the restaurant to prepare the order: None if it accepted, else its reason for refusing."""
    settings = get_settings()
    response = await post(
        WHAT,
        f"{settings.pos_url}/prepare",
        json={"orderId": order_id, "restaurantId": restaurant_id, "productIds": product_ids},
        headers={"Idempotency-Key": f"prepare-{order_id}"},
        timeout=settings.http_timeout_s,
    )
    if response.status_code == REFUSED:
        return field(response, "detail", WHAT)
    check_response(response, WHAT)
    return None


async def cancel(order_id: str) -> None:
    """Tell the restaurant to stop preparing the order (harmless if it never took it)."""
    settings = get_settings()
    response = await post(
        WHAT,
        f"{settings.pos_url}/cancel",
        json={"orderId": order_id},
        headers={"Idempotency-Key": f"cancel-{order_id}"},
        timeout=settings.http_timeout_s,
    )
    check_response(response, WHAT)
