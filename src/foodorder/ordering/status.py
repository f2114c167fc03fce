"""order-status (key = order id): what a customer's screen reads, and the log of changes it can follow.

It is the one record of an order's progress: its status history (which the workflow's `getStatus`
and `getHistory` answer from) and where its delivery stands. The log stays small: every status
change is kept, but of the ETA and driver updates only the latest, which replaces the one before.
Events are numbered in one sequence, so a client that saw event n asks for what came after n; a
reader that has seen everything waits (`waitForEvents`) and is told of the next change by the
handler that makes it, instead of polling.

The driver's position lives in the driver's twin, which tells this record of a new ETA, and of
every location while someone waits for the order's changes (the waiting reader has the twin told so,
`keep_driver_watched`); a read of the tracking asks the twin for the latest position.
"""

from datetime import timedelta
from typing import Literal

import restate
from restate import Context, ObjectContext, ObjectSharedContext, TerminalError, VirtualObject

from foodorder import webhooks
from foodorder.delivery import twin
from foodorder.models import (
    DriverPosition,
    DriverWatch,
    Model,
    OrderEvent,
    OrderStatus,
    Status,
    StatusChange,
    StatusUpdate,
    Tracking,
)
from foodorder.state import NO_INPUT, Nothing, PydanticSerde, StateKey, now_ms, required

order_status = VirtualObject("order-status")

HISTORY: StateKey[list[OrderEvent]] = StateKey("history", list[OrderEvent])
TRACKING: StateKey[OrderEvent] = StateKey("tracking", OrderEvent)
LAST_EVENT: StateKey[int] = StateKey("last-event", int)
WATCHERS: StateKey[list[str]] = StateKey("watchers", list[str])
DRIVER_WATCH: StateKey[DriverWatch] = StateKey("driver-watch", DriverWatch)  # what the twin was told last
# A waitForEvents answers empty after this long; the gateway asks again.
WATCH_S = 50
# Awakeables of waits that timed out stay until the next change resolves them: keep the newest few.
MAX_WATCHERS = 64
EVENT: PydanticSerde[OrderEvent] = PydanticSerde(OrderEvent)


async def next_seq(ctx: ObjectContext) -> int:
    """The number of the next event of the order."""
    seq = (await LAST_EVENT.get(ctx) or 0) + 1
    LAST_EVENT.set(ctx, seq)
    return seq


async def notify_watchers(ctx: ObjectContext, event: OrderEvent) -> None:
    """Tell every reader waiting for the order's next change (`waitForEvents`) about `event`."""
    if watchers := await WATCHERS.get(ctx):
        for awakeable in watchers:
            ctx.resolve_awakeable(awakeable, event, serde=EVENT)
        WATCHERS.clear(ctx)


async def current_status(ctx: ObjectContext | ObjectSharedContext) -> Status | None:
    """The order's latest status (None before the workflow recorded one)."""
    history = await HISTORY.get(ctx) or []
    return history[-1].status if history else None


async def track(ctx: ObjectContext, at: int, arrival: int, driver: DriverPosition | None) -> None:
    """Replace the order's latest ETA, and its driver's position (kept when only the ETA changes)."""
    if driver is None and (previous := await TRACKING.get(ctx)) is not None:
        driver = previous.driver
    event_type: Literal["eta", "driver"] = "eta" if driver is None else "driver"
    event = OrderEvent(seq=await next_seq(ctx), at=at, type=event_type, arrival=arrival, driver=driver)
    TRACKING.set(ctx, event)
    await notify_watchers(ctx, event)


@order_status.handler(kind="shared", input_serde=NO_INPUT)
async def get(ctx: ObjectSharedContext, _: Nothing = None) -> OrderStatus:
    """The status and the ETA in milliseconds from now (the seed's shape); never waits behind a write."""
    status = await current_status(ctx)
    if status is not None and status.terminal:
        return OrderStatus(status=status, eta=0 if status == Status.DELIVERED else None)
    tracking = await TRACKING.get(ctx)
    if tracking is None or tracking.arrival is None:
        return OrderStatus(status=status)
    return OrderStatus(status=status, eta=max(0, tracking.arrival - await now_ms(ctx)))


@order_status.handler(name="setETA", ingress_private=True)
async def set_eta(ctx: ObjectContext, eta: float) -> None:
    """Record the delivery's ETA, given in milliseconds from now (the seed's handler)."""
    if isinstance(eta, bool) or not isinstance(eta, int | float) or eta < 0:
        raise TerminalError(f"eta: expected a number of milliseconds >= 0, got {eta!r}", 400)
    at = await now_ms(ctx)
    await track(ctx, at, at + int(eta), None)


@order_status.handler(name="trackDriver", input_serde=required(DriverPosition), ingress_private=True)
async def track_driver(ctx: ObjectContext, position: DriverPosition) -> None:
    """Record where the order's driver is and when the order arrives at that pace."""
    await track(ctx, await now_ms(ctx), position.arrival, position)


@order_status.handler(name="recordStatus", input_serde=required(StatusUpdate), ingress_private=True)
async def record_status(ctx: ObjectContext, change: StatusUpdate) -> None:
    """Called by the order workflow on every status change; tells the provider's webhook if it has one."""
    seq = await next_seq(ctx)
    event = OrderEvent(
        seq=seq,
        at=change.at,
        type="status",
        status=change.status,
        reason=change.reason,
        reason_code=change.reason_code,
        items=change.items,
    )
    HISTORY.set(ctx, [*(await HISTORY.get(ctx) or []), event])
    await notify_watchers(ctx, event)
    if change.webhook is not None:
        tracking = None if change.status.terminal else await TRACKING.get(ctx)
        webhooks.order_status_changed(ctx, change.webhook, event, tracking.arrival if tracking else None)


@order_status.handler(ingress_private=True)
async def expire(ctx: ObjectContext) -> None:
    """Forget the order (sent by the workflow when it ends, delayed by the retention period)."""
    ctx.clear_all()


def expire_later(ctx: Context, order_id: str, retention: timedelta) -> None:
    """Have the order's record forgotten once `retention` has passed."""
    ctx.object_send(expire, key=order_id, arg=None, send_delay=retention)


@order_status.handler(
    name="getHistory", kind="shared", input_serde=NO_INPUT, output_serde=PydanticSerde(list[StatusChange])
)
async def get_history(ctx: ObjectSharedContext, _: Nothing = None) -> list[StatusChange]:
    """Every status the order went through, with its time and reason."""
    return [
        StatusChange(status=e.status, at=e.at, reason=e.reason, reason_code=e.reason_code, items=e.items)
        for e in await HISTORY.get(ctx) or []
        if e.status is not None
    ]


async def events_after(ctx: ObjectContext | ObjectSharedContext, after: int) -> list[OrderEvent]:
    """The order's changes numbered above `after` (a number >= 0), oldest first."""
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise TerminalError(f"after: expected an event number >= 0, got {after!r}", 400)
    events = [e for e in await HISTORY.get(ctx) or [] if e.seq > after]
    tracking = await TRACKING.get(ctx)
    if tracking is not None and tracking.seq > after:
        events.append(tracking)
    return sorted(events, key=lambda e: e.seq)


@order_status.handler(name="getEvents", kind="shared", output_serde=PydanticSerde(list[OrderEvent]))
async def get_events(ctx: ObjectSharedContext, after: int) -> list[OrderEvent]:
    """The order's changes numbered above `after`, oldest first (only the latest ETA and driver position)."""
    return await events_after(ctx, after)


class Watch(Model):
    """An awakeable to resolve with the first event after `after`."""

    awakeable: str
    after: int


@order_status.handler(name="waitForEvents", kind="shared", output_serde=PydanticSerde(list[OrderEvent]))
async def wait_for_events(ctx: ObjectSharedContext, after: int) -> list[OrderEvent]:
    """The changes after `after`, waiting up to WATCH_S for the next; a final order answers its end."""
    if events := await events_after(ctx, after):
        return events
    history = await HISTORY.get(ctx) or []
    if history and history[-1].final:
        return [history[-1]]
    # Told of the next change by the writer (no polling): its cost grows with changes, not with time.
    name, changed = ctx.awakeable(serde=EVENT)
    ctx.object_send(add_watcher, key=ctx.key(), arg=Watch(awakeable=name, after=after))
    which, event = await restate.select(changed=changed, timeout=ctx.sleep(timedelta(seconds=WATCH_S)))
    return [event] if which == "changed" else []


@order_status.handler(name="addWatcher", input_serde=required(Watch), ingress_private=True)
async def add_watcher(ctx: ObjectContext, watch: Watch) -> None:
    """Resolve the awakeable with the next event: at once if it came already, else when it comes."""
    if events := await events_after(ctx, watch.after):
        ctx.resolve_awakeable(watch.awakeable, events[0], serde=EVENT)
        return
    watchers = await WATCHERS.get(ctx) or []
    WATCHERS.set(ctx, [*watchers[-(MAX_WATCHERS - 1) :], watch.awakeable])
    await keep_driver_watched(ctx)


async def keep_driver_watched(ctx: ObjectContext) -> None:
    """Have the order's driver pass every location on while readers wait (told again halfway through)."""
    tracking = await TRACKING.get(ctx)
    if tracking is None or tracking.driver is None or (await current_status(ctx) or Status.NEW).terminal:
        return
    driver, now = tracking.driver, await now_ms(ctx)
    told = await DRIVER_WATCH.get(ctx)
    if (
        told is not None
        and (told.driver_id, told.delivery_id) == (driver.driver_id, driver.delivery_id)
        and told.until - now > WATCH_S * 1000
    ):
        return
    # Two of the longest waits, renewed after one: readers waiting back to back keep the twin told.
    watch = DriverWatch(
        driver_id=driver.driver_id, delivery_id=driver.delivery_id, until=now + 2 * WATCH_S * 1000
    )
    DRIVER_WATCH.set(ctx, watch)
    ctx.object_send(twin.watch, key=driver.driver_id, arg=watch)


@order_status.handler(name="getTracking", kind="shared", input_serde=NO_INPUT)
async def get_tracking(ctx: ObjectSharedContext, _: Nothing = None) -> Tracking:
    """The estimated arrival and the driver's latest position (asked of the driver's twin)."""
    tracking = await TRACKING.get(ctx)
    if tracking is None:
        return Tracking()
    driver = tracking.driver
    if driver is not None and not (await current_status(ctx) or Status.NEW).terminal:
        latest = await ctx.object_call(twin.get_position, key=driver.driver_id, arg=None)
        if latest is not None and latest.delivery_id == driver.delivery_id:
            return Tracking(arrival=latest.arrival, driver=latest)
    return Tracking(arrival=tracking.arrival, driver=driver)
