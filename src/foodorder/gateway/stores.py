"""Restaurants' store state as the gateway reads it: the intake's refusal and the restaurant's view."""

import asyncio
import logging
import math
from time import monotonic
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from foodorder.catalog import Restaurant
from foodorder.gateway.deps import load_order
from foodorder.gateway.restate import Ingress
from foodorder.gateway.schemas import ItemAvailability, RestaurantView
from foodorder.models import Order, Refusal, RejectionReason, StoreState, StoreStatus, as_datetime, epoch_ms

log = logging.getLogger(__name__)

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


# How long the gateway answers from its copy of a store's state before it reads it again (and how
# long after a read failed it tries again). A change made through this gateway is seen at once; one
# made through another replica once the read that follows this time is back. The intake's check is
# the quick answer only: each order's workflow judges it again by the store's state when it starts.
STORE_STATE_TTL_S = 1.0
# While that read is under way (or after it failed), requests are answered from the expired copy, up
# to this age: the read goes through the services endpoint, which is busiest when orders flood in, and
# the orders that waited for it every second were intake's slowest (p99).
STORE_STATE_STALE_S = 10.0


class StoreStates:
    """The gateway's copy of the restaurants' store state (`store-state`), so that intake does not
    read it once per order: a submitted order then costs its one invocation."""

    def __init__(self, ingress: Ingress) -> None:
        self._ingress = ingress
        self._copies: dict[str, tuple[float, StoreState]] = {}  # restaurant -> (kept at, state)
        self._reads: dict[str, asyncio.Future[StoreState]] = {}  # one read at a time per restaurant
        self._read_at: dict[str, float] = {}  # when the last read started
        self._changes: dict[str, int] = {}  # changes made through this gateway, counted

    async def get(self, restaurant_id: str) -> StoreState:
        """The restaurant's store state as it set it: a copy kept less than STORE_STATE_TTL_S ago,
        or one kept less than STORE_STATE_STALE_S ago while it is read again.

        Only a request that finds no copy young enough waits for a read, and the requests that find
        it so together wait for the same one.
        """
        now = monotonic()
        copy = self._copies.get(restaurant_id)
        if copy is None or now - copy[0] >= STORE_STATE_STALE_S:
            # A request given up on does not cancel the others' read.
            return await asyncio.shield(self._read_once(restaurant_id))
        last_read = self._read_at.get(restaurant_id, -math.inf)
        if now - copy[0] >= STORE_STATE_TTL_S and now - last_read >= STORE_STATE_TTL_S:
            self._read_once(restaurant_id)
        return copy[1]

    def _read_once(self, restaurant_id: str) -> "asyncio.Future[StoreState]":
        """The read of the restaurant's store state under way, started if none is."""
        if (read := self._reads.get(restaurant_id)) is None:
            self._read_at[restaurant_id] = monotonic()
            read = self._reads[restaurant_id] = asyncio.ensure_future(self._read(restaurant_id))
            read.add_done_callback(lambda done: self._read_done(restaurant_id, done))
        return read

    def _read_done(self, restaurant_id: str, read: "asyncio.Future[StoreState]") -> None:
        self._reads.pop(restaurant_id, None)
        if not read.cancelled() and (error := read.exception()) is not None:
            # Those waiting for it got the error; the copy, if any, is kept and read again later.
            log.warning("reading the store state of %s: %r", restaurant_id, error)

    async def _read(self, restaurant_id: str) -> StoreState:
        changes = self._changes.get(restaurant_id, 0)
        raw = await self._ingress.call("store-state", restaurant_id, "get")
        if self._changes.get(restaurant_id, 0) != changes:  # changed through this gateway meanwhile
            return self._copies[restaurant_id][1]
        return self._keep(restaurant_id, raw)

    async def change(self, restaurant_id: str, handler: str, body: Any) -> StoreState:
        """Change the store's state through its one durable record; the new state."""
        state = self._keep(
            restaurant_id, await self._ingress.call("store-state", restaurant_id, handler, body)
        )
        self._changes[restaurant_id] = self._changes.get(restaurant_id, 0) + 1  # a read under way is older
        return state

    def _keep(self, restaurant_id: str, raw: Any) -> StoreState:
        state = StoreState.model_validate(raw)
        self._copies[restaurant_id] = (monotonic(), state)
        return state

    async def close(self) -> None:
        """Stop the reads under way (the ingress' client closes next)."""
        reads = list(self._reads.values())
        for read in reads:
            read.cancel()
        await asyncio.gather(*reads, return_exceptions=True)


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
