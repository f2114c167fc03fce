"""Request and response bodies of the public API (camelCase JSON)."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import AwareDatetime, ConfigDict, Field, model_validator

from foodorder.models import (
    MAX_DELAY_MS,
    ORDER_ID,
    Location,
    Model,
    OpeningHours,
    RejectionReason,
    Status,
    StoreStatus,
)

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
PathId = Annotated[str, Path(pattern=ID_PATTERN, description="letters, digits, '.', '_' and '-'")]
OrderId = Annotated[str, Path(pattern=ORDER_ID, description="the order id the restaurant was given")]


class Body(Model):
    """Base of request bodies: JSON types exactly as documented ("5" and true are not numbers)."""

    model_config = ConfigDict(strict=True)


class CartLine(Body):
    """A product and how many of it."""

    product_id: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=100)


class OrderRequest(Body):
    """An order as a provider submits it; prices come from the menu, not from the provider."""

    id: str = Field(pattern=ID_PATTERN, description="the provider's own order reference")
    restaurant_id: str = Field(min_length=1, max_length=64)
    products: list[CartLine] = Field(min_length=1, max_length=50)
    delivery_delay: int = Field(
        0, ge=0, le=MAX_DELAY_MS, description="milliseconds before preparation starts"
    )
    delivery_location: Location | None = None
    total_cost: int | None = Field(None, ge=0, description="if sent, must equal the menu's total in cents")


class CancelRequest(Body):
    """Why the order is cancelled (recorded in its history)."""

    reason: str | None = Field(None, max_length=200)


class CancelAccepted(Model):
    """The order ended as cancelled."""

    id: str
    status: Status


class Links(Model):
    """Where to follow an order."""

    self: str
    events: str


class OrderAccepted(Model):
    """The answer to a submitted order."""

    id: str
    status: Status
    links: Links


class Item(Model):
    """A priced line of an order."""

    product_id: str
    name: str
    quantity: int
    unit_price: int = Field(description="cents")


class HistoryEntry(Model):
    """A status the order went through."""

    status: Status
    at: datetime
    reason: str | None = None
    reason_code: RejectionReason | None = Field(None, description="why a REJECTED order was rejected")
    items: list[str] | None = Field(None, description="the product ids, for ITEM_AVAILABILITY")


class DriverView(Model):
    """The order's driver and where they are."""

    id: str
    location: Location


class OrderView(Model):
    """Everything a provider may know about its order."""

    id: str
    restaurant_id: str
    region: str | None = Field(description="the restaurant's region, whose drivers deliver the order")
    status: Status
    eta: datetime | None = Field(description="estimated delivery time")
    history: list[HistoryEntry]
    driver: DriverView | None
    items: list[Item]
    total_cost: int = Field(description="cents")
    delivery_delay: int
    delivery_location: Location | None = Field(description="where the order goes, if the provider said")
    links: Links


class Problem(Model):
    """An error: what went wrong, and where (a refused order: the reason code and the items)."""

    detail: str | list[dict[str, object]]
    reason_code: RejectionReason | None = None
    items: list[str] | None = None


class StatusRequest(Body):
    """A restaurant's new status: ONLINE, PAUSED (until a time, or until changed) or BUSY (extra minutes)."""

    state: StoreStatus = Field(strict=False)  # an enum's value, as JSON sends it
    until: AwareDatetime | None = Field(
        None, strict=False, description="PAUSED only: when it takes orders again (ISO 8601 with offset)"
    )
    extra_prep_minutes: int = Field(0, ge=0, le=240, description="BUSY only: added to every order's ETA")

    @model_validator(mode="after")
    def _fits_the_state(self) -> "StatusRequest":
        if self.until is not None and self.state != StoreStatus.PAUSED:
            raise ValueError("until: only a PAUSED restaurant pauses until a time")
        if (self.state == StoreStatus.BUSY) != (self.extra_prep_minutes > 0):
            raise ValueError("extraPrepMinutes: a BUSY restaurant takes 1 to 240 extra minutes, no other any")
        return self


class SnoozeRequest(Body):
    """An item that cannot be ordered until a time."""

    product_id: str = Field(min_length=1, max_length=64)
    until: AwareDatetime = Field(strict=False, description="ISO 8601 with offset")


class AvailabilityRequest(Body):
    """Every item snoozed now; an item not listed can be ordered."""

    snoozed: list[SnoozeRequest] = Field(max_length=200)


class DenyRequest(Body):
    """Why the restaurant denies the order."""

    reason_code: RejectionReason = Field(strict=False)  # an enum's value, as JSON sends it
    reason: str | None = Field(None, max_length=200)
    items: list[str] = Field(default_factory=list, max_length=50, description="for ITEM_AVAILABILITY")


class ItemAvailability(Model):
    """Whether a menu item can be ordered now."""

    product_id: str
    name: str
    available: bool
    snoozed_until: datetime | None


class RestaurantView(Model):
    """A restaurant with its store state now: status, hours and what can be ordered."""

    id: str
    name: str
    location: Location
    state: StoreStatus = Field(description="in effect now (a pause that ran out is ONLINE)")
    paused_until: datetime | None
    extra_prep_minutes: int = Field(description="what BUSY adds to an order's ETA")
    open: bool = Field(description="open now by its hours")
    timezone: str
    hours: list[OpeningHours] = Field(description="none: always open")
    availability: list[ItemAvailability]


def problems(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses answered with a JSON Problem, each with its meaning.

    The media type is spelled out because FastAPI would otherwise give an error the media type
    of the route's success (text/event-stream on the events stream).
    """
    content = {"application/json": {"schema": Problem.model_json_schema()}}
    return {code: {"description": text, "content": content} for code, text in described.items()}


UNAVAILABLE = problems({503: "Restate is unreachable"})
UNAUTHENTICATED = problems({401: "no API key, or not a key of this endpoint's audience"})
UNREADABLE_BODY = problems(
    {
        400: "the body is not UTF-8 JSON",
        408: "the body did not arrive within FOODORDER_CLIENT_TIMEOUT_S",
        413: "the body is larger than FOODORDER_MAX_BODY_BYTES",
    }
)
TOO_MANY = problems({429: "over a rate or open-stream limit: retry after Retry-After seconds"})
FORBIDDEN = problems({403: "the key may not act for this restaurant or driver"})
