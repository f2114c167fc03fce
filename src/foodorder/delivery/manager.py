"""delivery-manager (key = delivery id): gets the delivery of an earlier release's order done.

An order of this release directs its delivery itself: the matcher, the driver's twin and its
workflow talk directly (see `order-workflow`, step 4). An order that an earlier release started
still starts a manager, which stays until those orders are gone. No handler waits while holding the
delivery: the matcher answers with `driverFound`, so a cancellation or a silence check is never
stuck behind a search for a driver. The workflow hears of its drivers and of the delivery through
awakeables it handed over; an order older still through its signals (`selectedDriver`,
`signalDeliveryFinished`).
"""

from datetime import timedelta

from restate import ObjectContext, TerminalError, VirtualObject

from foodorder import geo
from foodorder.config import get_settings
from foodorder.delivery import matcher, twin
from foodorder.models import (
    DeliveryInformation,
    DeliveryRequest,
    DriverPosition,
    DriverSelected,
    FoundDriver,
    Location,
    PendingDelivery,
    Reassignment,
    ShiftStart,
    SilenceCheck,
)
from foodorder.ordering import status, workflow
from foodorder.state import PydanticSerde, StateKey, came_late, now_ms, required

delivery_manager = VirtualObject("delivery-manager", ingress_private=True)

DELIVERY_INFO: StateKey[DeliveryInformation] = StateKey("delivery-info", DeliveryInformation)


def request_driver(ctx: ObjectContext, info: DeliveryInformation) -> None:
    """Ask the matcher of the restaurant's region for the nearest driver."""
    pending = PendingDelivery(
        delivery=delivery_request(ctx, info),
        policy=info.offer_policy,
        taken_on_accept=info.workflow_keeps_driver,
    )
    ctx.object_send(matcher.request_driver_for_delivery, key=info.region, arg=pending)


def delivery_request(ctx: ObjectContext, info: DeliveryInformation) -> DeliveryRequest:
    """What the driver is asked to do for this delivery."""
    return DeliveryRequest(
        delivery_id=ctx.key(),
        restaurant_id=info.restaurant_id,
        restaurant_location=info.restaurant_location,
        customer_location=info.customer_location,
        order_id=info.order_id,
        order_picked_up=info.order_picked_up,
    )


def check_silence_at(ctx: ObjectContext, info: DeliveryInformation, due: int, now: int) -> None:
    """Look at the driver of the current attempt again at `due` (epoch ms)."""
    check = SilenceCheck(attempt=info.attempt, due=due)
    ctx.object_send(check_driver, key=ctx.key(), arg=check, send_delay=timedelta(milliseconds=due - now))


@delivery_manager.handler(input_serde=required(DeliveryInformation))
async def start(ctx: ObjectContext, delivery: DeliveryInformation) -> None:
    """Called by the order workflow once the food is ready: ask the region's matcher for a driver."""
    if await DELIVERY_INFO.get(ctx) is not None:
        return  # a repeated start
    DELIVERY_INFO.set(ctx, delivery)
    request_driver(ctx, delivery)


@delivery_manager.handler(name="driverFound", input_serde=PydanticSerde(str | FoundDriver))
async def driver_found(ctx: ObjectContext, found: str | FoundDriver) -> None:
    """The driver accepted the matcher's offer, and their twin took the job (for an earlier release's
    order, or from an earlier release's matcher or twin, the job is handed over here); a driver the
    delivery no longer needs goes back to waiting for work."""
    if isinstance(found, str):
        found = FoundDriver(driver_id=found)
    driver_id = found.driver_id
    info = await DELIVERY_INFO.get(ctx)
    if info is None or info.driver_id is not None:
        if found.took_delivery:
            ctx.object_send(twin.release_delivery, key=driver_id, arg=ctx.key())
        else:
            ctx.object_send(twin.set_driver_available, key=driver_id, arg=ShiftStart())
        return
    position = None
    if not found.took_delivery:  # an earlier release's order, or accepted by an earlier release's twin
        try:
            position = await ctx.object_call(
                twin.assign_delivery_job, key=driver_id, arg=delivery_request(ctx, info)
            )
        except TerminalError:
            request_driver(ctx, info)  # the driver stopped waiting for work meanwhile: find another
            return
    if not info.workflow_keeps_driver and position is not None:
        # An earlier release's order: its order-status learns of its driver here, as it did then.
        ctx.object_send(status.track_driver, key=info.order_id, arg=position)
    now = await now_ms(ctx)
    info.driver_id = driver_id
    info.last_seen = now
    if not info.workflow_checks_silence:
        check_silence_at(ctx, info, now + info.silence_timeout_ms, now)
    if info.found_awakeable is not None:
        ctx.resolve_awakeable(info.found_awakeable, driver_id)
        info.found_awakeable = None
    else:
        selected = DriverSelected(driver_id=driver_id, attempt=info.attempt)
        ctx.workflow_send(workflow.selected_driver, key=info.order_id, arg=selected)
    DELIVERY_INFO.set(ctx, info)


@delivery_manager.handler(name="checkDriver", input_serde=required(SilenceCheck))
async def check_driver(ctx: ObjectContext, check: SilenceCheck) -> None:
    """Replace the driver of the check's attempt if they were silent too long before pickup.

    The workflow sends the first check, as its wait for the pickup lasts as long as the silence
    allowed (an earlier release's order has it planned here); while the driver is heard, the next
    check is planned here. A check that comes late was due while the system was down or stalled: the
    driver could not be heard then, so their silence is counted again from now.
    """
    info = await DELIVERY_INFO.get(ctx)
    if info is None or info.attempt != check.attempt or info.driver_id is None or info.order_picked_up:
        return
    now = await now_ms(ctx)
    if check.next_found_awakeable is not None:
        info.next_found_awakeable = check.next_found_awakeable
    if came_late(now, check.due):
        info.last_seen = max(info.last_seen, now)
    DELIVERY_INFO.set(ctx, info)
    heard: int | None = await ctx.object_call(twin.last_seen, key=info.driver_id, arg=None)
    last_heard = max(info.last_seen, heard or 0)
    if now - last_heard < info.silence_timeout_ms:
        check_silence_at(ctx, info, last_heard + info.silence_timeout_ms, now)
        return
    silent = info.driver_id
    ctx.object_send(twin.take_off_duty, key=silent, arg=ctx.key())
    info.driver_id = None
    info.attempt += 1
    info.found_awakeable, info.next_found_awakeable = info.next_found_awakeable, None
    DELIVERY_INFO.set(ctx, info)
    reason = f"driver {silent} was silent for {(now - last_heard) / 1000:.0f} s; finding another"
    replaced = Reassignment(attempt=check.attempt, reason=reason)
    ctx.workflow_send(workflow.driver_was_replaced, key=info.order_id, arg=replaced)
    request_driver(ctx, info)


@delivery_manager.handler()
async def cancel(ctx: ObjectContext) -> None:
    """The order was cancelled before pickup: withdraw the driver request, or release the driver."""
    info = await DELIVERY_INFO.get(ctx)
    if info is None:
        return
    DELIVERY_INFO.clear(ctx)
    if info.driver_id is None:
        ctx.object_send(matcher.withdraw, key=info.region, arg=ctx.key())
    else:
        ctx.object_send(twin.release_delivery, key=info.driver_id, arg=ctx.key())


async def in_progress(ctx: ObjectContext, driver_id: str | None) -> DeliveryInformation:
    """The delivery, if `driver_id` (when given) is still its driver; 409 otherwise."""
    info = await DELIVERY_INFO.get(ctx)
    if info is None:
        raise TerminalError(f"delivery {ctx.key()} is not in progress", 409)
    if driver_id is not None and driver_id != info.driver_id:
        raise TerminalError(f"driver {driver_id} is no longer on delivery {ctx.key()}", 409)
    return info


@delivery_manager.handler(name="notifyDeliveryPickup")
async def notify_delivery_pickup(ctx: ObjectContext, driver_id: str | None = None) -> None:
    """Called by the driver's twin at pickup; 409 if the order was cancelled or the driver replaced."""
    info = await in_progress(ctx, driver_id)
    await ctx.workflow_call(workflow.signal_driver_at_restaurant, key=info.order_id, arg=None)
    info.order_picked_up = True
    DELIVERY_INFO.set(ctx, info)


@delivery_manager.handler(name="notifyDeliveryDelivered")
async def notify_delivery_delivered(ctx: ObjectContext, driver_id: str | None = None) -> None:
    """Called by the driver's twin when the order reached the customer (after its pickup)."""
    info = await in_progress(ctx, driver_id)
    if not info.order_picked_up:
        raise TerminalError(f"delivery {ctx.key()} was not picked up yet", 409)
    DELIVERY_INFO.clear(ctx)
    if info.delivered_awakeable is not None:
        ctx.resolve_awakeable(info.delivered_awakeable, True)
    else:
        await ctx.workflow_call(workflow.signal_delivery_finished, key=info.order_id, arg=None)


def driver_position(
    driver_id: str, delivery: DeliveryRequest, location: Location, now: int
) -> DriverPosition:
    """Where the driver is and when the order arrives: via the restaurant until pickup, then straight."""
    settings = get_settings()
    route = [location] if delivery.order_picked_up else [location, delivery.restaurant_location]
    eta = geo.eta_ms([*route, delivery.customer_location], settings.driver_speed_mps * settings.time_scale)
    return DriverPosition(
        driver_id=driver_id, delivery_id=delivery.delivery_id, location=location, arrival=now + int(eta)
    )


@delivery_manager.handler(name="handleDriverLocationUpdate", input_serde=required(Location))
async def handle_driver_location_update(ctx: ObjectContext, location: Location) -> None:
    """A driver location for this delivery (the seed's path; twins now update order-status themselves)."""
    info = await DELIVERY_INFO.get(ctx)
    if info is None or info.driver_id is None:
        return  # a late event for a finished delivery, or one between two drivers
    info.last_seen = await now_ms(ctx)
    DELIVERY_INFO.set(ctx, info)
    position = driver_position(info.driver_id, delivery_request(ctx, info), location, info.last_seen)
    ctx.object_send(status.track_driver, key=info.order_id, arg=position)
