"""Client of the restaurants' point of sale."""

import httpx
from pydantic import ValidationError
from restate import TerminalError

from foodorder.clients.http import check_response, field, post
from foodorder.config import get_settings
from foodorder.models import Model, Refusal, RejectionReason

REFUSED = 409
HELD = 202  # taken, but a person at the restaurant accepts or denies it (through the public API)
WHAT = "restaurant POS"


class PosAnswer(Model):
    """What the POS said to an order: it took it, holds it for a person to decide, or refused it."""

    held: bool = False
    refusal: Refusal | None = None


def refusal_of(response: httpx.Response) -> Refusal:
    """The POS's refusal: its reason, its reason code (OTHER when it gives none) and items."""
    reason = field(response, "detail", WHAT)
    body = response.json()
    try:
        code = RejectionReason(body.get("reasonCode") or RejectionReason.OTHER)
        return Refusal(reason_code=code, reason=reason, items=body.get("items") or [])
    except (ValueError, ValidationError) as error:
        raise TerminalError(f"{WHAT} refused with an unreadable reason: {error}", 502) from error


async def prepare(order_id: str, restaurant_id: str, product_ids: list[str]) -> PosAnswer:
    """Ask the restaurant to prepare the order: taken, held for a person, or refused with a reason."""
    settings = get_settings()
    response = await post(
        WHAT,
        f"{settings.pos_url}/prepare",
        json={"orderId": order_id, "restaurantId": restaurant_id, "productIds": product_ids},
        headers={"Idempotency-Key": f"prepare-{order_id}"},
        timeout=settings.http_timeout_s,
    )
    if response.status_code == REFUSED:
        return PosAnswer(refusal=refusal_of(response))
    check_response(response, WHAT)
    return PosAnswer(held=response.status_code == HELD)


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
