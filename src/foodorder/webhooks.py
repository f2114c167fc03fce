"""Status webhooks out: every event owed to a provider is POSTed to its URL, signed, until acknowledged.

`webhook-outbox` (object) holds one stream of events per key: an order's events under the order's
key, a store's events for one provider under `<provider>:@<restaurant>`. An object runs one
invocation per key at a time, in the order they were sent, so a provider gets an order's events in
the order they happened: the next event waits while the one before is retried. Each try is a
journaled step; between tries a durable timer waits out a backoff (doubling from 1 s up to 5 min,
divided by FOODORDER_TIME_SCALE), until the event is acknowledged (2xx) or
FOODORDER_WEBHOOK_RETRY_HOURS have passed since it was queued: then it is marked failed, and the
next event of the stream goes. The event id is the same on every try, so the receiver can drop a
repeat. Each stream keeps the log of its deliveries (the API's delivery log and /ops read it).
"""

from datetime import timedelta
from typing import Literal

from pydantic import Field
from restate import Context, ObjectContext, RunOptions, Service, TerminalError, VirtualObject

from foodorder.clients.webhooks import post_event
from foodorder.config import get_settings
from foodorder.models import Delivery, Model, OrderEvent, WebhookEvent, as_datetime
from foodorder.ordering.steps import UNEXPECTED_ERROR_ATTEMPTS, Try, try_once
from foodorder.state import StateKey, in_place, now_ms, required

webhook_outbox = VirtualObject("webhook-outbox")
provider_webhooks = Service("provider-webhooks")

DELIVERIES: StateKey[list[Delivery]] = StateKey("deliveries", list[Delivery])
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 300.0
# A store's stream lives on; its log keeps the newest deliveries (an order's is cleared with the order).
MAX_LOG = 100


class Plan(Model):
    """What the settings said when a delivery started (journaled, so that a replay branches the same)."""

    deadline: int = Field(description="epoch ms after which a failed try marks the event failed")
    time_scale: float
    retention_s: float


def delivery_plan(queued_at: int) -> Plan:
    """The delivery's retry window and pace, from the settings now."""
    settings = get_settings()
    return Plan(
        deadline=queued_at + int(settings.webhook_retry_hours * 3600 * 1000),
        time_scale=settings.time_scale,
        retention_s=settings.retention_days * 86400,
    )


def backoff_s(tried: int) -> float:
    """Seconds (before scaling) to wait after the `tried`-th failed try."""
    return float(min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2.0 ** (tried - 1)))


async def log(ctx: ObjectContext, delivery: Delivery) -> None:
    """Record how `delivery` stands in the stream's log (replacing its earlier entry)."""
    entries = [d for d in await DELIVERIES.get(ctx) or [] if d.event.event_id != delivery.event.event_id]
    entries.append(delivery)
    while len(entries) > MAX_LOG and (done := next((d for d in entries if d.state != "pending"), None)):
        entries.remove(done)
    DELIVERIES.set(ctx, entries)


@webhook_outbox.handler(input_serde=required(Delivery), ingress_private=True)
async def deliver(ctx: ObjectContext, delivery: Delivery) -> None:
    """POST one event to its provider's webhook until it is acknowledged or its retry window closes."""
    plan = await ctx.run_typed(
        "plan delivery", in_place(delivery_plan), queued_at=int(delivery.queued_at.timestamp() * 1000)
    )
    await log(ctx, delivery)
    options: RunOptions[Try] = RunOptions(type_hint=Try, max_attempts=UNEXPECTED_ERROR_ATTEMPTS)
    arguments = {"provider": delivery.provider, "event": delivery.event}
    deadline, tried = plan.deadline, 0
    while delivery.state == "pending":
        tried += 1
        try:
            outcome = await ctx.run_typed(
                "post event", try_once, options, action=post_event, kwargs=arguments
            )
            error = outcome.retry
        except TerminalError as bug:  # not an answer of the provider's: a bug, tried a few times
            error, deadline = bug.message, 0
        now = await now_ms(ctx)
        state: Literal["pending", "delivered", "failed"] = (
            "delivered" if error is None else "failed" if now >= deadline else "pending"
        )
        delivery = delivery.model_copy(
            update={"state": state, "attempts": tried, "last_error": error, "updated_at": as_datetime(now)}
        )
        await log(ctx, delivery)
        if state == "pending":
            await ctx.sleep(timedelta(seconds=backoff_s(tried) / plan.time_scale), name="webhook backoff")
    if delivery.event.type == "order.status" and delivery.event.final:
        ctx.object_send(expire, key=ctx.key(), arg=None, send_delay=timedelta(seconds=plan.retention_s))


@webhook_outbox.handler()
async def replay(ctx: ObjectContext, event_id: str) -> Delivery:
    """Deliver a logged event again (same event id, a new retry window), after the stream's queued events."""
    entries = await DELIVERIES.get(ctx) or []
    found = next((d for d in entries if d.event.event_id == event_id), None)
    if found is None:
        raise TerminalError(f"no delivery of event {event_id!r} in {ctx.key()!r}", 404)
    now = as_datetime(await now_ms(ctx))
    again = found.model_copy(
        update={"state": "pending", "attempts": 0, "last_error": None, "queued_at": now, "updated_at": now}
    )
    ctx.object_send(deliver, key=ctx.key(), arg=again)
    return again


@webhook_outbox.handler(ingress_private=True)
async def expire(ctx: ObjectContext) -> None:
    """Forget an ended order's deliveries (sent delayed by the retention period)."""
    ctx.clear_all()


def order_status_changed(ctx: ObjectContext, provider: str, event: OrderEvent, arrival: int | None) -> None:
    """Queue a status change of an order (order-status calls this with the order's key) for its provider."""
    assert event.status is not None
    wire = WebhookEvent(
        event_id=str(ctx.uuid()),
        type="order.status",
        order_id=ctx.key().removeprefix(f"{provider}:"),
        status=event.status,
        reason=event.reason,
        reason_code=event.reason_code,
        items=event.items,
        eta=None if arrival is None else as_datetime(arrival),
        at=as_datetime(event.at),
    )
    ctx.object_send(deliver, key=ctx.key(), arg=Delivery(provider=provider, event=wire, queued_at=wire.at))


StoreChange = Literal["store.status", "menu.updated"]


class StoreEvent(Model):
    """A change of a store that every provider with a webhook hears of."""

    type: StoreChange
    restaurant_id: str = Field(min_length=1, max_length=64)
    status: str = Field(min_length=1, max_length=64, description="e.g. ONLINE, PAUSED, BUSY; or UPDATED")
    reason: str | None = Field(None, max_length=500)


def configured_providers() -> list[str]:
    return sorted(get_settings().provider_webhooks)


async def announce(ctx: Context, change: StoreEvent) -> None:
    """Queue a store's change for every provider with a webhook (one stream per provider and store)."""
    providers = await ctx.run_typed("providers with a webhook", in_place(configured_providers))
    at = as_datetime(await now_ms(ctx))
    for provider in providers:
        wire = WebhookEvent(
            event_id=str(ctx.uuid()),
            type=change.type,
            restaurant_id=change.restaurant_id,
            status=change.status,
            reason=change.reason,
            at=at,
        )
        key = f"{provider}:@{change.restaurant_id}"
        ctx.object_send(deliver, key=key, arg=Delivery(provider=provider, event=wire, queued_at=at))


@provider_webhooks.handler(name="announce", input_serde=required(StoreEvent))
async def announce_handler(ctx: Context, change: StoreEvent) -> None:
    """Tell every provider with a webhook of a store's change (e.g. menu.updated after a catalog change)."""
    await announce(ctx, change)
