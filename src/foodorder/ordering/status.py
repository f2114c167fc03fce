"""order-status (key = order id): where an order's delivery stands (its ETA and driver), for the
customer's screen, and the seed's `get` ({status, eta}).

The order's statuses are the workflow's own (its `getHistory` and `waitForStatus`): recording one
costs no invocation. This record keeps the tracking: of the ETA and driver updates only the latest,
which replaces the one before, numbered in a sequence of their own, so that a reader that saw
update n asks for what came after n; a reader that has seen everything waits (`waitForEvents`) and
is told of the next change by the handler that makes it, instead of polling.

The driver's position and ETA live in the driver's twin, which tells this record of the driver at the
assignment, and of every location while someone waits for the order's changes (the waiting reader
has the twin told so, `keep_driver_watched`); a read of the tracking (`get`, `getTracking`, the ETA
of a webhook) asks the twin for the latest.

An order that a release before this one started records its statuses here (`recordStatus`), and
its workflow reads them back from here (`getHistory`) until it ends.
"""

import json
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

HISTORY: StateKey[list[OrderEvent]] = StateKey("history", list[OrderEvent])  # earlier releases' orders
TRACKING: StateKey[OrderEvent] = StateKey("tracking", OrderEvent)
LAST_EVENT: StateKey[int] = StateKey("last-event", int)  # the number of the latest tracking update
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


async def current_status(ctx: ObjectSharedContext) -> Status | None:
    """The order's latest status (None before the workflow recorded one), as the workflow keeps it."""
    if history := await HISTORY.get(ctx):  # an order of an earlier release
        return history[-1].status
    answer = await ctx.generic_call("order-workflow", "getStatus", b"", key=ctx.key())
    status = json.loads(answer) if answer else None
    return Status(status) if status else None


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
    """The status (the workflow's) and the ETA in milliseconds from now (the seed's shape); never
    waits behind a write."""
    status = await current_status(ctx)
    if status is not None and status.terminal:
        return OrderStatus(status=status, eta=0 if status == Status.DELIVERED else None)
    tracking = await latest_tracking(ctx)
    if tracking.arrival is None:
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


class Announcement(Model):
    """A status change of an order whose provider has a status webhook."""

    provider: str
    event: OrderEvent


@order_status.handler(input_serde=required(Announcement), ingress_private=True)
async def announce(ctx: ObjectContext, announcement: Announcement) -> None:
    """Queue the provider's status webhook, with the latest ETA (sent by the workflow, for such orders)."""
    event = announcement.event
    arrival = None if event.final else (await latest_tracking(ctx)).arrival
    webhooks.order_status_changed(ctx, announcement.provider, event, arrival)


@order_status.handler(name="recordStatus", input_serde=required(StatusUpdate), ingress_private=True)
async def record_status(ctx: ObjectContext, change: StatusUpdate) -> None:
    """A status change of an order that a release before this one started (its workflow calls this)."""
    event = OrderEvent(
        seq=await next_seq(ctx),
        at=change.at,
        type="status",
        status=change.status,
        reason=change.reason,
        reason_code=change.reason_code,
        items=change.items,
    )
    HISTORY.set(ctx, [*(await HISTORY.get(ctx) or []), event])
    if change.webhook is not None:
        await announce(ctx, Announcement(provider=change.webhook, event=event))


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
    """The statuses recorded here: those of an order that a release before this one started."""
    return [event.change() for event in await HISTORY.get(ctx) or []]


@order_status.handler(
    name="getStatuses", kind="shared", input_serde=NO_INPUT, output_serde=PydanticSerde(list[OrderEvent])
)
async def get_statuses(ctx: ObjectSharedContext, _: Nothing = None) -> list[OrderEvent]:
    """The status events recorded here (an earlier release's order), numbered as that release did:
    in one sequence with the tracking updates, which the pages it served count on."""
    return await HISTORY.get(ctx) or []


async def events_after(ctx: ObjectContext | ObjectSharedContext, after: int) -> list[OrderEvent]:
    """The order's latest tracking update if it is numbered above `after` (a number >= 0)."""
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise TerminalError(f"after: expected an update number >= 0, got {after!r}", 400)
    tracking = await TRACKING.get(ctx)
    return [tracking] if tracking is not None and tracking.seq > after else []


@order_status.handler(name="getEvents", kind="shared", output_serde=PydanticSerde(list[OrderEvent]))
async def get_events(ctx: ObjectSharedContext, after: int) -> list[OrderEvent]:
    """The order's latest ETA and driver position, if numbered above `after` (statuses: the workflow's)."""
    return await events_after(ctx, after)


class Watch(Model):
    """An awakeable to resolve with the first event after `after`."""

    awakeable: str
    after: int


@order_status.handler(name="waitForEvents", kind="shared", output_serde=PydanticSerde(list[OrderEvent]))
async def wait_for_events(ctx: ObjectSharedContext, after: int) -> list[OrderEvent]:
    """The tracking update after `after`, waiting up to WATCH_S for the next (else empty)."""
    if events := await events_after(ctx, after):
        return events
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
    """Have the order's driver pass every location on while readers wait (told again halfway through).

    The twin ignores it once the driver is done with the delivery.
    """
    tracking = await TRACKING.get(ctx)
    if tracking is None or tracking.driver is None:
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


async def latest_tracking(ctx: ObjectContext | ObjectSharedContext) -> Tracking:
    """The estimated arrival and the driver's latest position: asked of the driver's twin while the
    driver is on the delivery (the twin tells this record of them only while someone watches)."""
    tracking = await TRACKING.get(ctx)
    if tracking is None:
        return Tracking()
    driver = tracking.driver
    if driver is not None:
        latest = await ctx.object_call(twin.get_position, key=driver.driver_id, arg=None)
        if latest is not None and latest.delivery_id == driver.delivery_id:
            return Tracking(arrival=latest.arrival, driver=latest)
    return Tracking(arrival=tracking.arrival, driver=driver)


@order_status.handler(name="getTracking", kind="shared", input_serde=NO_INPUT)
async def get_tracking(ctx: ObjectSharedContext, _: Nothing = None) -> Tracking:
    """The estimated arrival and the driver's latest position (after the delivery: where it ended)."""
    return await latest_tracking(ctx)
