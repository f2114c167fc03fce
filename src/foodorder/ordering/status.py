"""order-status (key = order id): what a customer's screen reads, and the log of changes it can follow."""

from datetime import timedelta

import restate
from restate import ObjectContext, ObjectSharedContext, TerminalError, VirtualObject

from foodorder.models import DriverPosition, Model, OrderEvent, OrderStatus, Status, StatusChange, Tracking
from foodorder.ordering import workflow
from foodorder.state import PydanticSerde, StateKey, now_ms, required

order_status = VirtualObject("order-status")

ETA: StateKey[float] = StateKey("eta", float)
ARRIVAL: StateKey[int] = StateKey("arrival", int)
DRIVER: StateKey[DriverPosition] = StateKey("driver", DriverPosition)
LAST_EVENT: StateKey[int] = StateKey("last-event", int)
WATCHERS: StateKey[list[str]] = StateKey("watchers", list[str])
MAX_EVENTS_PER_READ = 500
# A waitForEvents answers empty after this long; the gateway asks again.
WATCH_S = 50
# Awakeables of waits that timed out stay until the next change resolves them: keep the newest few.
MAX_WATCHERS = 64
EVENT: PydanticSerde[OrderEvent] = PydanticSerde(OrderEvent)


def event_key(seq: int) -> StateKey[OrderEvent]:
    """Each event under its own key, so that appending never rewrites the log."""
    return StateKey(f"event-{seq:08d}", OrderEvent)


async def append_event(ctx: ObjectContext, event: OrderEvent) -> None:
    """Number `event` and add it to the order's log."""
    seq = (await LAST_EVENT.get(ctx) or 0) + 1
    numbered = event.model_copy(update={"seq": seq})
    event_key(seq).set(ctx, numbered)
    LAST_EVENT.set(ctx, seq)
    if watchers := await WATCHERS.get(ctx):
        for awakeable in watchers:
            ctx.resolve_awakeable(awakeable, numbered, serde=EVENT)
        WATCHERS.clear(ctx)


@order_status.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> OrderStatus:
    """The status and ETA (milliseconds) of the order; shared, so it never waits behind an ETA write."""
    status: Status | None = await ctx.workflow_call(workflow.get_status, key=ctx.key(), arg=None)
    if status is not None and Status(status).terminal:
        return OrderStatus(status=status, eta=0 if status == Status.DELIVERED else None)
    return OrderStatus(status=status, eta=await ETA.get(ctx))


@order_status.handler(name="setETA", ingress_private=True)
async def set_eta(ctx: ObjectContext, eta: float) -> None:
    """Record the latest ETA of the delivery, in milliseconds from now."""
    if isinstance(eta, bool) or not isinstance(eta, int | float) or eta < 0:
        raise TerminalError(f"eta: expected a number of milliseconds >= 0, got {eta!r}", 400)
    ETA.set(ctx, eta)
    at = await now_ms(ctx)
    ARRIVAL.set(ctx, at + int(eta))
    await append_event(ctx, OrderEvent(seq=0, at=at, type="eta", arrival=at + int(eta)))


@order_status.handler(name="trackDriver", input_serde=required(DriverPosition), ingress_private=True)
async def track_driver(ctx: ObjectContext, position: DriverPosition) -> None:
    """Record where the order's driver is and the ETA that follows."""
    ETA.set(ctx, position.eta)
    DRIVER.set(ctx, position)
    at = await now_ms(ctx)
    ARRIVAL.set(ctx, at + int(position.eta))
    await append_event(
        ctx, OrderEvent(seq=0, at=at, type="driver", arrival=at + int(position.eta), driver=position)
    )


@order_status.handler(name="recordStatus", input_serde=required(StatusChange), ingress_private=True)
async def record_status(ctx: ObjectContext, change: StatusChange) -> None:
    """Called by the order workflow on every status change."""
    await append_event(
        ctx, OrderEvent(seq=0, at=change.at, type="status", status=change.status, reason=change.reason)
    )


async def events_after(ctx: ObjectSharedContext, after: int) -> list[OrderEvent]:
    """The order's changes with a sequence number above `after` (a number >= 0), oldest first."""
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise TerminalError(f"after: expected an event number >= 0, got {after!r}", 400)
    last = await LAST_EVENT.get(ctx) or 0
    events = []
    for seq in range(after + 1, min(last, after + MAX_EVENTS_PER_READ) + 1):
        event = await event_key(seq).get(ctx)
        if event is not None:
            events.append(event)
    return events


@order_status.handler(name="getEvents", kind="shared", output_serde=PydanticSerde(list[OrderEvent]))
async def get_events(ctx: ObjectSharedContext, after: int) -> list[OrderEvent]:
    """The order's changes with a sequence number above `after`, oldest first."""
    return await events_after(ctx, after)


class Watch(Model):
    """An awakeable to resolve with the first event after `after`."""

    awakeable: str
    after: int


@order_status.handler(name="waitForEvents", kind="shared", output_serde=PydanticSerde(list[OrderEvent]))
async def wait_for_events(ctx: ObjectSharedContext, after: int) -> list[OrderEvent]:
    """The changes after `after`, waiting up to WATCH_S for the next; a final order answers its last event."""
    if events := await events_after(ctx, after):
        return events
    last = await LAST_EVENT.get(ctx)
    final = await event_key(last).get(ctx) if last else None
    if final is not None and final.status is not None and final.status.terminal:
        return [final]
    # Told of the next change by the writer (no polling): its cost grows with changes, not with time.
    name, changed = ctx.awakeable(serde=EVENT)
    ctx.object_send(add_watcher, key=ctx.key(), arg=Watch(awakeable=name, after=after))
    which, event = await restate.select(changed=changed, timeout=ctx.sleep(timedelta(seconds=WATCH_S)))
    return [event] if which == "changed" else []


@order_status.handler(name="addWatcher", input_serde=required(Watch), ingress_private=True)
async def add_watcher(ctx: ObjectContext, watch: Watch) -> None:
    """Resolve the awakeable with the next event: at once if it came already, else when it comes."""
    last = await LAST_EVENT.get(ctx) or 0
    if last > watch.after:
        event = await event_key(watch.after + 1).get(ctx) or await event_key(last).get(ctx)
        if event is not None:
            ctx.resolve_awakeable(watch.awakeable, event, serde=EVENT)
            return
    watchers = await WATCHERS.get(ctx) or []
    WATCHERS.set(ctx, [*watchers[-(MAX_WATCHERS - 1) :], watch.awakeable])


@order_status.handler(name="getTracking", kind="shared")
async def get_tracking(ctx: ObjectSharedContext) -> Tracking:
    """The estimated arrival and the driver's last known position."""
    return Tracking(
        arrival=await ARRIVAL.get(ctx),
        driver=await DRIVER.get(ctx),
    )
