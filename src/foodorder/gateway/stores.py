"""Restaurants' store state as the gateway reads it: the intake's refusal and the restaurant's view."""

import asyncio
import time
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from foodorder.catalog import Restaurant
from foodorder.gateway.deps import load_order
from foodorder.gateway.restate import Ingress
from foodorder.gateway.schemas import ItemAvailability, RestaurantView
from foodorder.models import Order, Refusal, RejectionReason, StoreState, StoreStatus, as_datetime, epoch_ms

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


# How long the gateway answers from its copy of a store's state. A change made through this gateway
# is seen at once; one made through another replica within this time. The intake's check is the
# quick answer only: each order's workflow judges it again by the store's state when it starts.
STORE_STATE_TTL_S = 1.0


class StoreStates:
    """The gateway's copy of the restaurants' store state (`store-state`), so that intake does not
    read it once per order: a submitted order then costs its one invocation."""

    def __init__(self, ingress: Ingress) -> None:
        self._ingress = ingress
        self._copies: dict[str, tuple[float, StoreState]] = {}
        self._reads: dict[str, asyncio.Future[StoreState]] = {}  # one read at a time per restaurant

    async def get(self, restaurant_id: str) -> StoreState:
        """The restaurant's store state as it set it, at most STORE_STATE_TTL_S old.

        Requests that find the copy expired together wait for one read (at 16 concurrent orders, each
        read its own: 0.15 reads per accepted order in the bench instead of about one a second).
        """
        copy = self._copies.get(restaurant_id)
        if copy is not None and copy[0] > time.monotonic():
            return copy[1]
        read = self._reads.get(restaurant_id)
        if read is None:
            read = self._reads[restaurant_id] = asyncio.ensure_future(self._read(restaurant_id))
            read.add_done_callback(lambda _: self._reads.pop(restaurant_id, None))
        return await asyncio.shield(read)  # a request given up on does not cancel the others' read

    async def _read(self, restaurant_id: str) -> StoreState:
        return self._keep(restaurant_id, await self._ingress.call("store-state", restaurant_id, "get"))

    async def change(self, restaurant_id: str, handler: str, body: Any) -> StoreState:
        """Change the store's state through its one durable record; the new state."""
        return self._keep(
            restaurant_id, await self._ingress.call("store-state", restaurant_id, handler, body)
        )

    def _keep(self, restaurant_id: str, raw: Any) -> StoreState:
        state = StoreState.model_validate(raw)
        self._copies[restaurant_id] = (time.monotonic() + STORE_STATE_TTL_S, state)
        return state


async def store_states(request: Request) -> StoreStates:
    states: StoreStates = request.app.state.stores
    return states


StoresDep = Annotated[StoreStates, Depends(store_states)]


async def refuse_unavailable(stores: StoreStates, ingress: Ingress, order: Order) -> None:
    """Raise StoreRefused if the restaurant cannot take `order` now (paused, closed, an item snoozed).

    An order submitted before goes on, so that a resend is answered as the first submission was.
    """
    state = await stores.get(order.restaurant_id)
    refusal = state.refusal([p.product_id for p in order.products], epoch_ms())
    if refusal is not None and await load_order(ingress, order.id) is None:
        raise StoreRefused(refusal)


def restaurant_view(shop: Restaurant, state: StoreState) -> RestaurantView:
    """The restaurant with its store state in effect now."""
    now = epoch_ms()
    status = state.state_at(now)
    paused_until = state.status.paused_until if status == StoreStatus.PAUSED else None
    return RestaurantView(
        id=shop.id,
        name=shop.name,
        location=shop.location,
        state=status,
        paused_until=None if paused_until is None else as_datetime(paused_until),
        extra_prep_minutes=state.extra_prep_ms(now) // 60_000,
        open=state.hours.open_at(now),
        timezone=state.hours.timezone,
        hours=state.hours.hours,
        availability=[
            ItemAvailability(
                product_id=item.id,
                name=item.name,
                available=(until := state.snoozed_until(item.id, now)) is None,
                snoozed_until=None if until is None else as_datetime(until),
            )
            for item in shop.menu
        ],
    )
