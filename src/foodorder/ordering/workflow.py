"""order-workflow: one durable workflow per order, from payment to delivery (the seed's numbered flow)."""

from datetime import timedelta

from restate import TerminalError, Workflow, WorkflowContext, WorkflowSharedContext

from foodorder.catalog import load_catalog
from foodorder.clients import payment, restaurant
from foodorder.config import get_settings
from foodorder.delivery import manager
from foodorder.models import Order, Status, StatusChange
from foodorder.ordering import status as order_status
from foodorder.state import PydanticSerde, StateKey, required

order_workflow = Workflow("order-workflow")

ORDER: StateKey[Order] = StateKey("order", Order)
STATUS: StateKey[Status] = StateKey("status", Status)
HISTORY: StateKey[list[StatusChange]] = StateKey("history", list[StatusChange])
# Durable promises the outside world resolves through the shared handlers below.
PREPARATION_FINISHED = "preparation_finished"
DRIVER_SELECTED = "driver_selected"
DRIVER_AT_RESTAURANT = "driver_at_restaurant"
DELIVERY_FINISHED = "delivery_finished"


async def set_status(ctx: WorkflowContext, status: Status, reason: str | None = None) -> None:
    """Record the new status and append it, with its time, to the order's history."""
    at = int(await ctx.time() * 1000)
    change = StatusChange(status=status, at=at, reason=reason)
    history = await HISTORY.get(ctx) or []
    HISTORY.set(ctx, [*history, change])
    STATUS.set(ctx, status)
    ctx.object_send(order_status.record_status, key=ctx.key(), arg=change)


def invalid_order_reason(order: Order) -> str | None:
    """Why the catalog cannot serve this order, naming the field; None when it can."""
    shop = load_catalog().restaurant(order.restaurant_id)
    if shop is None:
        return f"restaurantId: unknown restaurant {order.restaurant_id!r}"
    for i, product in enumerate(order.products):
        if shop.item(product.product_id) is None:
            return f"products[{i}].productId: {order.restaurant_id!r} has no product {product.product_id!r}"
    return None


@order_workflow.main(input_serde=required(Order))
async def run(ctx: WorkflowContext, order: Order) -> None:
    """Process one order: pay, wait until it is due, have it prepared, then delivered."""
    if order.id != ctx.key():
        raise TerminalError(f"id: {order.id!r} differs from the workflow key {ctx.key()!r}", 400)
    ORDER.set(ctx, order)
    reason = invalid_order_reason(order)
    if reason is not None:
        await set_status(ctx, Status.REJECTED, reason)
        raise TerminalError(reason, 400)

    # 1. The order exists.
    await set_status(ctx, Status.CREATED)

    # 2. Payment, with an idempotency token drawn from the context so that retries reuse it.
    token = str(ctx.uuid())
    paid = await ctx.run_typed(
        "charge payment", payment.charge, order_id=order.id, idempotency_key=token, amount=order.total_cost
    )
    if not paid:
        await set_status(ctx, Status.REJECTED, "payment declined")
        return

    # 3. Wait, durably, until the order is due.
    await set_status(ctx, Status.SCHEDULED)
    delay_s = get_settings().scaled(order.delivery_delay / 1000)
    if delay_s > 0:
        await ctx.sleep(timedelta(seconds=delay_s), name="delivery delay")

    # 4. The restaurant prepares the order and calls finishedPreparation when it is ready.
    await ctx.run_typed(
        "prepare at restaurant", restaurant.prepare, order_id=order.id, restaurant_id=order.restaurant_id
    )
    await set_status(ctx, Status.IN_PREPARATION)
    await ctx.promise(PREPARATION_FINISHED, type_hint=bool).value()

    # 5. The delivery manager finds a driver and reports each phase of the delivery.
    await set_status(ctx, Status.SCHEDULING_DELIVERY)
    ctx.object_send(manager.start, key=str(ctx.uuid()), arg=order)
    await ctx.promise(DRIVER_SELECTED, type_hint=bool).value()
    await set_status(ctx, Status.WAITING_FOR_DRIVER)
    await ctx.promise(DRIVER_AT_RESTAURANT, type_hint=bool).value()
    await set_status(ctx, Status.IN_DELIVERY)
    await ctx.promise(DELIVERY_FINISHED, type_hint=bool).value()
    await set_status(ctx, Status.DELIVERED)


async def _resolve(ctx: WorkflowSharedContext, promise: str) -> None:
    """Resolve a promise of the order; a repeated signal (a retried callback) is harmless."""
    try:
        await ctx.promise(promise, type_hint=bool).resolve(True)
    except TerminalError:
        if await ctx.promise(promise, type_hint=bool).peek() is None:
            raise


@order_workflow.handler(name="finishedPreparation")
async def finished_preparation(ctx: WorkflowSharedContext) -> None:
    """Called by the restaurant when the order is ready for pickup."""
    await _resolve(ctx, PREPARATION_FINISHED)


@order_workflow.handler(name="selectedDriver", ingress_private=True)
async def selected_driver(ctx: WorkflowSharedContext) -> None:
    """Called by the delivery manager once a driver took the delivery."""
    await _resolve(ctx, DRIVER_SELECTED)


@order_workflow.handler(name="signalDriverAtRestaurant", ingress_private=True)
async def signal_driver_at_restaurant(ctx: WorkflowSharedContext) -> None:
    """Called by the delivery manager when the driver picked the order up."""
    await _resolve(ctx, DRIVER_AT_RESTAURANT)


@order_workflow.handler(name="signalDeliveryFinished", ingress_private=True)
async def signal_delivery_finished(ctx: WorkflowSharedContext) -> None:
    """Called by the delivery manager when the order reached the customer."""
    await _resolve(ctx, DELIVERY_FINISHED)


@order_workflow.handler(name="getStatus")
async def get_status(ctx: WorkflowSharedContext) -> Status | None:
    """The order's current status (null before the workflow ran)."""
    return await STATUS.get(ctx)


@order_workflow.handler(name="getHistory", output_serde=PydanticSerde(list[StatusChange]))
async def get_history(ctx: WorkflowSharedContext) -> list[StatusChange]:
    """Every status the order went through, with its time and reason."""
    return await HISTORY.get(ctx) or []


@order_workflow.handler(name="getOrder")
async def get_order(ctx: WorkflowSharedContext) -> Order | None:
    """The order as it was submitted (null before the workflow ran)."""
    return await ORDER.get(ctx)
