"""driver-mobile-app (key = driver id): a simulated phone that takes work, drives and reports locations."""

from contextlib import suppress
from datetime import timedelta

from restate import ObjectContext, TerminalError, VirtualObject

from foodorder import geo
from foodorder.clients.locations import location_publisher
from foodorder.config import get_settings
from foodorder.delivery import twin
from foodorder.models import DeliveryRequest, Location, LocationEvent
from foodorder.state import StateKey, now_ms

driver_mobile_app = VirtualObject("driver-mobile-app")

ASSIGNED_DELIVERY: StateKey[DeliveryRequest] = StateKey("assigned-delivery", DeliveryRequest)
CURRENT_LOCATION: StateKey[Location] = StateKey("current-location", Location)
STEPS_SINCE_REPORT: StateKey[int] = StateKey("steps-since-report", int)


def _after(seconds: float) -> timedelta:
    return timedelta(seconds=get_settings().scaled(seconds))


async def publish_location(ctx: ObjectContext, location: Location) -> None:
    """Report the phone's location to the driver's twin; stamped, so that a repeated report is ignored."""
    event = LocationEvent(lat=location.lat, long=location.long, at=await now_ms(ctx))
    await ctx.run_typed(
        "publish location",
        location_publisher().publish,
        driver_id=ctx.key(),
        event=event,
        idempotency_key=str(ctx.uuid()),
    )


@driver_mobile_app.handler(name="startDriver")
async def start_driver(ctx: ObjectContext) -> None:
    """Start the driver's shift (at a random spot in the region the first time), whatever happened before.

    `foodorder up` calls it at every start: a driver taken off duty (say, found silent) is back on
    duty; a driver on a delivery goes on with it.
    """
    location = await CURRENT_LOCATION.get(ctx)
    if location is None:
        location = geo.random_location(ctx.random())
        CURRENT_LOCATION.set(ctx, location)
    await publish_location(ctx, location)
    # Work is pushed to this phone (the twin sends pollForWork), instead of polling every second.
    ctx.object_send(twin.register_phone_app, key=ctx.key(), arg=driver_mobile_app.name)
    if await ASSIGNED_DELIVERY.get(ctx) is None:
        with suppress(TerminalError):  # the twin has a delivery for this phone: it pushes it
            await ctx.object_call(twin.set_driver_available, key=ctx.key(), arg=geo.DEMO_REGION)
        ctx.object_send(poll_for_work, key=ctx.key(), arg=None)


@driver_mobile_app.handler(name="pollForWork", ingress_private=True)
async def poll_for_work(ctx: ObjectContext) -> None:
    """Ask the twin for a delivery and start driving if there is one (the twin calls this on new work)."""
    if await ASSIGNED_DELIVERY.get(ctx) is not None:
        return  # already on a delivery: the new one is picked up once this one ends
    delivery = await ctx.object_call(twin.get_assigned_delivery, key=ctx.key(), arg={})
    if delivery is None:
        return
    ASSIGNED_DELIVERY.set(ctx, delivery)
    ctx.object_send(move, key=ctx.key(), arg=None, send_delay=_after(get_settings().move_interval_s))


@driver_mobile_app.handler(ingress_private=True)
async def move(ctx: ObjectContext) -> None:
    """Drive one step towards the restaurant or the customer; report where it is now and then.

    Like a real phone, it reports its location every `location_report_interval_s` of driving (and
    on arrival), not at every step: each report costs the engine an invocation.
    """
    settings = get_settings()
    current = await CURRENT_LOCATION.get(ctx)
    state = await ASSIGNED_DELIVERY.get(ctx)
    if current is None or state is None:
        return  # a stray move after the delivery ended
    target = state.customer_location if state.order_picked_up else state.restaurant_location
    location, arrived = geo.step_towards(
        current, target, settings.driver_speed_mps * settings.move_interval_s
    )
    CURRENT_LOCATION.set(ctx, location)
    steps = (await STEPS_SINCE_REPORT.get(ctx) or 0) + 1
    if arrived or steps * settings.move_interval_s >= settings.location_report_interval_s:
        steps = 0
        await publish_location(ctx, location)
    STEPS_SINCE_REPORT.set(ctx, steps)

    delivery_id = state.delivery_id
    if arrived and state.order_picked_up:
        ASSIGNED_DELIVERY.clear(ctx)
        with suppress(TerminalError):  # the twin no longer expects this delivery: nothing to report
            await ctx.object_call(twin.notify_delivery_delivered, key=ctx.key(), arg=delivery_id)
        await ctx.sleep(_after(settings.pause_between_deliveries_s), name="pause between deliveries")
        ctx.object_send(twin.set_driver_available, key=ctx.key(), arg=geo.DEMO_REGION)
        return
    if arrived:
        try:
            await ctx.object_call(twin.notify_delivery_pick_up, key=ctx.key(), arg=delivery_id)
        except TerminalError:
            # The order was cancelled on the way to the restaurant: look for other work.
            ASSIGNED_DELIVERY.clear(ctx)
            ctx.object_send(poll_for_work, key=ctx.key(), arg=None)
            return
        state.order_picked_up = True
        ASSIGNED_DELIVERY.set(ctx, state)
    ctx.object_send(move, key=ctx.key(), arg=None, send_delay=_after(settings.move_interval_s))
