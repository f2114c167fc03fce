"""store-state (key = restaurant id): whether a restaurant takes orders, when, and which items.

The one durable record of a store's state, set by the restaurant through the API: its status
(ONLINE, PAUSED until a time, BUSY with extra minutes of preparation), its opening hours and the
items it snoozed. The gateway's intake and the order workflow both judge an order by it, so they
agree. Every change goes through `save`, the place a change is announced from.
"""

from restate import ObjectContext, ObjectSharedContext, VirtualObject

from foodorder import webhooks
from foodorder.models import Hours, Snooze, StoreState, StoreStatus, StoreStatusUpdate, utc
from foodorder.state import NO_INPUT, Nothing, PydanticSerde, StateKey, required

store_state = VirtualObject("store-state")

STATE: StateKey[StoreState] = StateKey("state", StoreState)


async def current(ctx: ObjectContext | ObjectSharedContext) -> StoreState:
    """The store's state; a store that never set anything is ONLINE, always open, everything available."""
    return await STATE.get(ctx) or StoreState()


async def save(
    ctx: ObjectContext, state: StoreState, change: webhooks.StoreChange, reason: str | None
) -> StoreState:
    """Keep the store's new state (the one place it changes) and tell every provider with a webhook."""
    STATE.set(ctx, state)
    status = state.status.state.value if change == "store.status" else "UPDATED"
    event = webhooks.StoreEvent(type=change, restaurant_id=ctx.key(), status=status, reason=reason)
    await webhooks.announce(ctx, event)
    return state


def status_reason(update: StoreStatusUpdate) -> str | None:
    """What a provider reads beside a new store status."""
    if update.state == StoreStatus.PAUSED:
        return "paused until " + (utc(update.paused_until) if update.paused_until else "further notice")
    if update.state == StoreStatus.BUSY:
        return f"busy: {update.extra_prep_minutes} extra minutes of preparation"
    return None


@store_state.handler(kind="shared", input_serde=NO_INPUT)
async def get(ctx: ObjectSharedContext, _: Nothing = None) -> StoreState:
    """The store's state as it was set (the gateway and the workflow judge it at their own time)."""
    return await current(ctx)


@store_state.handler(name="setStatus", input_serde=required(StoreStatusUpdate))
async def set_status(ctx: ObjectContext, update: StoreStatusUpdate) -> StoreState:
    """ONLINE, PAUSED (until a time, or until changed) or BUSY (with extra preparation minutes)."""
    state = (await current(ctx)).model_copy(update={"status": update})
    return await save(ctx, state, "store.status", status_reason(update))


@store_state.handler(name="setHours", input_serde=required(Hours))
async def set_hours(ctx: ObjectContext, hours: Hours) -> StoreState:
    """Replace the weekly opening hours (none: always open)."""
    state = (await current(ctx)).model_copy(update={"hours": hours})
    return await save(ctx, state, "store.status", "opening hours changed")


@store_state.handler(
    name="setAvailability", input_serde=required(list[Snooze]), output_serde=PydanticSerde(StoreState)
)
async def set_availability(ctx: ObjectContext, snoozed: list[Snooze]) -> StoreState:
    """Replace the snoozed items: each unavailable until its time; an item not listed is available."""
    items = ", ".join(sorted({item.product_id for item in snoozed})) or "none"
    state = (await current(ctx)).model_copy(update={"snoozed": snoozed})
    return await save(ctx, state, "menu.updated", f"snoozed items: {items}")
