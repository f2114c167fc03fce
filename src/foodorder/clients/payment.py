"""Client of the payment provider: authorize, then capture, void or refund; each with an idempotency key."""

from typing import Literal

from foodorder.clients.http import check_response, http_client
from foodorder.config import get_settings

DECLINED = 402


async def authorize(order_id: str, idempotency_key: str, amount: float) -> str | None:
    """Hold `amount` cents for the order: the authorization id, or None when the provider declines."""
    settings = get_settings()
    response = await http_client().post(
        f"{settings.payment_url}/authorizations",
        json={"orderId": order_id, "amount": amount},
        headers={"Idempotency-Key": idempotency_key},
        timeout=settings.http_timeout_s,
    )
    if response.status_code == DECLINED:
        return None
    check_response(response, "payment provider")
    authorization_id: str = response.json()["authorizationId"]
    return authorization_id


async def settle(
    operation: Literal["capture", "void", "refund"], authorization_id: str, idempotency_key: str
) -> None:
    """Capture, void or refund an authorization."""
    settings = get_settings()
    response = await http_client().post(
        f"{settings.payment_url}/authorizations/{authorization_id}/{operation}",
        headers={"Idempotency-Key": idempotency_key},
        timeout=settings.http_timeout_s,
    )
    check_response(response, "payment provider")
