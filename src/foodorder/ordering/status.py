"""order-status: what the customer's screen asks for, the order's status and ETA."""

from restate import ObjectContext, ObjectSharedContext, TerminalError, VirtualObject

from foodorder.models import OrderStatus, Status
from foodorder.ordering import workflow
from foodorder.state import StateKey

order_status = VirtualObject("order-status")

ETA: StateKey[float] = StateKey("eta", float)


@order_status.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> OrderStatus:
    """The status and ETA (milliseconds) of the order; shared, so it never waits behind an ETA write."""
    eta = await ETA.get(ctx)
    status: Status | None = await ctx.workflow_call(workflow.get_status, key=ctx.key(), arg=None)
    return OrderStatus(status=status, eta=eta)


@order_status.handler(name="setETA")
async def set_eta(ctx: ObjectContext, eta: float) -> None:
    """Record the latest ETA of the delivery, in milliseconds."""
    if isinstance(eta, bool) or not isinstance(eta, int | float) or eta < 0:
        raise TerminalError(f"eta: expected a number of milliseconds >= 0, got {eta!r}", 400)
    ETA.set(ctx, eta)
