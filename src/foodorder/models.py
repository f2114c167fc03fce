"""Wire and state models shared by every service; JSON is camelCase like the seed."""

import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

ORDER_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
MAX_DELAY_MS = 7 * 24 * 3600 * 1000  # a week


def epoch_ms() -> int:
    """The wall clock in epoch milliseconds, the unit of every `at` (outside a handler: see state.now_ms)."""
    return int(time.time() * 1000)


def as_datetime(at: int) -> datetime:
    """An epoch-ms time as a UTC datetime (the JSON of the API and the webhooks carries ISO 8601 times)."""
    return datetime.fromtimestamp(at / 1000, UTC)


class Model(BaseModel):
    """Base of every wire model: camelCase on the wire, snake_case in Python, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
    )


class Status(StrEnum):
    """Order statuses, in the order a delivered order goes through them."""

    NEW = "NEW"
    CREATED = "CREATED"
    SCHEDULED = "SCHEDULED"
    IN_PREPARATION = "IN_PREPARATION"
    SCHEDULING_DELIVERY = "SCHEDULING_DELIVERY"
    WAITING_FOR_DRIVER = "WAITING_FOR_DRIVER"
    IN_DELIVERY = "IN_DELIVERY"
    DELIVERED = "DELIVERED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in (Status.DELIVERED, Status.REJECTED, Status.CANCELLED)


class RejectionReason(StrEnum):
    """Why an order was rejected (the marketplaces' denial reasons), beside the human `reason` text."""

    ITEM_AVAILABILITY = "ITEM_AVAILABILITY"  # with the items that are sold out or unknown
    RESTAURANT_PAUSED = "RESTAURANT_PAUSED"
    RESTAURANT_BUSY = "RESTAURANT_BUSY"
    KITCHEN_CLOSED = "KITCHEN_CLOSED"
    POS_UNREACHABLE = "POS_UNREACHABLE"
    ACCEPT_DEADLINE = "ACCEPT_DEADLINE"
    OTHER = "OTHER"


class Refusal(Model):
    """Why an order is not taken: a reason code, the human reason, and the items it concerns."""

    reason_code: RejectionReason
    reason: str
    items: list[str] = Field(default_factory=list, description="product ids, for ITEM_AVAILABILITY")


class DriverStatus(StrEnum):
    """States of a driver's digital twin."""

    IDLE = "IDLE"
    WAITING_FOR_WORK = "WAITING_FOR_WORK"
    DELIVERING = "DELIVERING"


class Location(Model):
    """A point on Earth in degrees; `long` is the seed's name for longitude."""

    lat: float = Field(ge=-90, le=90)
    long: float = Field(ge=-180, le=180)


class LocationEvent(Location):
    """A phone's location report (the value of a driver-updates record), stamped when it was taken.

    A publish may be repeated (a retried step, a replayed topic), so the twin applies a report only if
    it is newer than the last one it applied; a report without `at` (the seed's phones) always applies.
    """

    at: int | None = Field(None, ge=0, description="when the phone was there, epoch milliseconds")


class Product(Model):
    """One line of an order."""

    product_id: str = Field(min_length=1)
    description: str = ""
    quantity: int = Field(ge=1)

    @field_validator("product_id", mode="before")
    @classmethod
    def _seed_numeric_id(cls, value: object) -> object:
        """The seed's web UI sends product ids as numbers (1000): they are the same products."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Order(Model):
    """An order as a provider submits it (the seed's JSON, plus an optional delivery location)."""

    id: str = Field(pattern=ORDER_ID, description="letters, digits and . _ : - (providers' ids are prefixed)")
    restaurant_id: str = Field(min_length=1, max_length=64)
    products: list[Product] = Field(min_length=1)
    total_cost: float = Field(
        ge=0, description="the menu's total, in cents (or in dollars, as the seed's web UI sends it)"
    )
    delivery_delay: int = Field(
        0, ge=0, le=MAX_DELAY_MS, description="milliseconds before preparation starts"
    )
    delivery_location: Location | None = None


class StatusChange(Model):
    """One entry of an order's history; a rejection carries its reason code (and items)."""

    status: Status
    at: int = Field(description="epoch milliseconds")
    reason: str | None = None
    reason_code: RejectionReason | None = None
    items: list[str] | None = Field(None, description="product ids, for ITEM_AVAILABILITY")


class StatusUpdate(StatusChange):
    """A status change as a workflow of an earlier release records it in order-status (`recordStatus`),
    with the provider whose webhook is told of it."""

    webhook: str | None = Field(None, description="provider id whose status webhook hears of it")


class DriverPosition(Model):
    """Where the order's driver is, and when the order arrives at that pace."""

    driver_id: str
    delivery_id: str
    location: Location
    arrival: int = Field(description="estimated delivery time, epoch milliseconds")


class Courier(Model):
    """The driver on an order's delivery."""

    driver_id: str
    delivery_id: str


class DriverWatch(Courier):
    """Someone watches the order of `delivery_id`: its driver's twin passes on every location until then."""

    until: int = Field(description="epoch milliseconds")


class Dispatch(Model):
    """What an order's workflow knows of its delivery: its status, the estimated arrival made when the
    restaurant accepted it (epoch ms), and its driver while one is on it."""

    status: Status | None = None
    ended_at: int | None = Field(None, description="when the order took its final status, epoch ms")
    arrival: int | None = None
    courier: Courier | None = None


class OrderEvent(Model):
    """One change a customer can watch: a status, a new ETA or a driver position; `seq` counts from 1."""

    seq: int
    at: int = Field(description="epoch milliseconds")
    type: Literal["status", "eta", "driver"]
    status: Status | None = None
    reason: str | None = None
    reason_code: RejectionReason | None = None
    items: list[str] | None = Field(None, description="product ids, for ITEM_AVAILABILITY")
    arrival: int | None = Field(None, description="estimated delivery time, epoch milliseconds")
    driver: DriverPosition | None = None

    @property
    def final(self) -> bool:
        """Whether this is the order's final status (after it, nothing changes)."""
        return self.status is not None and self.status.terminal

    def change(self) -> StatusChange:
        """The history entry of a status event."""
        assert self.status is not None, "only a status event is an entry of the history"
        return StatusChange(
            status=self.status, at=self.at, reason=self.reason, reason_code=self.reason_code, items=self.items
        )


class Tracking(Model):
    """Where the delivery stands: estimated arrival (epoch ms) and the driver's last position."""

    arrival: int | None = None
    driver: DriverPosition | None = None


class OrderStatus(Model):
    """What order-status/get answers (the seed's shape): the status and the ETA in milliseconds from now."""

    status: Status | None = None
    eta: float | None = None


class OrderTerms(Model):
    """What an order is held to, fixed in the journal when its workflow starts.

    The catalog and the settings may change while an order is in flight (a restart with new
    settings, a new menu); the order keeps the terms it started with, so that a replay of its
    workflow takes the same branches.
    """

    rejection: Refusal | None = Field(
        None, description="why the catalog cannot serve the order, naming the field"
    )
    price: int = Field(0, ge=0, description="what the customer pays, in cents, from the menu")
    restaurant_location: Location | None = None
    region: str | None = Field(None, description="the restaurant's region: its matcher finds the driver")
    customer_location: Location
    time_scale: float = Field(gt=0)
    restaurant_timeout_s: float = Field(gt=0)
    driver_search_timeout_s: float = Field(gt=0)
    driver_silence_timeout_s: float = Field(gt=0)
    accept_deadline_s: float = Field(gt=0)
    preparation_s: float = Field(ge=0, description="the kitchen's usual time, for the first ETA")
    driver_speed_mps: float = Field(gt=0)
    webhook: str | None = Field(
        None, description="the provider whose status webhook is told of every status change"
    )
    offer_timeout_s: float = Field(30.0, gt=0)
    offer_misses_off_duty: int = Field(3, ge=1)
    fixed_at: int | None = Field(
        None, description="when the terms were fixed (epoch ms): the time of the order's CREATED status"
    )

    def scaled(self, seconds: float) -> float:
        """A simulated duration in wall-clock seconds under the order's time scale."""
        return seconds / self.time_scale


class Decision(Model):
    """The restaurant's answer to an order it holds: accepted, or refused with a reason."""

    accepted: bool
    refusal: Refusal | None = None


class DeliveryRequest(Model):
    """What a driver is asked to do: pick up at the restaurant, drop at the customer."""

    delivery_id: str
    restaurant_id: str
    restaurant_location: Location
    customer_location: Location
    order_id: str | None = None
    order_picked_up: bool = False
    eta_tolerance_ms: int = Field(0, ge=0, description="unused: an earlier release's state may have it")


class OfferPolicy(Model):
    """How long a driver has to answer an offer, and how many offers in a row they may let lapse."""

    timeout_ms: int = Field(gt=0)
    misses_off_duty: int = Field(ge=1, description="this many lapsed offers in a row end the driver's shift")


class DeliveryInformation(Model):
    """The delivery manager's state for one delivery (the order workflow starts it with the first fields)."""

    order_id: str
    restaurant_id: str
    region: str
    restaurant_location: Location
    customer_location: Location
    silence_timeout_ms: int = Field(gt=0, description="an assigned driver silent this long is replaced")
    eta_tolerance_ms: int = Field(0, ge=0, description="unused: an earlier release's state may have it")
    offer_policy: OfferPolicy
    workflow_keeps_driver: bool = Field(
        False, description="false for an order of an earlier release: order-status is told of its driver"
    )
    workflow_checks_silence: bool = Field(
        False, description="false for an order of an earlier release: the manager plans the first check"
    )
    found_awakeable: str | None = Field(
        None, description="resolved with the driver the current attempt found (else `selectedDriver`)"
    )
    next_found_awakeable: str | None = Field(
        None, description="the next attempt's `found_awakeable`, should this attempt's driver be replaced"
    )
    delivered_awakeable: str | None = Field(
        None, description="resolved once the order reached the customer (else `signalDeliveryFinished`)"
    )
    order_picked_up: bool = False
    driver_id: str | None = None
    attempt: int = Field(0, description="how many drivers were replaced for silence so far")
    last_seen: int = Field(0, description="epoch ms of the assigned driver's last sign of life")


class SilenceCheck(Model):
    """A delayed look at whether the driver of `attempt` went silent, due at `due` (epoch ms)."""

    attempt: int = Field(ge=0)
    due: int
    next_found_awakeable: str | None = Field(
        None, description="from the workflow: resolve it with the next driver, should this one be replaced"
    )


class WorkflowLink(Model):
    """How the matcher and the driver's twin tell the order's workflow of its delivery themselves (a
    delivery of this release: no delivery manager). Kept out of `DeliveryRequest`, which phones see."""

    attempt: int = Field(
        ge=0, description="the workflow's search for a driver: 0, then one per replaced driver"
    )
    found_awakeable: str = Field(
        min_length=1, description="the matcher resolves it with the driver who accepted"
    )
    picked_up_awakeable: str = Field(min_length=1, description="the twin resolves it at the driver's pickup")
    delivered_awakeable: str = Field(
        min_length=1, description="the twin resolves it once the order is delivered"
    )


class PendingDelivery(Model):
    """A delivery waiting for a driver; the matcher tells the order's workflow (through `link`) or, for
    an earlier release's order, its delivery manager which driver it got."""

    delivery: DeliveryRequest
    policy: OfferPolicy
    link: WorkflowLink | None = None
    declined_by: list[str] = Field(default_factory=list, description="drivers who declined or let it lapse")
    offers: int = Field(0, description="offers made so far (they number the offer ids)")
    taken_on_accept: bool = Field(
        False,
        description="the driver's twin takes the delivery as they accept (false for an earlier release's"
        " order: its delivery manager hands it over, and tells its order-status where the driver is)",
    )


class AvailableDriver(Model):
    """A driver waiting for work in their region's matcher: where they are, idle since when (epoch ms)."""

    driver_id: str = Field(min_length=1)
    location: Location
    since: int
    missed: int = Field(0, description="offers let lapse in a row")


class Offer(Model):
    """A delivery offered to one driver, who accepts or declines it before `expires` (epoch ms)."""

    offer_id: str
    driver_id: str
    region: str
    delivery: DeliveryRequest
    distance_m: float = Field(description="great-circle distance from the driver to the restaurant")
    expires: int


class PhoneWork(Model):
    """What the twin pushes to the driver's phone: an offer to answer or a delivery to drive (or neither:
    then the phone asks the twin, as it does at the start of a shift)."""

    offer: Offer | None = None
    delivery: DeliveryRequest | None = None


class OpenOffer(Model):
    """The matcher's record of an offer out: the offer, the driver it holds and the delivery it serves."""

    offer: Offer
    driver: AvailableDriver
    pending: PendingDelivery


class OfferAnswer(Model):
    """A driver's answer to an offer."""

    offer_id: str = Field(min_length=1)
    driver_id: str = Field(min_length=1)
    accepted: bool
    takes_delivery: bool = Field(
        False,
        description="the twin takes an accepted offer's delivery itself (false from an earlier release's"
        " twin: the delivery manager hands it over)",
    )


class TakenDelivery(Model):
    """The matcher's answer to an accept of a delivery its workflow directs: the twin takes both."""

    delivery: DeliveryRequest
    link: WorkflowLink


class FoundDriver(Model):
    """The matcher tells a delivery manager which driver accepted its offer."""

    driver_id: str = Field(min_length=1)
    took_delivery: bool = Field(False, description="the driver's twin took the delivery as it accepted")


class ShiftStart(Model):
    """A driver taking work, and where they are: a new shift belongs to the region nearest to them."""

    location: Location | None = None


class PhoneShiftStart(Model):
    """A phone app starting its driver's shift in one call: where to push work, where the phone is,
    and whether the driver takes work (not while the phone drives a delivery of its own)."""

    phone_app: str = Field(min_length=1, description="the service (keyed by driver id) to push work to")
    location: LocationEvent
    takes_work: bool = True


class DriverSelected(Model):
    """The driver the delivery manager found for an attempt (0 first, then one per replaced driver)."""

    driver_id: str
    attempt: int = Field(0, ge=0)


class Reassignment(Model):
    """The delivery manager replaced the order's driver (attempt = the attempt that failed)."""

    attempt: int = Field(ge=0)
    reason: str


class StoreStatus(StrEnum):
    """What a restaurant says of itself: taking orders, paused (until a time), or busy (slower)."""

    ONLINE = "ONLINE"
    PAUSED = "PAUSED"
    BUSY = "BUSY"


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
CLOCK = r"^([01]\d|2[0-3]):[0-5]\d$"


class OpeningHours(Model):
    """One day's opening, in the restaurant's time zone; a `closes` at or before `opens` is past midnight."""

    day: Weekday
    opens: str = Field(pattern=CLOCK, description="HH:MM")
    closes: str = Field(pattern=CLOCK, description="HH:MM")

    def covers(self, day: int, minute: int) -> bool:
        """Whether this opening covers minute `minute` (from 00:00) of weekday `day` (0 = Monday)."""
        opens, closes = clock_minutes(self.opens), clock_minutes(self.closes)
        mine = WEEKDAYS.index(self.day)
        if closes > opens:
            return day == mine and opens <= minute < closes
        # Past midnight: from `opens` on its own day to `closes` on the next.
        return (day == mine and minute >= opens) or (day == (mine + 1) % 7 and minute < closes)


def clock_minutes(clock: str) -> int:
    """Minutes from midnight of an "HH:MM" time."""
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


class Snooze(Model):
    """An item that cannot be ordered until `until` (epoch ms): sold out, "86'd"."""

    product_id: str = Field(min_length=1, max_length=64)
    until: int = Field(ge=0, description="epoch milliseconds")


class StoreStatusUpdate(Model):
    """A restaurant's new status: PAUSED until a time (or until set ONLINE), BUSY with extra minutes."""

    state: StoreStatus
    paused_until: int | None = Field(None, ge=0, description="epoch ms; PAUSED only, none = until changed")
    extra_prep_minutes: int = Field(0, ge=0, le=240, description="BUSY only: added to every order's ETA")


class Hours(Model):
    """A restaurant's weekly opening hours in its time zone; none at all means always open."""

    timezone: str = Field("UTC", description="IANA time zone, e.g. America/Los_Angeles")
    hours: list[OpeningHours] = Field(default_factory=list, max_length=50)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    def open_at(self, now_ms: int) -> bool:
        """Whether the restaurant is open at `now_ms` (epoch ms)."""
        if not self.hours:
            return True
        local = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        return any(opening.covers(local.weekday(), minute) for opening in self.hours)


class StoreState(Model):
    """A restaurant's state as it set it through the API (kept by the `store-state` object)."""

    status: StoreStatusUpdate = Field(default_factory=lambda: StoreStatusUpdate(state=StoreStatus.ONLINE))
    hours: Hours = Field(default_factory=Hours)
    snoozed: list[Snooze] = Field(default_factory=list)

    def state_at(self, now_ms: int) -> StoreStatus:
        """The status in effect at `now_ms`: a pause that has run out is ONLINE again."""
        status = self.status
        if status.state == StoreStatus.PAUSED and status.paused_until is not None:
            return StoreStatus.PAUSED if now_ms < status.paused_until else StoreStatus.ONLINE
        return status.state

    def extra_prep_ms(self, now_ms: int) -> int:
        """What a busy kitchen adds to an order's preparation, in milliseconds (simulated)."""
        busy = self.state_at(now_ms) == StoreStatus.BUSY
        return self.status.extra_prep_minutes * 60_000 if busy else 0

    def snoozed_until(self, product_id: str, now_ms: int) -> int | None:
        """Until when `product_id` is snoozed (epoch ms), or None if it can be ordered now."""
        return next((s.until for s in self.snoozed if s.product_id == product_id and s.until > now_ms), None)

    def refusal(self, product_ids: list[str], now_ms: int) -> Refusal | None:
        """Why the restaurant cannot take an order of `product_ids` at `now_ms`; None when it can."""
        if self.state_at(now_ms) == StoreStatus.PAUSED:
            until = self.status.paused_until
            when = f"until {utc(until)}" if until is not None else "until further notice"
            return Refusal(
                reason_code=RejectionReason.RESTAURANT_PAUSED, reason=f"the restaurant is paused {when}"
            )
        if not self.hours.open_at(now_ms):
            return Refusal(reason_code=RejectionReason.KITCHEN_CLOSED, reason="the restaurant is closed now")
        if snoozed := sorted({p for p in product_ids if self.snoozed_until(p, now_ms) is not None}):
            return Refusal(
                reason_code=RejectionReason.ITEM_AVAILABILITY,
                reason=f"not available now: product {', '.join(snoozed)}",
                items=snoozed,
            )
        return None


def utc(epoch_ms: int) -> str:
    """An epoch-ms time as people read it, in UTC to the minute ("2026-11-26 14:35 UTC")."""
    return as_datetime(epoch_ms).strftime("%Y-%m-%d %H:%M UTC")


WebhookType = Literal["order.status", "store.status", "menu.updated"]


class WebhookEvent(Model):
    """What a provider's status webhook receives (signed); `orderId` is the provider's own id.

    `restaurantId` names the store of a store.status or menu.updated event (which has no order).
    """

    event_id: str = Field(description="the same on every try: the receiver's deduplication key")
    type: WebhookType
    order_id: str | None = None
    restaurant_id: str | None = None
    status: str
    reason: str | None = None
    reason_code: RejectionReason | None = Field(None, description="why an order was rejected, as a code")
    items: list[str] | None = Field(None, description="the product ids unavailable, for ITEM_AVAILABILITY")
    eta: datetime | None = Field(None, description="estimated delivery time, while the order is on its way")
    at: datetime = Field(description="when it happened")

    @property
    def final(self) -> bool:
        """Whether this is an order's final status (its stream ends with it)."""
        return self.type == "order.status" and self.status in {s.value for s in Status if s.terminal}


DeliveryState = Literal["pending", "delivered", "failed"]


class Delivery(Model):
    """One event for a provider's webhook and how its delivery stands (the delivery log)."""

    provider: str
    event: WebhookEvent
    queued_at: datetime = Field(description="when it was queued: the retry window starts then")
    state: DeliveryState = "pending"
    attempts: int = 0
    last_error: str | None = None
    updated_at: datetime | None = None
