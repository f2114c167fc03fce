"""store-state (key = restaurant id): whether a restaurant takes orders, when, and which items.

The one durable record of a store's state, set by the restaurant through the API: its status
(ONLINE, PAUSED until a time, BUSY with extra minutes of preparation), its opening hours and the
items it snoozed. The gateway's intake and the order workflow both judge an order by it, so they
agree. Every change goes through `save`, the place a change is announced from.
"""

from restate import ObjectContext, ObjectSharedContext, VirtualObject

from foodorder.models import Hours, Snooze, StatusUpdate, StoreState
from foodorder.state import NO_INPUT, Nothing, PydanticSerde, StateKey, required

store_state = VirtualObject("store-state")

STATE: StateKey[StoreState] = StateKey("state", StoreState)


async def current(ctx: ObjectContext | ObjectSharedContext) -> StoreState:
    """The store's state; a store that never set anything is ONLINE, always open, everything available."""
    return await STATE.get(ctx) or StoreState()


def save(ctx: ObjectContext, state: StoreState) -> StoreState:
    """Keep the store's new state: the one place it changes (the `store.status` and `menu.updated`
    webhooks to providers are sent from here)."""
    STATE.set(ctx, state)
    return state


@store_state.handler(kind="shared", input_serde=NO_INPUT)
async def get(ctx: ObjectSharedContext, _: Nothing = None) -> StoreState:
    """The store's state as it was set (the gateway and the workflow judge it at their own time)."""
    return await current(ctx)


@store_state.handler(name="setStatus", input_serde=required(StatusUpdate))
async def set_status(ctx: ObjectContext, update: StatusUpdate) -> StoreState:
    """ONLINE, PAUSED (until a time, or until changed) or BUSY (with extra preparation minutes)."""
    return save(ctx, (await current(ctx)).model_copy(update={"status": update}))


@store_state.handler(name="setHours", input_serde=required(Hours))
async def set_hours(ctx: ObjectContext, hours: Hours) -> StoreState:
    """Replace the weekly opening hours (none: always open)."""
    return save(ctx, (await current(ctx)).model_copy(update={"hours": hours}))


@store_state.handler(
    name="setAvailability", input_serde=required(list[Snooze]), output_serde=PydanticSerde(StoreState)
)
async def set_availability(ctx: ObjectContext, snoozed: list[Snooze]) -> StoreState:
    """Replace the snoozed items: each unavailable until its time; an item not listed is available."""
    return save(ctx, (await current(ctx)).model_copy(update={"snoozed": snoozed}))
