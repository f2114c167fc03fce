"""Restaurants: accept or deny orders, report them ready, and set their store's state."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status

from foodorder.catalog import Restaurant
from foodorder.gateway.auth import RestaurantDep
from foodorder.gateway.deps import IngressDep, load_order
from foodorder.gateway.routers.catalog import catalog_restaurant
from foodorder.gateway.schemas import (
    FORBIDDEN,
    TOO_MANY,
    UNAUTHENTICATED,
    UNAVAILABLE,
    UNREADABLE_BODY,
    AvailabilityRequest,
    DenyRequest,
    OrderId,
    RestaurantView,
    StatusRequest,
    problems,
)
from foodorder.gateway.stores import StoresDep, StoreStates, restaurant_view
from foodorder.models import Decision, Hours, Order, Refusal, Snooze, StoreStatusUpdate

router = APIRouter(
    prefix="/api/v1/restaurants",
    tags=["restaurants (restaurant key)"],
    responses=UNAUTHENTICATED | TOO_MANY | FORBIDDEN | UNAVAILABLE,
)
NO_ORDER = problems({404: "no such order at this restaurant"})
DECIDED = problems({409: "the order was decided otherwise already, or has ended"})
NO_SHOP = problems({404: "no such restaurant"}) | UNREADABLE_BODY


async def restaurant_order(restaurant_id: RestaurantDep, order_id: OrderId, ingress: IngressDep) -> Order:
    """This restaurant's order `order_id` (the id the POS was given); 404 for any other."""
    order = await load_order(ingress, order_id)
    if order is None or order.restaurant_id != restaurant_id:
        raise HTTPException(404, f"restaurant {restaurant_id!r} has no order {order_id!r}")
    return order


RestaurantOrderDep = Annotated[Order, Depends(restaurant_order)]


async def shop_of(restaurant_id: RestaurantDep) -> Restaurant:
    """The catalog's restaurant the key acts for; 404 when the catalog has none by that id."""
    return catalog_restaurant(restaurant_id)


ShopDep = Annotated[Restaurant, Depends(shop_of)]


@router.post(
    "/{restaurant_id}/orders/{order_id}/ready", status_code=status.HTTP_202_ACCEPTED, responses=NO_ORDER
)
async def order_ready(restaurant_id: RestaurantDep, order_id: OrderId, ingress: IngressDep) -> None:
    """The kitchen finished the order; only for this restaurant's orders."""
    # The workflow checks that the order is this restaurant's: one invocation, no read before it (a
    # report repeated by the POS is answered from Restate's record of the first).
    ready = f"ready-{restaurant_id}-{order_id}"
    await ingress.call(
        "order-workflow", order_id, "finishedPreparation", restaurant_id, idempotency_key=ready
    )


@router.post("/{restaurant_id}/orders/{order_id}/accept", responses=NO_ORDER | DECIDED)
async def accept_order(order: RestaurantOrderDep, ingress: IngressDep) -> None:
    """Accept an order the POS holds, before the accept deadline; accepting twice is harmless."""
    await ingress.call("order-workflow", order.id, "decide", Decision(accepted=True).model_dump(mode="json"))


@router.post("/{restaurant_id}/orders/{order_id}/deny", responses=NO_ORDER | DECIDED | UNREADABLE_BODY)
async def deny_order(order: RestaurantOrderDep, request: DenyRequest, ingress: IngressDep) -> None:
    """Deny an order the POS holds with a reason code (and items, for ITEM_AVAILABILITY): it ends REJECTED."""
    refusal = Refusal(
        reason_code=request.reason_code, reason=request.reason or request.reason_code, items=request.items
    )
    decision = Decision(accepted=False, refusal=refusal)
    await ingress.call("order-workflow", order.id, "decide", decision.model_dump(mode="json"))


async def set_store(stores: StoreStates, shop: Restaurant, handler: str, body: Any) -> RestaurantView:
    """Change the store's state through its one durable record (`store-state`); the new view."""
    return restaurant_view(shop, await stores.change(shop.id, handler, body))


@router.put("/{restaurant_id}/status", responses=NO_SHOP)
async def set_status(shop: ShopDep, request: StatusRequest, stores: StoresDep) -> RestaurantView:
    """ONLINE; PAUSED until a time (or until set ONLINE); BUSY with extra minutes on every order's ETA."""
    until = int(request.until.timestamp() * 1000) if request.until else None
    update = StoreStatusUpdate(
        state=request.state, paused_until=until, extra_prep_minutes=request.extra_prep_minutes
    )
    return await set_store(stores, shop, "setStatus", update.model_dump(mode="json"))


@router.put("/{restaurant_id}/hours", responses=NO_SHOP)
async def set_hours(shop: ShopDep, request: Hours, stores: StoresDep) -> RestaurantView:
    """Replace the weekly opening hours, in the restaurant's time zone (none: always open)."""
    return await set_store(stores, shop, "setHours", request.model_dump(mode="json"))


@router.put("/{restaurant_id}/availability", responses=NO_SHOP)
async def set_availability(shop: ShopDep, request: AvailabilityRequest, stores: StoresDep) -> RestaurantView:
    """Replace the snoozed items: each cannot be ordered until its time; an item not listed can."""
    for i, snooze in enumerate(request.snoozed):
        if shop.item(snooze.product_id) is None:
            loc = ["body", "snoozed", i, "productId"]
            message = f"{shop.id!r} has no product {snooze.product_id!r}"
            raise HTTPException(422, [{"loc": loc, "msg": message, "type": "value_error"}])
    snoozed = [
        Snooze(product_id=s.product_id, until=int(s.until.timestamp() * 1000)) for s in request.snoozed
    ]
    body = [s.model_dump(mode="json") for s in snoozed]
    return await set_store(stores, shop, "setAvailability", body)
