"""Client of the restaurants' point of sale."""

from foodorder.clients.http import check_response, http_client
from foodorder.config import get_settings


async def prepare(order_id: str, restaurant_id: str) -> None:
    """Ask the restaurant to prepare the order; the order id is the idempotency key."""
    settings = get_settings()
    response = await http_client().post(
        f"{settings.pos_url}/prepare",
        json={"orderId": order_id, "restaurantId": restaurant_id},
        headers={"Idempotency-Key": f"prepare-{order_id}"},
        timeout=settings.http_timeout_s,
    )
    check_response(response, "restaurant POS")
