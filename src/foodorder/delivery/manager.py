"""delivery-manager (key = delivery id): gets one order's delivery done and keeps its ETA current."""

from restate import ObjectContext, TerminalError, VirtualObject

from foodorder import geo
from foodorder.catalog import load_catalog
from foodorder.config import get_settings
from foodorder.delivery import matcher, twin
from foodorder.models import (
    DeliveryInformation,
    DeliveryRequest,
    DriverPosition,
    Location,
    Order,
    PendingDelivery,
)
from foodorder.ordering import status, workflow
from foodorder.state import StateKey, required

delivery_manager = VirtualObject("delivery-manager", ingress_private=True)

DELIVERY_INFO: StateKey[DeliveryInformation] = StateKey("delivery-info", DeliveryInformation)


@delivery_manager.handler(input_serde=required(Order))
async def start(ctx: ObjectContext, order: Order) -> None:
    """Called by the order workflow once the food is ready: find a driver and hand them the job."""
    shop = load_catalog().restaurant(order.restaurant_id)
    if shop is None:
        raise TerminalError(f"restaurantId: unknown restaurant {order.restaurant_id!r}", 400)
    info = DeliveryInformation(
        order_id=order.id,
        restaurant_id=order.restaurant_id,
        restaurant_location=shop.location,
        customer_location=order.delivery_location or geo.random_location(ctx.random()),
    )
    DELIVERY_INFO.set(ctx, info)

    # The matcher resolves this awakeable with a driver id, now or when a driver becomes free.
    awakeable_id, driver = ctx.awakeable(type_hint=str)
    ctx.object_send(
        matcher.request_driver_for_delivery, key=geo.DEMO_REGION, arg=PendingDelivery(promise_id=awakeable_id)
    )
    driver_id = await driver
    info.driver_id = driver_id
    DELIVERY_INFO.set(ctx, info)

    request = DeliveryRequest(
        delivery_id=ctx.key(),
        restaurant_id=info.restaurant_id,
        restaurant_location=info.restaurant_location,
        customer_location=info.customer_location,
    )
    await ctx.object_call(twin.assign_delivery_job, key=driver_id, arg=request)
    await ctx.workflow_call(workflow.selected_driver, key=order.id, arg=None)


@delivery_manager.handler(name="notifyDeliveryPickup")
async def notify_delivery_pickup(ctx: ObjectContext) -> None:
    """Called by the driver's twin when the driver picked the order up at the restaurant."""
    info = await DELIVERY_INFO.get(ctx)
    if info is None:
        raise TerminalError(f"delivery {ctx.key()} is not in progress", 409)
    info.order_picked_up = True
    DELIVERY_INFO.set(ctx, info)
    await ctx.workflow_call(workflow.signal_driver_at_restaurant, key=info.order_id, arg=None)


@delivery_manager.handler(name="notifyDeliveryDelivered")
async def notify_delivery_delivered(ctx: ObjectContext) -> None:
    """Called by the driver's twin when the order reached the customer."""
    info = await DELIVERY_INFO.get(ctx)
    if info is None:
        raise TerminalError(f"delivery {ctx.key()} is not in progress", 409)
    DELIVERY_INFO.clear(ctx)
    ctx.object_send(status.set_eta, key=info.order_id, arg=0.0)
    await ctx.workflow_call(workflow.signal_delivery_finished, key=info.order_id, arg=None)


@delivery_manager.handler(name="handleDriverLocationUpdate", input_serde=required(Location))
async def handle_driver_location_update(ctx: ObjectContext, location: Location) -> None:
    """A new driver location: recompute the ETA; a late event for a finished delivery is ignored."""
    info = await DELIVERY_INFO.get(ctx)
    if info is None:
        return
    route = [location] if info.order_picked_up else [location, info.restaurant_location]
    settings = get_settings()
    eta = geo.eta_ms([*route, info.customer_location], settings.driver_speed_mps * settings.time_scale)
    if info.driver_id is None:
        ctx.object_send(status.set_eta, key=info.order_id, arg=eta)
        return
    position = DriverPosition(driver_id=info.driver_id, delivery_id=ctx.key(), location=location, eta=eta)
    ctx.object_send(status.track_driver, key=info.order_id, arg=position)
