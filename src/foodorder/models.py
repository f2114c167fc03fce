"""Wire and state models shared by every service; JSON is camelCase like the seed."""

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

ORDER_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
MAX_DELAY_MS = 7 * 24 * 3600 * 1000  # a week


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
    """One entry of an order's history."""

    status: Status
    at: int = Field(description="epoch milliseconds")
    reason: str | None = None


class DriverPosition(Model):
    """Where the order's driver is, and when the order arrives at that pace."""

    driver_id: str
    delivery_id: str
    location: Location
    arrival: int = Field(description="estimated delivery time, epoch milliseconds")


class OrderEvent(Model):
    """One change a customer can watch: a status, a new ETA or a driver position; `seq` counts from 1."""

    seq: int
    at: int = Field(description="epoch milliseconds")
    type: Literal["status", "eta", "driver"]
    status: Status | None = None
    reason: str | None = None
    arrival: int | None = Field(None, description="estimated delivery time, epoch milliseconds")
    driver: DriverPosition | None = None

    @property
    def final(self) -> bool:
        """Whether this is the order's final status (after it, nothing changes)."""
        return self.status is not None and self.status.terminal


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

    rejection: str | None = Field(
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
    offer_timeout_s: float = Field(30.0, gt=0)
    offer_misses_off_duty: int = Field(3, ge=1)

    def scaled(self, seconds: float) -> float:
        """A simulated duration in wall-clock seconds under the order's time scale."""
        return seconds / self.time_scale


class DeliveryRequest(Model):
    """What a driver is asked to do: pick up at the restaurant, drop at the customer."""

    delivery_id: str
    restaurant_id: str
    restaurant_location: Location
    customer_location: Location
    order_id: str | None = None
    order_picked_up: bool = False


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
    offer_policy: OfferPolicy
    order_picked_up: bool = False
    driver_id: str | None = None
    attempt: int = Field(0, description="how many drivers were replaced for silence so far")
    last_seen: int = Field(0, description="epoch ms of the assigned driver's last sign of life")


class SilenceCheck(Model):
    """A delayed look at whether the driver of `attempt` went silent, due at `due` (epoch ms)."""

    attempt: int = Field(ge=0)
    due: int


class PendingDelivery(Model):
    """A delivery waiting for a driver; the matcher tells its delivery manager which driver it got."""

    delivery: DeliveryRequest
    policy: OfferPolicy
    declined_by: list[str] = Field(default_factory=list, description="drivers who declined or let it lapse")
    offers: int = Field(0, description="offers made so far (they number the offer ids)")


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


class ShiftStart(Model):
    """A driver taking work, and where they are: a new shift belongs to the region nearest to them."""

    location: Location | None = None


class DriverSelected(Model):
    """The driver the delivery manager found for an attempt (0 first, then one per replaced driver)."""

    driver_id: str
    attempt: int = Field(0, ge=0)


class Reassignment(Model):
    """The delivery manager replaced the order's driver (attempt = the attempt that failed)."""

    attempt: int = Field(ge=0)
    reason: str
