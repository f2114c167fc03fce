"""driver-digital-twin (key = driver id): a driver's status, location and assigned delivery.

A location report costs this one invocation: the twin keeps the driver's position and ETA, and tells
the order (order-status) of them only while someone watches the order (`watch`), when it passes on
every report. Readers of the order's tracking (its ETA, the driver's position) ask the twin
(`getPosition`).
"""

from restate import ObjectContext, ObjectSharedContext, TerminalError, VirtualObject

from foodorder import geo
from foodorder.catalog import load_catalog
from foodorder.delivery import manager, matcher
from foodorder.models import (
    AvailableDriver,
    DeliveryRequest,
    DriverPosition,
    DriverStatus,
    DriverWatch,
    Location,
    LocationEvent,
    Offer,
    OfferAnswer,
    PhoneShiftStart,
    PhoneWork,
    ShiftStart,
    TakenDelivery,
    WorkflowLink,
)
from foodorder.ordering import board, status
from foodorder.state import NO_INPUT, Nothing, PydanticSerde, StateKey, in_place, now_ms, required

driver_digital_twin = VirtualObject("driver-digital-twin")

DRIVER_STATUS: StateKey[DriverStatus] = StateKey("driver-status", DriverStatus)
ASSIGNED_DELIVERY: StateKey[DeliveryRequest] = StateKey("assigned-delivery", DeliveryRequest)
DRIVER_LOCATION: StateKey[Location] = StateKey("driver-location", Location)
REGION: StateKey[str] = StateKey("region", str)
ON_BOARD: StateKey[bool] = StateKey("on-board", bool)  # listed on the ops board's fleet
LAST_SEEN: StateKey[int] = StateKey("last-seen", int)
LOCATION_AT: StateKey[int] = StateKey("location-at", int)  # when the phone took the applied location
PHONE_APP: StateKey[str] = StateKey("phone-app", str)
POSITION: StateKey[DriverPosition] = StateKey("position", DriverPosition)  # on the current delivery
TOLD: StateKey[DriverPosition] = StateKey("told", DriverPosition)  # what the order was told last
WATCHED_UNTIL: StateKey[int] = StateKey("watched-until", int)  # epoch ms; see `watch`
PHONE_WORK: PydanticSerde[PhoneWork] = PydanticSerde(PhoneWork)  # what pollForWork carries to the phone
OFFER: StateKey[Offer] = StateKey("offer", Offer)
# How the twin tells the workflow of the current delivery (absent for an earlier release's order,
# whose delivery manager it tells instead).
LINK: StateKey[WorkflowLink] = StateKey("workflow-link", WorkflowLink)
POOL_LOCATION: StateKey[Location] = StateKey("pool-location", Location)  # where the matcher thinks they wait
# A waiting driver who moved this far from where their matcher thinks they are tells it.
POOL_MOVE_M = 250.0


async def expect_status(ctx: ObjectContext, expected: DriverStatus) -> None:
    """Refuse, for good, a call that makes no sense in the driver's current state."""
    current = await DRIVER_STATUS.get(ctx) or DriverStatus.IDLE
    if current != expected:
        raise TerminalError(f"driver {ctx.key()} is {current}, expected {expected}", status_code=409)


async def assigned_delivery(ctx: ObjectContext) -> DeliveryRequest:
    """The delivery the driver is on (present whenever the driver is DELIVERING)."""
    delivery = await ASSIGNED_DELIVERY.get(ctx)
    if delivery is None:
        raise TerminalError(f"driver {ctx.key()} has no assigned delivery", status_code=409)
    return delivery


def shift_region(current: str | None, location: Location) -> str:
    """The driver's region: the one of their shift so far, else the catalog's nearest to them."""
    catalog = load_catalog()
    if current is not None and catalog.region(current) is not None:
        return current
    return catalog.nearest_region(location).id


def join_pool(ctx: ObjectContext, region: str, location: Location, since: int) -> None:
    """Tell the region's matcher where the driver waits for work."""
    POOL_LOCATION.set(ctx, location)
    driver = AvailableDriver(driver_id=ctx.key(), location=location, since=since)
    ctx.object_send(matcher.set_driver_available, key=region, arg=driver)


@driver_digital_twin.handler(name="setDriverAvailable", input_serde=PydanticSerde(ShiftStart | None))
async def set_driver_available(ctx: ObjectContext, start: ShiftStart | None = None) -> str:
    """Called by the driver's phone at the start of a shift (again, or after a delivery: harmless).

    A shift belongs to the region nearest to where it starts, and keeps it as the driver moves;
    the answer is that region.
    """
    return await take_work(ctx, start.location if start is not None else None)


async def take_work(ctx: ObjectContext, location: Location | None = None) -> str:
    """The driver waits for work at `location` (else where they were last heard), in their shift's
    region, which it answers; 409 while they are on a delivery."""
    if await DRIVER_STATUS.get(ctx) != DriverStatus.WAITING_FOR_WORK:
        await expect_status(ctx, DriverStatus.IDLE)
    if location is not None:
        DRIVER_LOCATION.set(ctx, location)
    else:
        location = await DRIVER_LOCATION.get(ctx)
    if location is None:
        raise TerminalError(f"driver {ctx.key()}: where are you? send a location first", 409)
    region = await ctx.run_typed(
        "shift region", in_place(shift_region), current=await REGION.get(ctx), location=location
    )
    DRIVER_STATUS.set(ctx, DriverStatus.WAITING_FOR_WORK)
    REGION.set(ctx, region)
    join_pool(ctx, region, location, await now_ms(ctx))
    if not await ON_BOARD.get(ctx):  # once per driver, so that /ops finds every driver by key
        ctx.object_send(board.driver_on_duty, key=board.FLEET, arg=ctx.key())
        ON_BOARD.set(ctx, True)
    return region


@driver_digital_twin.handler(name="startShift", input_serde=required(PhoneShiftStart), ingress_private=True)
async def start_shift(ctx: ObjectContext, start: PhoneShiftStart) -> None:
    """A phone app starts its driver's shift in one invocation: it registers to be pushed work (as
    `registerPhoneApp`), reports where it is (as a location event), and the driver waits for work (as
    `setDriverAvailable`). A driver who holds an offer or is on a delivery goes on with it: the
    phone is pushed it again. A phone that drives a delivery of its own (`takesWork` false) leaves
    the driver as they were."""
    PHONE_APP.set(ctx, start.phone_app)
    busy = await ASSIGNED_DELIVERY.get(ctx) is not None or await OFFER.get(ctx) is not None
    if start.takes_work and not busy:
        await note_location(ctx, start.location)
        await take_work(ctx)
    else:
        await apply_location(ctx, start.location)
        await push_work(ctx)


async def leave_region(ctx: ObjectContext) -> None:
    """The shift ended: the driver leaves their region's pool and drops an offer they held."""
    region = await REGION.get(ctx)
    if region is not None:
        ctx.object_send(matcher.remove_driver, key=region, arg=ctx.key())
    REGION.clear(ctx)
    OFFER.clear(ctx)


@driver_digital_twin.handler(name="setDriverUnavailable")
async def set_driver_unavailable(ctx: ObjectContext) -> None:
    """Called by the driver's phone at the end of a shift (not while on a delivery)."""
    await expect_status(ctx, DriverStatus.WAITING_FOR_WORK)
    DRIVER_STATUS.set(ctx, DriverStatus.IDLE)
    await leave_region(ctx)


@driver_digital_twin.handler(name="endShift", ingress_private=True)
async def end_shift(ctx: ObjectContext, reason: str) -> None:
    """The matcher takes a driver who lets offers lapse off duty (they left the pool already)."""
    if await DRIVER_STATUS.get(ctx) == DriverStatus.WAITING_FOR_WORK:
        DRIVER_STATUS.set(ctx, DriverStatus.IDLE)
        REGION.clear(ctx)
        OFFER.clear(ctx)


@driver_digital_twin.handler(name="offerDelivery", input_serde=required(Offer), ingress_private=True)
async def offer_delivery(ctx: ObjectContext, offer: Offer) -> None:
    """The matcher offers the driver a delivery: the phone is told, and accepts or declines it."""
    if await DRIVER_STATUS.get(ctx) != DriverStatus.WAITING_FOR_WORK:
        # They stopped waiting as it was made: out of the pool, and the offer to the next-nearest.
        ctx.object_send(matcher.remove_driver, key=offer.region, arg=ctx.key())
        return
    OFFER.set(ctx, offer)
    await push_to_phone(ctx, PhoneWork(offer=offer))


@driver_digital_twin.handler(name="getOffer", kind="shared", input_serde=NO_INPUT)
async def get_offer(ctx: ObjectSharedContext, _: Nothing = None) -> Offer | None:
    """The offer waiting for the driver's answer, if any."""
    return await OFFER.get(ctx)


async def answer(ctx: ObjectContext, offer_id: str, accepted: bool) -> Offer:
    """Pass the driver's answer to their matcher; 409 if the offer is no longer open."""
    offer = await OFFER.get(ctx)
    if offer is None or offer.offer_id != offer_id:
        raise TerminalError(f"offer {offer_id} is not open to driver {ctx.key()}", 409)
    OFFER.clear(ctx)
    reply = OfferAnswer(offer_id=offer_id, driver_id=ctx.key(), accepted=accepted, takes_delivery=True)
    taken = await ctx.object_call(matcher.answer_offer, key=offer.region, arg=reply)
    if isinstance(taken, TakenDelivery):
        LINK.set(ctx, taken.link)
        await take_delivery(ctx, taken.delivery)
    elif taken is not None:  # an earlier release's order
        await take_delivery(ctx, taken)
    return offer


@driver_digital_twin.handler(name="acceptOffer")
async def accept_offer(ctx: ObjectContext, offer_id: str) -> Offer:
    """The driver takes the offered delivery (the matcher answers it, and the phone is pushed it);
    409 once it lapsed."""
    return await answer(ctx, offer_id, accepted=True)


@driver_digital_twin.handler(name="declineOffer")
async def decline_offer(ctx: ObjectContext, offer_id: str) -> Offer:
    """The driver turns the offered delivery down: the next-nearest driver gets it."""
    return await answer(ctx, offer_id, accepted=False)


@driver_digital_twin.handler(name="offerWithdrawn", ingress_private=True)
async def offer_withdrawn(ctx: ObjectContext, offer_id: str) -> None:
    """The offer lapsed, or its order was cancelled: it is no longer the driver's to answer."""
    offer = await OFFER.get(ctx)
    if offer is not None and offer.offer_id == offer_id:
        OFFER.clear(ctx)


@driver_digital_twin.handler(name="getAssignedDelivery", input_serde=NO_INPUT)
async def get_assigned_delivery(ctx: ObjectContext, _: Nothing = None) -> DeliveryRequest | None:
    """Polled by the driver's phone: the delivery to do, if any."""
    return await ASSIGNED_DELIVERY.get(ctx)


@driver_digital_twin.handler(
    name="assignDeliveryJob", input_serde=required(DeliveryRequest), ingress_private=True
)
async def assign_delivery_job(ctx: ObjectContext, request: DeliveryRequest) -> DriverPosition | None:
    """Called by the delivery manager when the matcher picked this driver, for an accept passed on by an
    earlier release's twin (this one takes the delivery as it accepts); answers where they are."""
    await expect_status(ctx, DriverStatus.WAITING_FOR_WORK)
    return await take_delivery(ctx, request)


async def take_delivery(ctx: ObjectContext, request: DeliveryRequest) -> DriverPosition | None:
    """The driver is on `request` now: their phone is pushed it. Where they are, if known."""
    DRIVER_STATUS.set(ctx, DriverStatus.DELIVERING)
    ASSIGNED_DELIVERY.set(ctx, request)
    location = await DRIVER_LOCATION.get(ctx)
    position = await track(ctx, request, location, await now_ms(ctx)) if location is not None else None
    await push_to_phone(ctx, PhoneWork(delivery=request))
    return position


async def push_to_phone(ctx: ObjectContext, work: PhoneWork) -> None:
    """Push the driver's work (an offer or a delivery) to their phone app, if it registered.

    The push carries the work, as a phone's push notification would, so the phone need not ask.
    """
    if (phone_app := await PHONE_APP.get(ctx)) is not None:
        ctx.generic_send(phone_app, "pollForWork", PHONE_WORK.serialize(work), key=ctx.key())


@driver_digital_twin.handler(name="registerPhoneApp", ingress_private=True)
async def register_phone_app(ctx: ObjectContext, service: str) -> None:
    """A phone app (a service keyed by driver id) to push `pollForWork` to when work is assigned; the
    work that waits for the driver already (a delivery, or an offer) is pushed at once. (An earlier
    release's phone; this one's calls `startShift`.)"""
    if not isinstance(service, str) or not service:
        raise TerminalError(f"service: expected a service name, got {service!r}", 400)
    PHONE_APP.set(ctx, service)
    await push_work(ctx)


async def push_work(ctx: ObjectContext) -> None:
    """Push the work that waits for the driver (a delivery, or else an offer) to their phone, if any."""
    if (delivery := await ASSIGNED_DELIVERY.get(ctx)) is not None:
        await push_to_phone(ctx, PhoneWork(delivery=delivery))
    elif (offer := await OFFER.get(ctx)) is not None:
        await push_to_phone(ctx, PhoneWork(offer=offer))


async def track(
    ctx: ObjectContext, delivery: DeliveryRequest, location: Location, now: int
) -> DriverPosition | None:
    """Keep where the driver is on `delivery` (None: a delivery of no order); tell its order while watched."""
    if delivery.order_id is None:
        return None
    position = manager.driver_position(ctx.key(), delivery, location, now)
    POSITION.set(ctx, position)
    if now < (await WATCHED_UNTIL.get(ctx) or 0):
        tell(ctx, delivery.order_id, position)
    return position


def tell(ctx: ObjectContext, order_id: str, position: DriverPosition) -> None:
    TOLD.set(ctx, position)
    ctx.object_send(status.track_driver, key=order_id, arg=position)


def forget_delivery(ctx: ObjectContext) -> None:
    """The driver is no longer on a delivery: drop it and what was kept of it."""
    for key in (ASSIGNED_DELIVERY, LINK, POSITION, TOLD, WATCHED_UNTIL):
        key.clear(ctx)


@driver_digital_twin.handler(input_serde=required(DriverWatch), ingress_private=True)
async def watch(ctx: ObjectContext, watched: DriverWatch) -> None:
    """Someone watches the order (order-status tells): pass every location on until `until`, from now."""
    delivery = await ASSIGNED_DELIVERY.get(ctx)
    if delivery is None or delivery.delivery_id != watched.delivery_id or delivery.order_id is None:
        return
    WATCHED_UNTIL.set(ctx, watched.until)
    position = await POSITION.get(ctx)
    if position is not None and position != await TOLD.get(ctx):
        tell(ctx, delivery.order_id, position)


@driver_digital_twin.handler(name="getPosition", kind="shared", ingress_private=True)
async def get_position(ctx: ObjectSharedContext) -> DriverPosition | None:
    """Where the driver is on the current delivery, and when it arrives at that pace (None when off)."""
    return await POSITION.get(ctx)


async def drop_delivery(ctx: ObjectContext, delivery_id: str) -> bool:
    """Unassign `delivery_id` if it is the driver's current delivery; whether it was."""
    delivery = await ASSIGNED_DELIVERY.get(ctx)
    if delivery is None or delivery.delivery_id != delivery_id:
        return False
    forget_delivery(ctx)
    return True


async def wait_for_work(ctx: ObjectContext) -> None:
    """The driver is free again: back in their region's pool, where they were last heard."""
    DRIVER_STATUS.set(ctx, DriverStatus.WAITING_FOR_WORK)
    region = await REGION.get(ctx)
    location = await DRIVER_LOCATION.get(ctx)
    if region is not None and location is not None:
        join_pool(ctx, region, location, await now_ms(ctx))


async def picked_up(ctx: ObjectContext, delivery_id: str) -> bool:
    """Whether the driver is on `delivery_id` and picked the order up already."""
    delivery = await ASSIGNED_DELIVERY.get(ctx)
    return delivery is not None and delivery.delivery_id == delivery_id and delivery.order_picked_up


@driver_digital_twin.handler(name="releaseDelivery", ingress_private=True)
async def release_delivery(ctx: ObjectContext, delivery_id: str) -> bool:
    """The delivery was called off (its order cancelled): the driver waits for work again. Answers
    false if the driver picked the order up first: the delivery stays theirs, and goes on."""
    if await picked_up(ctx, delivery_id):
        return False
    if await drop_delivery(ctx, delivery_id):
        await wait_for_work(ctx)
    return True


@driver_digital_twin.handler(name="takeOffDuty", ingress_private=True)
async def take_off_duty(ctx: ObjectContext, delivery_id: str) -> bool:
    """The driver went silent on this delivery: unassign it and take the driver out of the pool.
    Answers false if the driver picked the order up first: the delivery stays theirs."""
    if await picked_up(ctx, delivery_id):
        return False
    if await drop_delivery(ctx, delivery_id):
        DRIVER_STATUS.set(ctx, DriverStatus.IDLE)
        REGION.clear(ctx)
    return True


async def current_delivery(ctx: ObjectContext, delivery_id: str | None) -> DeliveryRequest:
    """The delivery the phone reports on; 409 if the phone speaks of another one (it was withdrawn)."""
    await expect_status(ctx, DriverStatus.DELIVERING)
    delivery = await assigned_delivery(ctx)
    if delivery_id is not None and delivery_id != delivery.delivery_id:
        raise TerminalError(f"delivery {delivery_id} is no longer assigned to driver {ctx.key()}", 409)
    return delivery


@driver_digital_twin.handler(name="notifyDeliveryPickUp")
async def notify_delivery_pick_up(ctx: ObjectContext, delivery_id: str | None = None) -> None:
    """Called by the driver's phone at pickup; 409 if the order was cancelled first, or the driver
    replaced (do not take it). The twin decides: the workflow calls the delivery off, or replaces the
    driver, through it (`releaseDelivery`, `takeOffDuty`), and hears of the pickup through an
    awakeable. An earlier release's order has its delivery manager decide."""
    delivery = await current_delivery(ctx, delivery_id)
    link = await LINK.get(ctx)
    if link is None:
        await ctx.object_call(manager.notify_delivery_pickup, key=delivery.delivery_id, arg=ctx.key())
    elif not delivery.order_picked_up:
        ctx.resolve_awakeable(link.picked_up_awakeable, True)
    delivery.order_picked_up = True
    ASSIGNED_DELIVERY.set(ctx, delivery)
    await arrived_at(ctx, delivery.restaurant_location, delivery)


@driver_digital_twin.handler(name="notifyDeliveryDelivered")
async def notify_delivery_delivered(ctx: ObjectContext, delivery_id: str | None = None) -> None:
    """Called by the driver's phone when the order reached the customer (409 before its pickup). The
    driver's shift goes on: they wait for work again, as `setDriverAvailable` would make them (which
    a phone may still call; `setDriverUnavailable` ends the shift)."""
    delivery = await current_delivery(ctx, delivery_id)
    link = await LINK.get(ctx)
    if link is None:
        await ctx.object_call(manager.notify_delivery_delivered, key=delivery.delivery_id, arg=ctx.key())
    elif not delivery.order_picked_up:
        raise TerminalError(f"delivery {delivery.delivery_id} was not picked up yet", 409)
    else:
        ctx.resolve_awakeable(link.delivered_awakeable, True)
    await arrived_at(ctx, delivery.customer_location)
    forget_delivery(ctx)
    await wait_for_work(ctx)


async def arrived_at(ctx: ObjectContext, location: Location, delivery: DeliveryRequest | None = None) -> None:
    """The driver is at the restaurant (pickup) or at the customer (delivery): as good as a location
    report, so the phone need not send one on arrival. A delivery still on its way is tracked from there."""
    now = await heard_at(ctx, location)
    if delivery is not None:
        await track(ctx, delivery, location, now)


@driver_digital_twin.handler(name="handleDriverLocationUpdateEvent", input_serde=required(LocationEvent))
async def handle_driver_location_update_event(ctx: ObjectContext, event: LocationEvent) -> None:
    """A location event from the driver's phone; the order the driver is on gets the new position and ETA.

    Delivered by the Kafka subscription on driver-updates (or a send on the ingress). A publish may
    be repeated, so an event stamped no later than the last one applied changes nothing.
    """
    await apply_location(ctx, event)


async def note_location(ctx: ObjectContext, event: LocationEvent) -> tuple[Location, int] | None:
    """Take the driver's location from `event`: the location, and when it was heard; None (and
    nothing changes) if an event stamped as late or later was applied already."""
    if event.at is not None:
        if (applied := await LOCATION_AT.get(ctx)) is not None and event.at <= applied:
            return None
        LOCATION_AT.set(ctx, event.at)
    location = Location(lat=event.lat, long=event.long)
    return location, await heard_at(ctx, location)


async def heard_at(ctx: ObjectContext, location: Location) -> int:
    """The driver is at `location` now (returned, epoch ms)."""
    DRIVER_LOCATION.set(ctx, location)
    now = await now_ms(ctx)
    LAST_SEEN.set(ctx, now)
    return now


async def apply_location(ctx: ObjectContext, event: LocationEvent) -> None:
    """A location event: the delivery the driver is on is tracked from there, a waiting driver followed."""
    if (noted := await note_location(ctx, event)) is None:
        return
    location, now = noted
    delivery = await ASSIGNED_DELIVERY.get(ctx)
    if delivery is not None:
        await track(ctx, delivery, location, now)
    elif await DRIVER_STATUS.get(ctx) == DriverStatus.WAITING_FOR_WORK:
        await follow_in_pool(ctx, location, now)


async def follow_in_pool(ctx: ObjectContext, location: Location, now: int) -> None:
    """A waiting driver's matcher learns where they are once they moved noticeably (not every report)."""
    region, known = await REGION.get(ctx), await POOL_LOCATION.get(ctx)
    if region is not None and (known is None or geo.distance_m(known, location) > POOL_MOVE_M):
        join_pool(ctx, region, location, now)


@driver_digital_twin.handler(name="lastSeen", kind="shared", ingress_private=True)
async def last_seen(ctx: ObjectSharedContext) -> int | None:
    """When the driver was last heard of (epoch ms): a location report, their pickup or delivery."""
    return await LAST_SEEN.get(ctx)
