"""Client of the payment provider: authorize, then capture, void or refund; each with an idempotency key."""

from typing import Literal

from foodorder.clients.http import check_response, field, post
from foodorder.config import get_settings

DECLINED = 402
WHAT = "payment provider"
PaymentOperation = Literal["capture", "void", "refund"]


async def authorize(order_id: str, amount: float) -> str | None:
    """Hold `amount` cents for the order: the authorization id, or None when the provider declines."""
    settings = get_settings()
    response = await post(
        WHAT,
        f"{settings.payment_url}/authorizations",
        json={"orderId": order_id, "amount": amount},
        headers={"Idempotency-Key": f"authorize-{order_id}"},
        timeout=settings.http_timeout_s,
    )
    if response.status_code == DECLINED:
        return None
    check_response(response, WHAT)
    return field(response, "authorizationId", WHAT)


async def settle(operation: PaymentOperation, authorization_id: str) -> None:
    """Capture, void or refund an authorization (once per authorization, however often retried)."""
    settings = get_settings()
    response = await post(
        WHAT,
        f"{settings.payment_url}/authorizations/{authorization_id}/{operation}",
        headers={"Idempotency-Key": f"{operation}-{authorization_id}"},
        timeout=settings.http_timeout_s,
    )
    check_response(response, WHAT)
