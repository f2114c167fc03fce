"""driver-delivery-matcher (key = region): pairs available drivers with deliveries waiting for one."""

from restate import ObjectContext, TerminalError, VirtualObject

from foodorder.delivery import manager
from foodorder.models import PendingDelivery
from foodorder.state import StateKey, required

driver_delivery_matcher = VirtualObject("driver-delivery-matcher", ingress_private=True)

PENDING_DELIVERIES: StateKey[list[PendingDelivery]] = StateKey("pending-deliveries", list[PendingDelivery])
AVAILABLE_DRIVERS: StateKey[list[str]] = StateKey("available-drivers", list[str])


def non_empty(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TerminalError(f"{name}: expected a non-empty string, got {value!r}", 400)
    return value


@driver_delivery_matcher.handler(name="setDriverAvailable")
async def set_driver_available(ctx: ObjectContext, driver_id: str) -> None:
    """A driver is ready for work: hand them the oldest waiting delivery, or remember them."""
    non_empty("driverId", driver_id)
    pending = await PENDING_DELIVERIES.get(ctx) or []
    if pending:
        PENDING_DELIVERIES.set(ctx, pending[1:])
        ctx.object_send(manager.driver_found, key=pending[0].delivery_id, arg=driver_id)
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
        ctx.object_send(manager.driver_found, key=request.delivery_id, arg=available[0])
        return
    pending = await PENDING_DELIVERIES.get(ctx) or []
    if request not in pending:
        PENDING_DELIVERIES.set(ctx, [*pending, request])


@driver_delivery_matcher.handler()
async def withdraw(ctx: ObjectContext, delivery_id: str) -> None:
    """A delivery no longer needs a driver (its order was cancelled)."""
    non_empty("deliveryId", delivery_id)
    pending = await PENDING_DELIVERIES.get(ctx) or []
    PENDING_DELIVERIES.set(ctx, [p for p in pending if p.delivery_id != delivery_id])


@driver_delivery_matcher.handler(name="removeDriver")
async def remove_driver(ctx: ObjectContext, driver_id: str) -> None:
    """A driver stopped waiting for work (end of shift)."""
    non_empty("driverId", driver_id)
    available = await AVAILABLE_DRIVERS.get(ctx) or []
    AVAILABLE_DRIVERS.set(ctx, [d for d in available if d != driver_id])
