"""Restaurants' store state as the gateway reads it: the intake's refusal and the restaurant's view."""

import time
from datetime import UTC, datetime

from fastapi.responses import JSONResponse

from foodorder.catalog import Restaurant
from foodorder.gateway.deps import load_order
from foodorder.gateway.restate import Ingress
from foodorder.gateway.schemas import ItemAvailability, RestaurantView
from foodorder.models import Order, Refusal, RejectionReason, StoreState, StoreStatus

# A sold-out item is wrong content (422); a paused or closed store is a state that passes (409).
REFUSAL_STATUS = {RejectionReason.ITEM_AVAILABILITY: 422}
REFUSALS = {
    409: "the restaurant is paused or closed: {detail, reasonCode}",
    422: "an item is snoozed: {detail, reasonCode: ITEM_AVAILABILITY, items}",
}


class StoreRefused(Exception):
    """The restaurant cannot take the order now; answered 409 or 422 with the reason code and items."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


def refusal_response(refusal: Refusal) -> JSONResponse:
    """The answer to a refused order: {detail, reasonCode, items}."""
    body = {"detail": refusal.reason, "reasonCode": refusal.reason_code, "items": refusal.items}
    return JSONResponse(body, status_code=REFUSAL_STATUS.get(refusal.reason_code, 409))


def now_ms() -> int:
    return int(time.time() * 1000)


async def read_store_state(ingress: Ingress, restaurant_id: str) -> StoreState:
    """The restaurant's store state as it set it."""
    return StoreState.model_validate(await ingress.call("store-state", restaurant_id, "get"))


async def refuse_unavailable(ingress: Ingress, order: Order) -> None:
    """Raise StoreRefused if the restaurant cannot take `order` now (paused, closed, an item snoozed).

    An order submitted before goes on, so that a resend is answered as the first submission was.
    """
    state = await read_store_state(ingress, order.restaurant_id)
    refusal = state.refusal([p.product_id for p in order.products], now_ms())
    if refusal is not None and await load_order(ingress, order.id) is None:
        raise StoreRefused(refusal)


def moment(epoch_ms: int | None) -> datetime | None:
    """An epoch-ms time as a datetime (None stays None)."""
    return None if epoch_ms is None else datetime.fromtimestamp(epoch_ms / 1000, UTC)


def restaurant_view(shop: Restaurant, state: StoreState) -> RestaurantView:
    """The restaurant with its store state in effect now."""
    now = now_ms()
    status = state.state_at(now)
    return RestaurantView(
        id=shop.id,
        name=shop.name,
        location=shop.location,
        state=status,
        paused_until=moment(state.status.paused_until) if status == StoreStatus.PAUSED else None,
        extra_prep_minutes=state.extra_prep_ms(now) // 60_000,
        open=state.hours.open_at(now),
        timezone=state.hours.timezone,
        hours=state.hours.hours,
        availability=[
            ItemAvailability(
                product_id=item.id,
                name=item.name,
                available=(until := state.snoozed_until(item.id, now)) is None,
                snoozed_until=moment(until),
            )
            for item in shop.menu
        ],
    )
