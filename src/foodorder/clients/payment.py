"""Client of the payment provider; every charge carries an idempotency key."""

from foodorder.clients.http import check_response, http_client
from foodorder.config import get_settings

DECLINED = 402


async def charge(order_id: str, idempotency_key: str, amount: float) -> bool:
    """Charge `amount` cents for the order; False when the provider declines."""
    settings = get_settings()
    response = await http_client().post(
        f"{settings.payment_url}/charges",
        json={"orderId": order_id, "amount": amount},
        headers={"Idempotency-Key": idempotency_key},
        timeout=settings.http_timeout_s,
    )
    if response.status_code == DECLINED:
        return False
    check_response(response, "payment provider")
    return True
