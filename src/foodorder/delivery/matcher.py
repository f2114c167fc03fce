"""driver-delivery-matcher (key = region): pairs available drivers with deliveries waiting for one."""

from restate import ObjectContext, TerminalError, VirtualObject

from foodorder.models import PendingDelivery
from foodorder.state import StateKey, required

driver_delivery_matcher = VirtualObject("driver-delivery-matcher", ingress_private=True)

PENDING_DELIVERIES: StateKey[list[PendingDelivery]] = StateKey("pending-deliveries", list[PendingDelivery])
AVAILABLE_DRIVERS: StateKey[list[str]] = StateKey("available-drivers", list[str])


@driver_delivery_matcher.handler(name="setDriverAvailable")
async def set_driver_available(ctx: ObjectContext, driver_id: str) -> None:
    """A driver is ready for work: hand them the oldest waiting delivery, or remember them."""
    if not isinstance(driver_id, str) or not driver_id:
        raise TerminalError(f"driverId: expected a non-empty string, got {driver_id!r}", 400)
    pending = await PENDING_DELIVERIES.get(ctx) or []
    if pending:
        PENDING_DELIVERIES.set(ctx, pending[1:])
        ctx.resolve_awakeable(pending[0].promise_id, driver_id)
        return
    available = await AVAILABLE_DRIVERS.get(ctx) or []
    if driver_id not in available:
        AVAILABLE_DRIVERS.set(ctx, [*available, driver_id])


@driver_delivery_matcher.handler(name="requestDriverForDelivery", input_serde=required(PendingDelivery))
async def request_driver_for_delivery(ctx: ObjectContext, request: PendingDelivery) -> None:
    """A delivery needs a driver: give it the longest-waiting driver, or queue it until one comes."""
    available = await AVAILABLE_DRIVERS.get(ctx) or []
    if available:
        AVAILABLE_DRIVERS.set(ctx, available[1:])
        ctx.resolve_awakeable(request.promise_id, available[0])
        return
    pending = await PENDING_DELIVERIES.get(ctx) or []
    PENDING_DELIVERIES.set(ctx, [*pending, request])
