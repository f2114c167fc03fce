"""driver-digital-twin (key = driver id): a driver's status, location and assigned delivery."""

from restate import ObjectContext, TerminalError, VirtualObject

from foodorder.delivery import manager, matcher
from foodorder.models import DeliveryRequest, DriverStatus, Location
from foodorder.state import StateKey, required

driver_digital_twin = VirtualObject("driver-digital-twin")

DRIVER_STATUS: StateKey[DriverStatus] = StateKey("driver-status", DriverStatus)
ASSIGNED_DELIVERY: StateKey[DeliveryRequest] = StateKey("assigned-delivery", DeliveryRequest)
DRIVER_LOCATION: StateKey[Location] = StateKey("driver-location", Location)


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


@driver_digital_twin.handler(name="setDriverAvailable")
async def set_driver_available(ctx: ObjectContext, region: str) -> None:
    """Called by the driver's phone at the start of a shift or after a delivery."""
    if not isinstance(region, str) or not region:
        raise TerminalError(f"region: expected a non-empty string, got {region!r}", 400)
    await expect_status(ctx, DriverStatus.IDLE)
    DRIVER_STATUS.set(ctx, DriverStatus.WAITING_FOR_WORK)
    ctx.object_send(matcher.set_driver_available, key=region, arg=ctx.key())


@driver_digital_twin.handler(name="getAssignedDelivery")
async def get_assigned_delivery(ctx: ObjectContext) -> DeliveryRequest | None:
    """Polled by the driver's phone: the delivery to do, if any."""
    return await ASSIGNED_DELIVERY.get(ctx)


@driver_digital_twin.handler(
    name="assignDeliveryJob", input_serde=required(DeliveryRequest), ingress_private=True
)
async def assign_delivery_job(ctx: ObjectContext, request: DeliveryRequest) -> None:
    """Called by the delivery manager when the matcher picked this driver."""
    await expect_status(ctx, DriverStatus.WAITING_FOR_WORK)
    DRIVER_STATUS.set(ctx, DriverStatus.DELIVERING)
    ASSIGNED_DELIVERY.set(ctx, request)
    location = await DRIVER_LOCATION.get(ctx)
    if location is not None:
        ctx.object_send(manager.handle_driver_location_update, key=request.delivery_id, arg=location)


@driver_digital_twin.handler(name="notifyDeliveryPickUp")
async def notify_delivery_pick_up(ctx: ObjectContext) -> None:
    """Called by the driver's phone at pickup from the restaurant."""
    await expect_status(ctx, DriverStatus.DELIVERING)
    delivery = await assigned_delivery(ctx)
    ctx.object_send(manager.notify_delivery_pickup, key=delivery.delivery_id, arg=None)


@driver_digital_twin.handler(name="notifyDeliveryDelivered")
async def notify_delivery_delivered(ctx: ObjectContext) -> None:
    """Called by the driver's phone when the order reached the customer."""
    await expect_status(ctx, DriverStatus.DELIVERING)
    delivery = await assigned_delivery(ctx)
    ASSIGNED_DELIVERY.clear(ctx)
    DRIVER_STATUS.set(ctx, DriverStatus.IDLE)
    ctx.object_send(manager.notify_delivery_delivered, key=delivery.delivery_id, arg=None)


@driver_digital_twin.handler(name="handleDriverLocationUpdateEvent", input_serde=required(Location))
async def handle_driver_location_update_event(ctx: ObjectContext, location: Location) -> None:
    """A location event from the driver's phone; forwarded to the delivery the driver is on, if any."""
    DRIVER_LOCATION.set(ctx, location)
    delivery = await ASSIGNED_DELIVERY.get(ctx)
    if delivery is not None:
        ctx.object_send(manager.handle_driver_location_update, key=delivery.delivery_id, arg=location)
