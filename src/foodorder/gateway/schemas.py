"""Request and response bodies of the public API (camelCase JSON)."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import ConfigDict, Field

from foodorder.models import MAX_DELAY_MS, ORDER_ID, Location, Model, Status

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
    """An error: what went wrong, and where."""

    detail: str | list[dict[str, object]]


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
