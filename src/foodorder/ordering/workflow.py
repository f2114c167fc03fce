"""order-workflow: one durable workflow per order, from payment to delivery (the seed's numbered flow).

Every wait for the outside world races a cancellation and, where the outside world can stall, a
timer that only counts time the system was up to hear it. Every call to the outside world is a
durable step with a retry policy of its own. Every way out before DELIVERED undoes exactly what was
done (the restaurant's ticket, the driver, the customer's hold or charge); the money is captured at
pickup, after which the order can no longer be cancelled.
"""

import random
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import restate
from restate import (
    RestateDurableFuture,
    RunOptions,
    TerminalError,
    Workflow,
    WorkflowContext,
    WorkflowSharedContext,
)
from restate.context import DurablePromise

from foodorder import geo
from foodorder.catalog import Restaurant, load_catalog
from foodorder.clients import payment, restaurant
from foodorder.clients.payment import PaymentOperation
from foodorder.config import get_settings
from foodorder.delivery import matcher, twin
from foodorder.models import (
    Courier,
    Decision,
    DeliveryRequest,
    Dispatch,
    DriverSelected,
    OfferPolicy,
    Order,
    OrderEvent,
    OrderTerms,
    PendingDelivery,
    Reassignment,
    Refusal,
    RejectionReason,
    Status,
    StatusChange,
    StoreState,
    WorkflowLink,
    epoch_ms,
)
from foodorder.ordering import board, store_state
from foodorder.ordering import status as order_status
from foodorder.ordering.steps import Interrupted, RetryPolicy, StepFailed, Try, durable_step
from foodorder.state import NO_INPUT, Nothing, PydanticSerde, StateKey, came_late, in_place, now_ms, required

order_workflow = Workflow("order-workflow")

ORDER: StateKey[Order] = StateKey("order", Order)
TERMS: StateKey[OrderTerms] = StateKey("terms", OrderTerms)
# The ops board shard that a gateway lists the order in, when not the order's own (`board.shard`).
BOARD_SHARD: StateKey[str] = StateKey("board-shard", str)
# Every status the order went through, numbered from 1 (`run` writes it; the shared handlers read it).
# An order that a release before this one started keeps its history in order-status instead.
HISTORY: StateKey[list[OrderEvent]] = StateKey("history", list[OrderEvent])
# The arrival estimated as the restaurant accepted the order (epoch ms), and the driver while one is on
# it: order-status' readers ask the workflow for them (`getDispatch`) and the driver's twin for the rest.
ESTIMATE: StateKey[int] = StateKey("estimate", int)
COURIER: StateKey[Courier] = StateKey("courier", Courier)
STATUS_EVENT: PydanticSerde[OrderEvent] = PydanticSerde(OrderEvent)
# A waitForStatus answers empty after this long, and the reader asks again. An order of an earlier
# release does not resolve its status promises, so its readers ask again sooner.
WATCH_S = order_status.WATCH_S
EARLIER_RELEASE_WATCH_S = 5
# Durable promises the outside world resolves through the shared handlers below.
PREPARATION_FINISHED = "preparation_finished"
DECISION = "restaurant_decision"  # resolved with the restaurant's Decision (by `decide`, or by `run`)
DRIVER_SELECTED = "driver_selected"
DRIVER_AT_RESTAURANT = "driver_at_restaurant"
DELIVERY_FINISHED = "delivery_finished"
CANCEL_REQUESTED = "cancel_requested"  # resolved with the reason by `cancel`
CANCEL_OUTCOME = "cancel_outcome"  # resolved by `run`: CANCELLED, or the status that made it too late
ENDED = "ended"  # resolved by `run` with the final status, once everything is undone
# Resolved by `watched` once someone waited for the order's tracking: from then on, each new driver is
# told to order-status (`driverAssigned`), which has the driver's twin pass its locations on.
WATCHED = "watched"
CANCEL_ANSWER_WITHIN = timedelta(seconds=10)
# Where an order without a delivery location goes (journaled with its terms). One generator for the
# process: seeding one per order from the OS was a percent of the services' CPU on the intake path.
DROP_OFFS = random.Random()
# The terms' step says its type: the SDK would otherwise read order_terms' signature at every order.
TERMS_STEP = RunOptions(type_hint=OrderTerms)

# How patiently each call to the outside world is retried before its stage is given up and undone
# (backoffs double from 2 s; seconds are scaled like every simulated duration).
AUTHORIZE = RetryPolicy(attempts=8, first_backoff_s=2, max_backoff_s=60)  # about 3 minutes
PREPARE = RetryPolicy(attempts=10, first_backoff_s=2, max_backoff_s=120)  # about 8 minutes
# The food is on its way: the capture is tried for about 45 minutes before it is left to operations.
CAPTURE = RetryPolicy(attempts=16, first_backoff_s=2, max_backoff_s=300)
# Undoing is tried longest (about 4.5 hours): the customer's money and the kitchen's work depend on it.
UNDO = RetryPolicy(attempts=36, first_backoff_s=2, max_backoff_s=600)
# A cancel must reach the kitchen: it is tried for about a day (the POS dedups it by its key).
REACH_POS = RetryPolicy(attempts=150, first_backoff_s=2, max_backoff_s=600)


def order_terms(order: Order) -> OrderTerms:
    """What the catalog and the settings say of this order now (run once, in a journaled step)."""
    settings = get_settings()
    shop = load_catalog().restaurant(order.restaurant_id)
    return OrderTerms(
        rejection=menu_rejection(order, shop),
        price=menu_price(order, shop),
        restaurant_location=shop.location if shop else None,
        region=shop.region if shop else None,
        customer_location=order.delivery_location
        or geo.random_location(DROP_OFFS, load_catalog().center_of(order.restaurant_id)),
        time_scale=settings.time_scale,
        restaurant_timeout_s=settings.restaurant_timeout_s,
        driver_search_timeout_s=settings.driver_search_timeout_s,
        driver_silence_timeout_s=settings.driver_silence_timeout_s,
        accept_deadline_s=settings.accept_deadline_s,
        preparation_s=settings.preparation_s,
        driver_speed_mps=settings.driver_speed_mps,
        webhook=webhook_provider(order.id),
        offer_timeout_s=settings.offer_timeout_s,
        offer_misses_off_duty=settings.offer_misses_off_duty,
        fixed_at=epoch_ms(),
    )


def webhook_provider(key: str) -> str | None:
    """The provider of an order placed through the API (key `<provider>:<ref>`) if it has a webhook."""
    provider, separator, _ = key.partition(":")
    return provider if separator and provider in get_settings().provider_webhooks else None


def menu_price(order: Order, shop: Restaurant | None) -> int:
    """The order's total at the menu's prices, in cents (0 when the menu cannot serve it)."""
    items = [(shop.item(p.product_id) if shop else None, p.quantity) for p in order.products]
    return sum(item.price * quantity for item, quantity in items if item is not None)


def menu_rejection(order: Order, shop: Restaurant | None) -> Refusal | None:
    """Why the menu cannot serve this order at its total, naming the field; None when it can."""
    if shop is None:
        return other(f"restaurantId: unknown restaurant {order.restaurant_id!r}")
    for i, product in enumerate(order.products):
        if shop.item(product.product_id) is None:
            return Refusal(
                reason_code=RejectionReason.ITEM_AVAILABILITY,
                reason=f"products[{i}].productId: {shop.id!r} has no product {product.product_id!r}",
                items=[product.product_id],
            )
    price = menu_price(order, shop)
    # The API sends the total in cents; the seed's web UI sends it in dollars (28.5).
    if order.total_cost != price and round(order.total_cost * 100) != price:
        total = f"{price} cents (${price / 100:.2f})"
        return other(f"totalCost: the menu prices this order at {total}, not {order.total_cost:g}")
    return None


def other(reason: str) -> Refusal:
    """A rejection none of the specific reason codes fits."""
    return Refusal(reason_code=RejectionReason.OTHER, reason=reason)


class OrderRun:
    """One run of an order: its terms, and what has been done that an ending without delivery undoes."""

    def __init__(self, ctx: WorkflowContext, order: Order, terms: OrderTerms, board_shard: str) -> None:
        self.ctx, self.order, self.terms = ctx, order, terms
        self.board_shard = board_shard  # where the order is listed on the ops board, and its end goes
        self.authorization_id: str | None = None
        self.captured = False
        self.at_restaurant = False
        self.delivery_id: str | None = None
        self.attempt = 0  # drivers replaced for silence so far
        self.search: RestateDurableFuture[str] | None = None  # the matcher's answer, until a driver is on it
        self.history: list[OrderEvent] = []  # the statuses recorded so far (HISTORY)
        self.estimate: int | None = None  # ESTIMATE
        self.courier: Courier | None = None  # COURIER

    async def step(
        self, name: str, policy: RetryPolicy, action: Any, cancellable: bool = True, **kwargs: Any
    ) -> Try:
        """A call to the outside world as a durable step; a cancellation cuts its retries short."""
        interrupt = (lambda: cancellation(self.ctx)) if cancellable else None
        return await durable_step(
            self.ctx, name, policy, self.terms.time_scale, action, interrupt=interrupt, **kwargs
        )

    async def set_status(
        self,
        status: Status,
        reason: str | None = None,
        refusal: Refusal | None = None,
        arrival: int | None = None,
        at: int | None = None,
    ) -> None:
        """Record the new status, with its time (and the first estimated arrival, when it is made),
        in the order's history, and wake its readers.

        `at` is the status' time when a journaled step already holds it (the step that led to it);
        otherwise the clock is read, which costs a round trip to restate-server.

        The history is the workflow's own state and each status resolves a promise of its number
        (`waitForStatus`), so a status costs no invocation; only a provider with a status webhook
        has order-status told (`announce`), which queues the webhook with the latest ETA.
        """
        event = OrderEvent(
            seq=len(self.history) + 1,
            at=at if at is not None else await now_ms(self.ctx),
            type="status",
            status=status,
            reason=reason,
            reason_code=refusal.reason_code if refusal else None,
            items=(refusal.items or None) if refusal else None,
            arrival=arrival,
        )
        self.history.append(event)
        HISTORY.set(self.ctx, self.history)
        # Only this status resolves its promise, once: the journal holds the resolution as it is
        # written, and waiting for restate-server's acknowledgement would cost a round trip a status.
        promise: DurablePromise[Any] = self.ctx.promise(status_promise(event.seq))
        promise.resolve(event.model_dump(mode="json"))
        if self.terms.webhook is not None:
            dispatch = Dispatch(status=status, arrival=self.estimate, courier=self.courier)
            announcement = order_status.Announcement(
                provider=self.terms.webhook, event=event, dispatch=dispatch
            )
            self.ctx.object_send(order_status.announce, key=self.ctx.key(), arg=announcement)

    async def assign(self, courier: Courier | None) -> None:
        """Keep the order's driver (None: replaced); order-status hears of a new one once someone
        watched the order, so that its twin passes the driver's locations on to their readers."""
        self.courier = courier
        if courier is None:
            COURIER.clear(self.ctx)
            return
        COURIER.set(self.ctx, courier)
        if await self.ctx.promise(WATCHED, type_hint=bool).peek() is not None:
            self.ctx.object_send(order_status.driver_assigned, key=self.ctx.key(), arg=courier)

    async def wait(self, timeout_s: float, name: str, **events: RestateDurableFuture[Any]) -> tuple[str, Any]:
        """The first of `events` to happen, or ("timeout", None) once `timeout_s` (simulated) passed.

        A timer that fires late was due while the system was down or stalled, when the other party
        could not be heard: it gets the whole period again instead of being judged on the outage.
        """
        seconds = self.terms.scaled(timeout_s)
        while True:
            due = await now_ms(self.ctx) + int(seconds * 1000)
            timer = self.ctx.sleep(timedelta(seconds=seconds), name=name)
            which, value = await restate.select(**events, timeout=timer)
            if which != "timeout" or not came_late(await now_ms(self.ctx), due):
                return which, value

    async def settle(self, operation: PaymentOperation, policy: RetryPolicy) -> None:
        """Capture, void or refund the authorization (a key per authorization and operation)."""
        assert self.authorization_id is not None
        await self.step(
            f"{operation} payment",
            policy,
            payment.settle,
            cancellable=False,
            operation=operation,
            authorization_id=self.authorization_id,
        )
        self.captured = operation == "capture"


@order_workflow.main(
    input_serde=required(Order), workflow_retention=timedelta(days=get_settings().retention_days)
)
async def run(ctx: WorkflowContext, order: Order) -> None:
    """Process one order: pay, wait until it is due, have it prepared, then delivered."""
    if order.id != ctx.key():
        raise TerminalError(f"id: {order.id!r} differs from the workflow key {ctx.key()!r}", 400)
    named_shard = board.listed_in(ctx.request().headers, ctx.key())
    if named_shard is None:  # no gateway lists the order: its workflow does
        started = board.OrderStarted(order_id=ctx.key(), at=await now_ms(ctx))
        ctx.object_send(board.order_started, key=board.shard(ctx.key()), arg=started)
    elif named_shard != board.shard(ctx.key()):
        # Stored before the order: a gateway that is sent the order again waits for the order, then
        # asks for the shard (`getBoardShard`).
        BOARD_SHARD.set(ctx, named_shard)
    ORDER.set(ctx, order)
    HISTORY.set(ctx, [])
    terms = await ctx.run_typed("fix the order's terms", in_place(order_terms), TERMS_STEP, order=order)
    TERMS.set(ctx, terms)
    this = OrderRun(ctx, order, terms, named_shard or board.shard(ctx.key()))
    if terms.rejection is not None:
        await end(this, Status.REJECTED, terms.rejection.reason, terms.rejection)
        raise TerminalError(terms.rejection.reason, 400)
    try:
        await process(this)
    except Interrupted as cancelled:
        await give_up(this, Status.CANCELLED, str(cancelled))
    except (StepFailed, TerminalError) as error:
        await give_up(this, Status.CANCELLED, f"the order could not be completed: {error}")


async def process(this: OrderRun) -> Status:
    """The order's life; returns its final status."""
    ctx, order, terms = this.ctx, this.order, this.terms

    # 1. The order exists; the customer's money is held. (The statuses up to SCHEDULED take their
    # times from the steps before them: a clock reading of their own is a round trip to restate-server.)
    await this.set_status(Status.CREATED, at=terms.fixed_at)
    authorized = await this.step(
        "authorize payment", AUTHORIZE, payment.authorize, order_id=order.id, amount=terms.price
    )
    this.authorization_id = authorized.value
    if this.authorization_id is None:
        return await end(this, Status.REJECTED, "payment declined", other("payment declined"))
    if (reason := await ctx.promise(CANCEL_REQUESTED, type_hint=str).peek()) is not None:
        return await give_up(this, Status.CANCELLED, reason)

    # 2. Wait, durably, until the order is due; a cancellation cuts the wait short.
    await this.set_status(Status.SCHEDULED, at=authorized.at)
    delay = timedelta(seconds=terms.scaled(order.delivery_delay / 1000))
    which, value = await restate.select(due=ctx.sleep(delay, name="delivery delay"), cancel=cancellation(ctx))
    if which == "cancel":
        return await give_up(this, Status.CANCELLED, value)

    # 3. The restaurant takes the order if its store is open for it, and accepts it (its POS at once,
    # or a person before the accept deadline); then it must report the order ready in time.
    product_ids = [p.product_id for p in order.products]
    store: StoreState = await ctx.object_call(store_state.get, key=order.restaurant_id, arg={})
    if (refusal := store.refusal(product_ids, await now_ms(ctx))) is not None:
        return await reject(this, refusal)
    this.at_restaurant = True  # from here a cancellation tells the POS, even if it never answered
    try:
        prepared = await this.step(
            "prepare at restaurant",
            PREPARE,
            restaurant.prepare,
            order_id=order.id,
            restaurant_id=order.restaurant_id,
            product_ids=product_ids,
        )
        answer = restaurant.PosAnswer.model_validate(prepared.value)
    except StepFailed as error:
        code = RejectionReason.POS_UNREACHABLE if error.gave_up else RejectionReason.OTHER
        reason = f"the restaurant's POS did not take the order: {error}"
        return await reject(this, Refusal(reason_code=code, reason=reason))
    if answer.refusal is not None:
        this.at_restaurant = False
        return await reject(this, refused_by_restaurant(answer.refusal))
    decided = ctx.promise(DECISION, type_hint=Decision)
    if answer.held:
        which, value = await this.wait(
            terms.accept_deadline_s, "accept deadline", decision=decided.value(), cancel=cancellation(ctx)
        )
        if which == "cancel":
            return await give_up(this, Status.CANCELLED, value)
        if which == "timeout":  # unless a decision came in at the same moment, this one stands
            deadline = Refusal(
                reason_code=RejectionReason.ACCEPT_DEADLINE,
                reason="the restaurant did not accept the order in time",
            )
            await resolve(ctx, DECISION, Decision(accepted=False, refusal=deadline).model_dump(mode="json"))
    else:
        await resolve(ctx, DECISION, Decision(accepted=True).model_dump(mode="json"))
    decision = await decided.value()
    if not decision.accepted:
        return await reject(this, decision.refusal or other("the order was denied"))
    # The first estimate: the kitchen's usual time (longer while it is busy), then the ride; the
    # status carries it, to the customer's page and the provider's webhook.
    # An order the catalog cannot serve was rejected.
    assert terms.restaurant_location is not None and terms.region is not None
    now = await now_ms(ctx)
    cooking_ms = terms.preparation_s * 1000 + store.extra_prep_ms(now)
    ride_ms = geo.eta_ms([terms.restaurant_location, terms.customer_location], terms.driver_speed_mps)
    this.estimate = now + int(terms.scaled(cooking_ms + ride_ms))
    ESTIMATE.set(ctx, this.estimate)
    await this.set_status(Status.IN_PREPARATION, arrival=this.estimate)
    which, value = await this.wait(
        terms.restaurant_timeout_s,
        "restaurant timeout",
        ready=ctx.promise(PREPARATION_FINISHED, type_hint=bool).value(),
        cancel=cancellation(ctx),
    )
    if which != "ready":
        reason = value if which == "cancel" else "the restaurant did not report the order ready in time"
        return await give_up(this, Status.CANCELLED, reason)

    # 4. The region's matcher offers the delivery to the nearest drivers until one accepts, and tells
    # this run who through an awakeable. The driver's twin tells it of the pickup and of the delivery
    # through two more. The twin decides whether a pickup comes too late: a cancellation, or the
    # replacement of a driver silent too long, asks it to call the delivery off, and it answers
    # whether the driver picked the order up first. No service sits between: the order's delivery
    # costs no invocation beyond the matcher's and the driver's. (An earlier release's order has its
    # delivery manager do this, and keeps its signals.)
    await this.set_status(Status.SCHEDULING_DELIVERY)
    this.delivery_id = str(ctx.uuid())
    delivered_awakeable, delivered = ctx.awakeable(type_hint=bool)
    request = DeliveryRequest(
        delivery_id=this.delivery_id,
        restaurant_id=order.restaurant_id,
        restaurant_location=terms.restaurant_location,
        customer_location=terms.customer_location,
        order_id=order.id,
    )
    policy = OfferPolicy(
        timeout_ms=int(terms.scaled(terms.offer_timeout_s) * 1000),
        misses_off_duty=terms.offer_misses_off_duty,
    )
    while True:
        found_awakeable, found = ctx.awakeable(type_hint=str)
        picked_up_awakeable, picked_up = ctx.awakeable(type_hint=bool)
        link = WorkflowLink(
            attempt=this.attempt,
            found_awakeable=found_awakeable,
            picked_up_awakeable=picked_up_awakeable,
            delivered_awakeable=delivered_awakeable,
        )
        pending = PendingDelivery(delivery=request, policy=policy, link=link, taken_on_accept=True)
        await ctx.object_call(matcher.request_driver_for_delivery, key=terms.region, arg=pending)
        this.search = found
        which, value = await this.wait(
            terms.driver_search_timeout_s, "driver search timeout", found=found, cancel=cancellation(ctx)
        )
        if which != "found":
            if await ctx.object_call(matcher.withdraw, key=terms.region, arg=this.delivery_id):
                this.search = None
                reason = value if which == "cancel" else "no driver was found in time"
                return await give_up(this, Status.CANCELLED, reason)
            # A driver accepted as the search ended: they go on, and a cancellation is heard below.
            value = await found
        await this.assign(Courier(driver_id=value, delivery_id=this.delivery_id))
        this.search = None
        await this.set_status(Status.WAITING_FOR_DRIVER, f"driver {value}")
        which, value = await wait_for_pickup(this, value, picked_up)
        if which == "pickup":
            break
        if which == "cancel":
            return await give_up(this, Status.CANCELLED, value)
        this.attempt += 1
        await this.assign(None)
        await this.set_status(Status.SCHEDULING_DELIVERY, value)

    # 5. Picked up: from now on the order cannot be cancelled, and the money is taken. The food is
    # on its way: a capture that fails for good does not stop it; it is recorded for operations.
    await resolve(ctx, CANCEL_OUTCOME, Status.IN_DELIVERY)
    try:
        await this.settle("capture", CAPTURE)
        await this.set_status(Status.IN_DELIVERY)
    except StepFailed as error:
        await this.set_status(Status.IN_DELIVERY, f"payment not captured, left to operations: {error}")
    await delivered
    return await end(this, Status.DELIVERED)


async def wait_for_pickup(
    this: OrderRun, driver_id: str, picked_up: RestateDurableFuture[bool]
) -> tuple[str, Any]:
    """Until the driver picks the order up ("pickup"), is replaced for silence ("replaced", with the
    reason) or the order is cancelled ("cancel", with the reason; the driver is released).

    The driver's twin is asked to release the driver, or to take them off duty; it refuses once the
    driver picked the order up, and the pickup stands (a cancellation is then answered 409). The
    driver is looked at (when their twin last heard of them) only once the silence allowed passed
    without a pickup, and again once it passed since they were last heard: most drivers pick up
    before, and cost no look. A look that comes late was due while the system was down or stalled,
    when the driver could not be heard: their silence is counted again from then.
    """
    ctx, terms = this.ctx, this.terms
    assert this.delivery_id is not None
    cancel = cancellation(ctx)
    silence_ms = int(terms.scaled(terms.driver_silence_timeout_s) * 1000)
    now = heard = await now_ms(ctx)
    while True:
        due = heard + silence_ms
        look = ctx.sleep(timedelta(milliseconds=max(0, due - now)), name="driver silence check")
        which, value = await restate.select(pickup=picked_up, cancel=cancel, look=look)
        if which == "pickup":
            return which, value
        if which == "cancel":
            if not await ctx.object_call(twin.release_delivery, key=driver_id, arg=this.delivery_id):
                return "pickup", await picked_up  # the pickup came first: the order goes on
            await this.assign(None)
            return which, value
        now = await now_ms(ctx)
        if came_late(now, due):
            heard = now
            continue
        last_seen: int | None = await ctx.object_call(twin.last_seen, key=driver_id, arg=None)
        heard = max(heard, last_seen or 0)
        if now - heard >= silence_ms:
            if not await ctx.object_call(twin.take_off_duty, key=driver_id, arg=this.delivery_id):
                return "pickup", await picked_up  # heard of at last: at the pickup
            return (
                "replaced",
                f"driver {driver_id} was silent for {(now - heard) / 1000:.0f} s; finding another",
            )


async def reject(this: OrderRun, refusal: Refusal) -> Status:
    """End the order as REJECTED with the refusal's reason, code (and items), undoing what was done."""
    return await give_up(this, Status.REJECTED, refusal.reason, refusal)


def refused_by_restaurant(refusal: Refusal) -> Refusal:
    """A refusal the restaurant gave (its POS, or a person), said so in the order's history."""
    return refusal.model_copy(update={"reason": f"the restaurant refused: {refusal.reason}"})


async def give_up(this: OrderRun, status: Status, reason: str, refusal: Refusal | None = None) -> Status:
    """End the order without delivering it: undo exactly what was done; the customer pays nothing.

    The decision is published first, so that whoever asked to cancel is answered and a restaurant's
    late decision refused. A driver still on the order is released; the customer's money next; the
    kitchen is told after, for as long as its POS takes to answer. An undo that fails for good is
    named in the history.
    """
    await resolve(this.ctx, CANCEL_OUTCOME, status)
    unresolved = [note] if (note := await call_off_delivery(this)) else []
    undo: list[Callable[[], Awaitable[Any]]] = []
    if this.authorization_id is not None:
        undo.append(lambda: this.settle("refund" if this.captured else "void", UNDO))
    if this.at_restaurant:
        undo.append(
            lambda: this.step(
                "cancel at restaurant",
                REACH_POS,
                restaurant.cancel,
                cancellable=False,
                order_id=this.ctx.key(),
            )
        )
    for action in undo:
        try:
            await action()
        except StepFailed as error:
            unresolved.append(str(error))
    if unresolved:
        reason = f"{reason}; left to operations: {'; '.join(unresolved)}"
    return await end(this, status, reason, refusal)


async def call_off_delivery(this: OrderRun) -> str | None:
    """The order ends for another reason while a driver is on it or sought (an error in step 4): the
    search is withdrawn, and the driver (or one who accepted meanwhile) released. (A cancellation, or
    a search that found no one, did so already.) What is left to operations: a driver who picked the
    order up first."""
    ctx = this.ctx
    if this.delivery_id is None or this.terms.region is None:
        return None
    driver_id = this.courier.driver_id if this.courier else None
    if driver_id is None and this.search is not None:
        if await ctx.object_call(matcher.withdraw, key=this.terms.region, arg=this.delivery_id):
            return None
        driver_id = await this.search  # resolved as the matcher let the delivery go to them
    if driver_id is None or await ctx.object_call(twin.release_delivery, key=driver_id, arg=this.delivery_id):
        return None
    return f"driver {driver_id} picked the order up as it ended"


async def end(
    this: OrderRun, status: Status, reason: str | None = None, refusal: Refusal | None = None
) -> Status:
    """Record the final status, tell whoever asked to cancel how the order ended (Restate forgets the
    workflow after its retention; order-status forgets what it kept of a watched order itself)."""
    await this.set_status(status, reason, refusal)
    history = [event.change() for event in this.history]
    ended = board.OrderEnded(order_id=this.ctx.key(), history=history, region=this.terms.region)
    this.ctx.object_send(board.order_ended, key=this.board_shard, arg=ended)
    await resolve(this.ctx, CANCEL_OUTCOME, status)
    await resolve(this.ctx, ENDED, status)
    return status


def cancellation(ctx: WorkflowContext) -> RestateDurableFuture[str]:
    """Completes, with its reason, once someone asked to cancel the order."""
    return ctx.promise(CANCEL_REQUESTED, type_hint=str).value()


def driver_selected(attempt: int) -> str:
    """The promise resolved with the driver of an attempt (the seed's name for the first)."""
    return DRIVER_SELECTED if attempt == 0 else f"{DRIVER_SELECTED}-{attempt}"


def status_promise(number: int) -> str:
    """The promise resolved with the order's status number `number` (from 1) once it is recorded."""
    return f"status-{number}"


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
async def finished_preparation(ctx: WorkflowSharedContext, restaurant_id: object = None) -> None:
    """Called by the restaurant when the order is ready for pickup (no body, or `{}`, as the seed's
    clients send); given the restaurant's id (as the API gives it), 404 unless the order is that
    restaurant's."""
    if restaurant_id == {}:
        restaurant_id = None
    if restaurant_id is not None and not isinstance(restaurant_id, str):
        raise TerminalError(f"restaurantId: expected a string, got {restaurant_id!r}", 400)
    if restaurant_id is not None:
        order = await ORDER.get(ctx)
        if order is None or order.restaurant_id != restaurant_id:
            raise TerminalError(f"restaurant {restaurant_id!r} has no order {ctx.key()!r}", 404)
    await resolve(ctx, PREPARATION_FINISHED)


@order_workflow.handler(name="decide", input_serde=required(Decision))
async def decide(ctx: WorkflowSharedContext, decision: Decision) -> None:
    """Called by the restaurant to accept or deny the order it holds; 409 once it was decided otherwise."""
    if await ORDER.get(ctx) is None:
        raise TerminalError(f"no order {ctx.key()!r}", 404)
    outcome = await ctx.promise(CANCEL_OUTCOME, type_hint=str).peek()
    if outcome in (Status.CANCELLED, Status.REJECTED):
        raise TerminalError(f"the order is {outcome}", 409)
    if decision.refusal is not None:
        decision = decision.model_copy(update={"refusal": refused_by_restaurant(decision.refusal)})
    await resolve(ctx, DECISION, decision.model_dump(mode="json"))
    decided = await ctx.promise(DECISION, type_hint=Decision).value()
    if decided.accepted != decision.accepted:
        done = "accepted" if decided.accepted else "rejected"
        raise TerminalError(f"the order was {done} already", 409)


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
    """Called by the delivery manager of an earlier release's order when the driver picked the order
    up; 409 if it was cancelled first."""
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
        # The outcome is decided before its status is recorded (a pickup's before the capture).
        current = max(await recorded_status(ctx) or outcome, outcome, key=list(Status).index)
        raise TerminalError(f"the order can no longer be cancelled: it is {current}", 409)
    # Answer once the undo is done, or, while an undo step still retries, once it is decided.
    await restate.select(
        ended=ctx.promise(ENDED, type_hint=str).value(), later=ctx.sleep(CANCEL_ANSWER_WITHIN, name="answer")
    )
    return Status.CANCELLED


async def status_events(ctx: WorkflowSharedContext) -> list[OrderEvent] | None:
    """Every status of the order, numbered from 1; None before the workflow ran.

    An order that a release before this one started records its statuses in order-status, numbered
    as that release did (in one sequence with its tracking updates).
    """
    if (history := await HISTORY.get(ctx)) is not None:
        return history
    if await ORDER.get(ctx) is None:
        return None
    earlier: list[OrderEvent] = await ctx.object_call(order_status.get_statuses, key=ctx.key(), arg={})
    return earlier


async def recorded_status(ctx: WorkflowSharedContext) -> Status | None:
    """The order's latest status (None before the workflow ran)."""
    events = await status_events(ctx)
    return events[-1].status if events else None


@order_workflow.handler(name="getStatus", input_serde=NO_INPUT)
async def get_status(ctx: WorkflowSharedContext, _: Nothing = None) -> Status | None:
    """The order's current status (null before the workflow ran)."""
    return await recorded_status(ctx)


@order_workflow.handler(name="getBoardShard", input_serde=NO_INPUT)
async def get_board_shard(ctx: WorkflowSharedContext, _: Nothing = None) -> str:
    """The ops board shard that lists the order (where a gateway lists it again as it is resubmitted)."""
    return await BOARD_SHARD.get(ctx) or board.shard(ctx.key())


@order_workflow.handler(
    name="getHistory", input_serde=NO_INPUT, output_serde=PydanticSerde(list[StatusChange])
)
async def get_history(ctx: WorkflowSharedContext, _: Nothing = None) -> list[StatusChange]:
    """Every status the order went through, with its time and reason."""
    return [event.change() for event in await status_events(ctx) or []]


@order_workflow.handler(
    name="waitForStatus",
    output_serde=PydanticSerde(list[OrderEvent]),
    inactivity_timeout=order_status.READER_INACTIVITY,
)
async def wait_for_status(ctx: WorkflowSharedContext, after: int) -> list[OrderEvent]:
    """The statuses numbered above `after`, waiting up to WATCH_S for the next; a final order answers
    its end. The wait is on the next status' promise: it costs nothing until that status comes."""
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise TerminalError(f"after: expected a status number >= 0, got {after!r}", 400)
    events = await status_events(ctx) or []
    if newer := [event for event in events if event.seq > after]:
        return newer
    if events and events[-1].final:
        return [events[-1]]
    earlier_release = await HISTORY.get(ctx) is None and await ORDER.get(ctx) is not None
    watch_s = EARLIER_RELEASE_WATCH_S if earlier_release else WATCH_S
    which, event = await restate.select(
        changed=ctx.promise(status_promise(after + 1), serde=STATUS_EVENT).value(),
        timeout=ctx.sleep(timedelta(seconds=watch_s)),
    )
    return [event] if which == "changed" else []


async def dispatch(ctx: WorkflowSharedContext) -> Dispatch:
    events = await status_events(ctx) or []
    last = events[-1] if events else None
    return Dispatch(
        status=last.status if last else None,
        ended_at=last.at if last and last.final else None,
        arrival=await ESTIMATE.get(ctx),
        courier=await COURIER.get(ctx),
    )


@order_workflow.handler(name="getDispatch", input_serde=NO_INPUT, ingress_private=True)
async def get_dispatch(ctx: WorkflowSharedContext, _: Nothing = None) -> Dispatch:
    """The order's status, its first estimated arrival and its driver (order-status' reads ask this)."""
    return await dispatch(ctx)


@order_workflow.handler(input_serde=NO_INPUT, ingress_private=True)
async def watched(ctx: WorkflowSharedContext, _: Nothing = None) -> Dispatch:
    """order-status tells that a reader waits for the order's tracking: from now on each new driver is
    told to it (`driverAssigned`). Answers what `getDispatch` does, the driver so far included."""
    if await ORDER.get(ctx) is not None:  # no promise for a workflow that never ran: nothing would end it
        await resolve(ctx, WATCHED)
    return await dispatch(ctx)


@order_workflow.handler(name="getOrder", input_serde=NO_INPUT)
async def get_order(ctx: WorkflowSharedContext, _: Nothing = None) -> Order | None:
    """The order as it was submitted (null before the workflow ran)."""
    return await ORDER.get(ctx)
