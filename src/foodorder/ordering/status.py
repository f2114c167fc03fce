"""order-status (key = order id): where an order's delivery stands (its ETA and driver), for the
customer's screen, and the seed's `get` ({status, eta}).

An order nobody watches keeps nothing here (and, unless its provider has a status webhook, costs
nothing here). Its statuses, its first estimated arrival and its driver are the workflow's
(`getDispatch`); the driver's position, and the ETA at their pace, are the driver's twin's
(`getPosition`). A read of the tracking (`get`, `getTracking`, the ETA of a webhook) asks them.

A reader waiting for the order's next tracking update (`waitForEvents`) makes this record keep the
updates: the workflow is told that the order is watched (`watched`), answers its driver, and tells
of each new one (`driverAssigned`); the driver's twin is told to pass on every location while
readers wait (`keep_driver_watched`). Of those updates only the latest is kept, numbered in a
sequence of its own, so that a reader that saw update n asks for what came after n, and is told of
the next by the handler that makes it instead of polling. The record is forgotten a retention
period after the order ended (`expire`, planned by the first write).

An order that a release before this one started records its statuses here (`recordStatus`) or its
first ETA (`setETA`), and the delivery manager tells its driver at the assignment (`trackDriver`);
its workflow reads the statuses back from here until it ends.
"""

from datetime import timedelta
from typing import Literal

import restate
from pydantic import Field
from restate import ObjectContext, ObjectSharedContext, TerminalError, VirtualObject

from foodorder import webhooks
from foodorder.config import get_settings
from foodorder.delivery import twin
from foodorder.models import (
    Courier,
    Dispatch,
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
COURIER: StateKey[Courier] = StateKey("courier", Courier)  # the driver, as the workflow told it last
FORGETS: StateKey[bool] = StateKey("forgets", bool)  # whether `expire` is on its way
# A waitForEvents answers empty after this long; the gateway asks again.
WATCH_S = 50
# A reader's long poll is meant to wait: it stays in the services endpoint for its whole wait instead
# of being suspended after restate-server's inactivity timeout (5 s, data/restate.toml) and replayed
# when the change comes.
READER_INACTIVITY: timedelta = timedelta(seconds=WATCH_S + 10)
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


async def dispatch_of(ctx: ObjectContext | ObjectSharedContext, handler: str = "getDispatch") -> Dispatch:
    """What the order's workflow knows of the delivery (`getDispatch`, or `watched`); of an order of
    an earlier release that records its statuses here, only its status."""
    if history := await HISTORY.get(ctx):
        last = history[-1]
        return Dispatch(status=last.status, ended_at=last.at if last.final else None)
    answer = await ctx.generic_call("order-workflow", handler, b"", key=ctx.key())
    return Dispatch.model_validate_json(answer)


async def track(ctx: ObjectContext, at: int, arrival: int, driver: DriverPosition | None) -> None:
    """Replace the order's latest ETA, and its driver's position (kept when only the ETA changes)."""
    await plan_forgetting(ctx)
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
    dispatch = await dispatch_of(ctx)
    status = dispatch.status
    if status is not None and status.terminal:
        return OrderStatus(status=status, eta=0 if status == Status.DELIVERED else None)
    tracking = await latest_tracking(ctx, dispatch)
    if tracking.arrival is None:
        return OrderStatus(status=status)
    return OrderStatus(status=status, eta=max(0, tracking.arrival - await now_ms(ctx)))


@order_status.handler(name="setETA", ingress_private=True)
async def set_eta(ctx: ObjectContext, eta: float) -> None:
    """Record the delivery's ETA, given in milliseconds from now (the seed's handler; an earlier
    release's workflow sends its first estimate here)."""
    if isinstance(eta, bool) or not isinstance(eta, int | float) or eta < 0:
        raise TerminalError(f"eta: expected a number of milliseconds >= 0, got {eta!r}", 400)
    at = await now_ms(ctx)
    await track(ctx, at, at + int(eta), None)


@order_status.handler(name="trackDriver", input_serde=required(DriverPosition), ingress_private=True)
async def track_driver(ctx: ObjectContext, position: DriverPosition) -> None:
    """Record where the order's driver is and when the order arrives at that pace (the driver's twin
    sends it while the order is watched; the delivery manager, an earlier release's order's driver)."""
    await track(ctx, await now_ms(ctx), position.arrival, position)


class Announcement(Model):
    """A status change of an order whose provider has a status webhook."""

    provider: str
    event: OrderEvent
    dispatch: Dispatch | None = Field(None, description="the workflow's (none from an earlier release)")


@order_status.handler(input_serde=required(Announcement), ingress_private=True)
async def announce(ctx: ObjectContext, announcement: Announcement) -> None:
    """Queue the provider's status webhook, with the latest ETA (sent by the workflow, for such orders)."""
    event = announcement.event
    arrival = None if event.final else (await latest_tracking(ctx, announcement.dispatch)).arrival
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
    await plan_forgetting(ctx)
    HISTORY.set(ctx, [*(await HISTORY.get(ctx) or []), event])
    if change.webhook is not None:
        await announce(ctx, Announcement(provider=change.webhook, event=event))


@order_status.handler(ingress_private=True)
async def expire(ctx: ObjectContext) -> None:
    """Forget the order a retention period after it ended; until then, look again later.

    Planned by the first write of the order's record (and sent by an earlier release's workflow as
    the order ended, delayed by the retention period).
    """
    dispatch = await dispatch_of(ctx)
    retention = timedelta(days=get_settings().retention_days)
    if dispatch.status is not None and not dispatch.status.terminal:
        expire_later(ctx, retention)  # still under way
        return
    if dispatch.ended_at is not None:
        left = dispatch.ended_at + retention // timedelta(milliseconds=1) - await now_ms(ctx)
        if left > 0:
            expire_later(ctx, timedelta(milliseconds=left))
            return
    ctx.clear_all()


async def plan_forgetting(ctx: ObjectContext) -> None:
    """Have the record forgotten in time (`expire`), once: called by whatever writes it."""
    if not await FORGETS.get(ctx):
        expire_later(ctx, timedelta(days=get_settings().retention_days))


def expire_later(ctx: ObjectContext, delay: timedelta) -> None:
    FORGETS.set(ctx, True)
    ctx.object_send(expire, key=ctx.key(), arg=None, send_delay=delay)


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


@order_status.handler(
    name="waitForEvents",
    kind="shared",
    output_serde=PydanticSerde(list[OrderEvent]),
    inactivity_timeout=READER_INACTIVITY,
)
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
    await plan_forgetting(ctx)
    watchers = await WATCHERS.get(ctx) or []
    WATCHERS.set(ctx, [*watchers[-(MAX_WATCHERS - 1) :], watch.awakeable])
    await keep_driver_watched(ctx)


@order_status.handler(name="driverAssigned", input_serde=required(Courier), ingress_private=True)
async def driver_assigned(ctx: ObjectContext, courier: Courier) -> None:
    """The workflow of a watched order has a new driver: while readers wait, the twin is told."""
    await plan_forgetting(ctx)
    COURIER.set(ctx, courier)
    if await WATCHERS.get(ctx):
        await keep_driver_watched(ctx)


async def keep_driver_watched(ctx: ObjectContext) -> None:
    """Have the order's driver pass every location on while readers wait (told again halfway through).

    Who drives is what the workflow told last (`driverAssigned`), asked of it again (`watched`,
    which is how it learns that the order is watched) while no driver is known and whenever the twin
    is to be told again, so that a driver missed meanwhile is found within a wait. An earlier
    release's order: its driver as told here. The twin ignores it once the driver is done with the
    delivery.
    """
    now = await now_ms(ctx)
    told = await DRIVER_WATCH.get(ctx)
    fresh = told is not None and told.until - now > WATCH_S * 1000
    courier = await COURIER.get(ctx)
    if courier is None or not fresh:
        courier = (await dispatch_of(ctx, "watched")).courier
        if courier is not None:
            COURIER.set(ctx, courier)
    if courier is None and (tracking := await TRACKING.get(ctx)) is not None and tracking.driver is not None:
        courier = Courier(driver_id=tracking.driver.driver_id, delivery_id=tracking.driver.delivery_id)
    if courier is None:
        return
    if (
        fresh
        and told is not None
        and (told.driver_id, told.delivery_id) == (courier.driver_id, courier.delivery_id)
    ):
        return
    # Two of the longest waits, renewed after one: readers waiting back to back keep the twin told.
    watch = DriverWatch(
        driver_id=courier.driver_id, delivery_id=courier.delivery_id, until=now + 2 * WATCH_S * 1000
    )
    DRIVER_WATCH.set(ctx, watch)
    ctx.object_send(twin.watch, key=courier.driver_id, arg=watch)


async def latest_tracking(ctx: ObjectContext | ObjectSharedContext, dispatch: Dispatch | None) -> Tracking:
    """The estimated arrival and the driver's latest position: asked of the driver's twin while the
    driver is on the delivery; else the last told here (while watched, or by an earlier release),
    else the workflow's first estimate."""
    tracking = await TRACKING.get(ctx)
    told = tracking.driver if tracking is not None else None
    driver: Courier | DriverPosition | None = (dispatch.courier if dispatch else None) or told
    if driver is not None:
        latest = await ctx.object_call(twin.get_position, key=driver.driver_id, arg=None)
        if latest is not None and latest.delivery_id == driver.delivery_id:
            return Tracking(arrival=latest.arrival, driver=latest)
    if tracking is not None:
        return Tracking(arrival=tracking.arrival, driver=told)
    return Tracking(arrival=dispatch.arrival if dispatch else None)


@order_status.handler(name="getTracking", kind="shared", input_serde=NO_INPUT)
async def get_tracking(ctx: ObjectSharedContext, _: Nothing = None) -> Tracking:
    """The estimated arrival and the driver's latest position (after the delivery: where it was last
    told, if the order was watched)."""
    return await latest_tracking(ctx, await dispatch_of(ctx))
