"""driver-mobile-app (key = driver id): a simulated phone that takes work, drives and reports locations."""

import random
from contextlib import suppress
from datetime import timedelta

from restate import ObjectContext, TerminalError, VirtualObject

from foodorder import geo
from foodorder.catalog import load_catalog
from foodorder.clients.locations import location_publisher
from foodorder.config import get_settings
from foodorder.delivery import twin
from foodorder.models import DeliveryRequest, Location, LocationEvent, Offer, PhoneShiftStart, PhoneWork
from foodorder.state import PydanticSerde, StateKey, in_place, now_ms

driver_mobile_app = VirtualObject("driver-mobile-app")

ASSIGNED_DELIVERY: StateKey[DeliveryRequest] = StateKey("assigned-delivery", DeliveryRequest)
CURRENT_LOCATION: StateKey[Location] = StateKey("current-location", Location)
STEPS_SINCE_REPORT: StateKey[int] = StateKey("steps-since-report", int)


def _after(seconds: float) -> timedelta:
    return timedelta(seconds=get_settings().scaled(seconds))


async def stamped(ctx: ObjectContext, location: Location) -> LocationEvent:
    """The phone's location now, stamped, so that the twin ignores a repeated report."""
    return LocationEvent(lat=location.lat, long=location.long, at=await now_ms(ctx))


async def publish_location(ctx: ObjectContext, location: Location) -> None:
    """Report the phone's location to the driver's twin."""
    await ctx.run_typed(
        "publish location",
        location_publisher().publish,
        driver_id=ctx.key(),
        event=await stamped(ctx, location),
        idempotency_key=str(ctx.uuid()),
    )


def shift_start_spot(region_id: str | None) -> Location:
    """A random spot in the region (a random region of the catalog if none or an unknown one is named)."""
    catalog = load_catalog()
    region = catalog.region(region_id) if region_id else None
    center = (region or random.choice(catalog.regions)).center
    return geo.random_location(random.Random(), center)


@driver_mobile_app.handler(name="startDriver", input_serde=PydanticSerde(str | None))
async def start_driver(ctx: ObjectContext, region: str | None = None) -> None:
    """Start the driver's shift (at a random spot in `region` the first time), whatever happened before.

    `foodorder up` calls it at every start, spreading its drivers over the regions: a driver taken
    off duty (say, found silent) is back on duty; a driver on a delivery goes on with it.
    """
    location = await CURRENT_LOCATION.get(ctx)
    if location is None:
        location = await ctx.run_typed("shift start spot", in_place(shift_start_spot), region_id=region)
        CURRENT_LOCATION.set(ctx, location)
    # One call tells the twin where the phone is and where to push work (it sends pollForWork, instead
    # of the phone polling every second), and puts the driver on duty unless this phone drives a
    # delivery already. The twin pushes the work that waits for the driver already.
    start = PhoneShiftStart(
        phone_app=driver_mobile_app.name,
        location=await stamped(ctx, location),
        takes_work=await ASSIGNED_DELIVERY.get(ctx) is None,
    )
    ctx.object_send(twin.start_shift, key=ctx.key(), arg=start)


def declines() -> bool:
    """Whether this simulated driver turns an offer down (FOODORDER_DRIVER_DECLINE_SHARE of them)."""
    return random.random() < get_settings().driver_decline_share


async def answer_offer(ctx: ObjectContext, offer: Offer) -> None:
    """Accept the offer, or decline a share of them, like a driver looking at their phone."""
    decline = await ctx.run_typed("decline offer?", in_place(declines))
    handler = twin.decline_offer if decline else twin.accept_offer
    with suppress(TerminalError):  # the offer lapsed or was withdrawn meanwhile
        await ctx.object_call(handler, key=ctx.key(), arg=offer.offer_id)


@driver_mobile_app.handler(
    name="pollForWork", input_serde=PydanticSerde(PhoneWork | None), ingress_private=True
)
async def poll_for_work(ctx: ObjectContext, work: PhoneWork | None = None) -> None:
    """Answer the offer or drive the delivery the twin pushed; without either (sent after a delivery
    was cancelled on the way, and by an earlier release at a shift's start), ask."""
    if await ASSIGNED_DELIVERY.get(ctx) is not None:
        return  # already on a delivery: the new one is picked up once this one ends
    if work is None or (work.offer is None and work.delivery is None):
        work = PhoneWork(delivery=await ctx.object_call(twin.get_assigned_delivery, key=ctx.key(), arg={}))
        if work.delivery is None:
            work.offer = await ctx.object_call(twin.get_offer, key=ctx.key(), arg={})
    if work.delivery is None:
        if work.offer is not None:
            await answer_offer(ctx, work.offer)
        return
    ASSIGNED_DELIVERY.set(ctx, work.delivery)
    ctx.object_send(move, key=ctx.key(), arg=None, send_delay=_after(get_settings().move_interval_s))


@driver_mobile_app.handler(ingress_private=True)
async def move(ctx: ObjectContext) -> None:
    """Drive one step towards the restaurant or the customer; report where it is now and then.

    Like a real phone, it reports its location every `location_report_interval_s` of driving, not at
    every step: each report costs the engine an invocation. On arrival it reports the pickup or the
    delivery instead, which tells the twin where the driver is.
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
    if arrived:
        steps = 0
    elif steps * settings.move_interval_s >= settings.location_report_interval_s:
        steps = 0
        await publish_location(ctx, location)
    STEPS_SINCE_REPORT.set(ctx, steps)

    delivery_id = state.delivery_id
    if arrived and state.order_picked_up:
        ASSIGNED_DELIVERY.clear(ctx)
        with suppress(TerminalError):  # the twin no longer expects this delivery: nothing to report
            await ctx.object_call(twin.notify_delivery_delivered, key=ctx.key(), arg=delivery_id)
        return  # the twin has the driver wait for the next offer
    if arrived:
        try:
            await ctx.object_call(twin.notify_delivery_pick_up, key=ctx.key(), arg=delivery_id)
        except TerminalError:
            # The order was cancelled on the way to the restaurant: look for other work.
            ASSIGNED_DELIVERY.clear(ctx)
            ctx.object_send(poll_for_work, key=ctx.key(), arg=PhoneWork())
            return
        state.order_picked_up = True
        ASSIGNED_DELIVERY.set(ctx, state)
    ctx.object_send(move, key=ctx.key(), arg=None, send_delay=_after(settings.move_interval_s))
