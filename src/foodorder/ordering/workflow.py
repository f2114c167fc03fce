"""order-workflow: one durable workflow per order, from payment to delivery (the seed's numbered flow).

Every wait for the outside world races a cancellation and, where the outside world can stall, a
timer. Every way out before DELIVERED gives the customer's money back (void, or refund once
captured); the money is captured at pickup, after which the order can no longer be cancelled.
"""

from datetime import timedelta
from typing import Any, Literal

import restate
from restate import RestateDurableFuture, TerminalError, Workflow, WorkflowContext, WorkflowSharedContext
from restate.context import DurablePromise

from foodorder.catalog import load_catalog
from foodorder.clients import payment, restaurant
from foodorder.config import get_settings
from foodorder.delivery import manager
from foodorder.models import DriverSelected, Order, Reassignment, Status, StatusChange
from foodorder.ordering import status as order_status
from foodorder.state import PydanticSerde, StateKey, now_ms, required

order_workflow = Workflow("order-workflow")

ORDER: StateKey[Order] = StateKey("order", Order)
STATUS: StateKey[Status] = StateKey("status", Status)
HISTORY: StateKey[list[StatusChange]] = StateKey("history", list[StatusChange])
# Durable promises the outside world resolves through the shared handlers below.
PREPARATION_FINISHED = "preparation_finished"
DRIVER_SELECTED = "driver_selected"
DRIVER_AT_RESTAURANT = "driver_at_restaurant"
DELIVERY_FINISHED = "delivery_finished"
CANCEL_REQUESTED = "cancel_requested"  # resolved with the reason by `cancel`
CANCEL_OUTCOME = "cancel_outcome"  # resolved by `run`: CANCELLED, or the status that made it too late
ENDED = "ended"  # resolved by `run` with the final status, once everything is undone

PaymentOperation = Literal["capture", "void", "refund"]


async def set_status(ctx: WorkflowContext, status: Status, reason: str | None = None) -> None:
    """Record the new status and append it, with its time, to the order's history."""
    change = StatusChange(status=status, at=await now_ms(ctx), reason=reason)
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


class Payment:
    """The order's authorization at the payment provider; each call carries a token from the context."""

    def __init__(self, ctx: WorkflowContext, order: Order) -> None:
        self.ctx, self.order = ctx, order
        self.authorization_id: str | None = None
        self.captured = False

    async def authorize(self) -> bool:
        """Hold the order's price; False when the provider declines."""
        self.authorization_id = await self.ctx.run_typed(
            "authorize payment",
            payment.authorize,
            order_id=self.order.id,
            idempotency_key=str(self.ctx.uuid()),
            amount=self.order.total_cost,
        )
        return self.authorization_id is not None

    async def settle(self, operation: PaymentOperation) -> None:
        """Capture, void or refund the authorization, once."""
        assert self.authorization_id is not None
        await self.ctx.run_typed(
            f"{operation} payment",
            payment.settle,
            operation=operation,
            authorization_id=self.authorization_id,
            idempotency_key=str(self.ctx.uuid()),
        )
        self.captured = operation == "capture"

    async def release(self) -> None:
        """Give the customer their money back: void the hold, or refund what was captured."""
        if self.authorization_id is not None:
            await self.settle("refund" if self.captured else "void")


@order_workflow.main(input_serde=required(Order))
async def run(ctx: WorkflowContext, order: Order) -> None:
    """Process one order: pay, wait until it is due, have it prepared, then delivered."""
    if order.id != ctx.key():
        raise TerminalError(f"id: {order.id!r} differs from the workflow key {ctx.key()!r}", 400)
    ORDER.set(ctx, order)
    reason = invalid_order_reason(order)
    if reason is not None:
        await end(ctx, Status.REJECTED, reason)
        raise TerminalError(reason, 400)
    money = Payment(ctx, order)
    try:
        await process(ctx, order, money)
    except TerminalError as error:
        # A step failed for good (say the POS answered 4xx): the order still ends, money released.
        await give_up(ctx, money, Status.CANCELLED, f"the order could not be completed: {error}")


async def process(ctx: WorkflowContext, order: Order, money: Payment) -> Status:
    """The order's life; returns its final status."""
    settings = get_settings()

    # 1. The order exists; the customer's money is held.
    await set_status(ctx, Status.CREATED)
    if not await money.authorize():
        return await end(ctx, Status.REJECTED, "payment declined")
    if (reason := await ctx.promise(CANCEL_REQUESTED, type_hint=str).peek()) is not None:
        return await give_up(ctx, money, Status.CANCELLED, reason)

    # 2. Wait, durably, until the order is due; a cancellation cuts the wait short.
    await set_status(ctx, Status.SCHEDULED)
    delay = timedelta(seconds=settings.scaled(order.delivery_delay / 1000))
    which, value = await restate.select(due=ctx.sleep(delay, name="delivery delay"), cancel=cancellation(ctx))
    if which == "cancel":
        return await give_up(ctx, money, Status.CANCELLED, value)

    # 3. The restaurant takes (or refuses) the order, and must report it ready in time.
    refused = await ctx.run_typed(
        "prepare at restaurant",
        restaurant.prepare,
        order_id=order.id,
        restaurant_id=order.restaurant_id,
        product_ids=[p.product_id for p in order.products],
    )
    if refused is not None:
        return await give_up(ctx, money, Status.REJECTED, f"the restaurant refused: {refused}")
    await set_status(ctx, Status.IN_PREPARATION)
    which, value = await restate.select(
        ready=ctx.promise(PREPARATION_FINISHED, type_hint=bool).value(),
        cancel=cancellation(ctx),
        timeout=timer(ctx, settings.restaurant_timeout_s, "restaurant timeout"),
    )
    if which != "ready":
        reason = value if which == "cancel" else "the restaurant did not report the order ready in time"
        return await give_up(ctx, money, Status.CANCELLED, reason, at_restaurant=True)

    # 4. The delivery manager finds a driver, and another one if the driver goes silent before pickup.
    await set_status(ctx, Status.SCHEDULING_DELIVERY)
    delivery_id = str(ctx.uuid())
    ctx.object_send(manager.start, key=delivery_id, arg=order)
    attempt = 0
    while True:
        which, value = await restate.select(
            driver=ctx.promise(driver_selected(attempt), type_hint=str).value(),
            cancel=cancellation(ctx),
            timeout=timer(ctx, settings.driver_search_timeout_s, "driver search timeout"),
        )
        if which != "driver":
            reason = value if which == "cancel" else "no driver was found in time"
            return await give_up(ctx, money, Status.CANCELLED, reason, delivery_id=delivery_id)
        await set_status(ctx, Status.WAITING_FOR_DRIVER, f"driver {value}")
        which, value = await restate.select(
            pickup=ctx.promise(DRIVER_AT_RESTAURANT, type_hint=bool).value(),
            replaced=ctx.promise(driver_replaced(attempt), type_hint=str).value(),
            cancel=cancellation(ctx),
        )
        if which == "pickup":
            break
        if which == "cancel":
            return await give_up(ctx, money, Status.CANCELLED, value, delivery_id=delivery_id)
        attempt += 1
        await set_status(ctx, Status.SCHEDULING_DELIVERY, value)

    # 5. Picked up: from now on the order cannot be cancelled, and the money is taken.
    await resolve(ctx, CANCEL_OUTCOME, Status.IN_DELIVERY)
    await money.settle("capture")
    await set_status(ctx, Status.IN_DELIVERY)
    await ctx.promise(DELIVERY_FINISHED, type_hint=bool).value()
    return await end(ctx, Status.DELIVERED)


async def give_up(
    ctx: WorkflowContext,
    money: Payment,
    status: Status,
    reason: str,
    at_restaurant: bool = False,
    delivery_id: str | None = None,
) -> Status:
    """End the order without delivering it: undo what was started; the customer pays nothing.

    The decision is published first, so that a pickup racing with it is refused instead of
    waiting for an undo that waits for it.
    """
    await resolve(ctx, CANCEL_OUTCOME, status)
    if at_restaurant:
        await ctx.run_typed("cancel at restaurant", restaurant.cancel, order_id=ctx.key())
    if delivery_id is not None:
        await ctx.object_call(manager.cancel, key=delivery_id, arg=None)
    await money.release()
    return await end(ctx, status, reason)


async def end(ctx: WorkflowContext, status: Status, reason: str | None = None) -> Status:
    """Record the final status and tell whoever asked to cancel how the order ended."""
    await set_status(ctx, status, reason)
    await resolve(ctx, CANCEL_OUTCOME, status)
    await resolve(ctx, ENDED, status)
    return status


def cancellation(ctx: WorkflowContext) -> RestateDurableFuture[str]:
    """Completes, with its reason, once someone asked to cancel the order."""
    return ctx.promise(CANCEL_REQUESTED, type_hint=str).value()


def timer(ctx: WorkflowContext, seconds: float, name: str) -> RestateDurableFuture[None]:
    return ctx.sleep(timedelta(seconds=get_settings().scaled(seconds)), name=name)


def driver_selected(attempt: int) -> str:
    """The promise resolved with the driver of an attempt (the seed's name for the first)."""
    return DRIVER_SELECTED if attempt == 0 else f"{DRIVER_SELECTED}-{attempt}"


def driver_replaced(attempt: int) -> str:
    """The promise resolved, with the reason, when the driver of an attempt is replaced."""
    return f"driver_replaced-{attempt}"


async def resolve(ctx: WorkflowContext | WorkflowSharedContext, promise: str, value: object = True) -> None:
    """Resolve a promise of the order; resolving it again (a retried callback) is harmless."""
    handle: DurablePromise[Any] = ctx.promise(promise)
    try:
        await handle.resolve(value)
    except TerminalError:
        if await handle.peek() is None:
            raise


@order_workflow.handler(name="finishedPreparation")
async def finished_preparation(ctx: WorkflowSharedContext) -> None:
    """Called by the restaurant when the order is ready for pickup."""
    await resolve(ctx, PREPARATION_FINISHED)


@order_workflow.handler(name="selectedDriver", input_serde=required(DriverSelected), ingress_private=True)
async def selected_driver(ctx: WorkflowSharedContext, selected: DriverSelected) -> None:
    """Called by the delivery manager once a driver took the delivery."""
    await resolve(ctx, driver_selected(selected.attempt), selected.driver_id)


@order_workflow.handler(name="driverReplaced", input_serde=required(Reassignment), ingress_private=True)
async def driver_was_replaced(ctx: WorkflowSharedContext, reassignment: Reassignment) -> None:
    """Called by the delivery manager when the driver went silent and another one is sought."""
    await resolve(ctx, driver_replaced(reassignment.attempt), reassignment.reason)


@order_workflow.handler(name="signalDriverAtRestaurant", ingress_private=True)
async def signal_driver_at_restaurant(ctx: WorkflowSharedContext) -> None:
    """Called by the delivery manager when the driver picked the order up; 409 if it was cancelled first."""
    await resolve(ctx, DRIVER_AT_RESTAURANT)
    outcome = Status(await ctx.promise(CANCEL_OUTCOME, type_hint=str).value())
    if outcome != Status.IN_DELIVERY:
        raise TerminalError(f"the order is {outcome}: do not pick it up", 409)


@order_workflow.handler(name="signalDeliveryFinished", ingress_private=True)
async def signal_delivery_finished(ctx: WorkflowSharedContext) -> None:
    """Called by the delivery manager when the order reached the customer."""
    await resolve(ctx, DELIVERY_FINISHED)


@order_workflow.handler(name="cancel")
async def cancel(ctx: WorkflowSharedContext, reason: str | None = None) -> Status:
    """Cancel the order unless it was picked up: answers CANCELLED, or 409 naming the status."""
    if reason is not None and not isinstance(reason, str):
        raise TerminalError(f"reason: expected a string, got {reason!r}", 400)
    if await ORDER.get(ctx) is None:
        raise TerminalError(f"no order {ctx.key()!r}", 404)
    await resolve(ctx, CANCEL_REQUESTED, reason or "cancelled on request")
    outcome = Status(await ctx.promise(CANCEL_OUTCOME, type_hint=str).value())
    if outcome != Status.CANCELLED:
        current = await STATUS.get(ctx) or outcome
        raise TerminalError(f"the order can no longer be cancelled: it is {current}", 409)
    return Status(await ctx.promise(ENDED, type_hint=str).value())


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
