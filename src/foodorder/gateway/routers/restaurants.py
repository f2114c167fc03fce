"""Restaurants: report an order ready."""

from fastapi import APIRouter, HTTPException, status

from foodorder.gateway.auth import RestaurantDep
from foodorder.gateway.deps import IngressDep, load_order
from foodorder.gateway.schemas import FORBIDDEN, TOO_MANY, UNAUTHENTICATED, UNAVAILABLE, OrderId, problems

router = APIRouter(
    prefix="/api/v1/restaurants",
    tags=["restaurants (restaurant key)"],
    responses=UNAUTHENTICATED | TOO_MANY | FORBIDDEN | UNAVAILABLE,
)


@router.post(
    "/{restaurant_id}/orders/{order_id}/ready",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems({404: "no such order at this restaurant"}),
)
async def order_ready(restaurant_id: RestaurantDep, order_id: OrderId, ingress: IngressDep) -> None:
    """The kitchen finished the order; only for this restaurant's orders."""
    order = await load_order(ingress, order_id)
    if order is None or order.restaurant_id != restaurant_id:
        raise HTTPException(404, f"restaurant {restaurant_id!r} has no order {order_id!r}")
    await ingress.send("order-workflow", order_id, "finishedPreparation", idempotency_key=f"ready-{order_id}")
