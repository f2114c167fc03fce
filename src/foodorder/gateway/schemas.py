"""Request and response bodies of the public API (camelCase JSON)."""

from datetime import datetime

from pydantic import Field

from foodorder.models import MAX_DELAY_MS, Location, Model, Status

ORDER_REF = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class CartLine(Model):
    """A product and how many of it."""

    product_id: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=100)


class OrderRequest(Model):
    """An order as a provider submits it; prices come from the menu, not from the provider."""

    id: str = Field(pattern=ORDER_REF, description="the provider's own order reference")
    restaurant_id: str = Field(min_length=1, max_length=64)
    products: list[CartLine] = Field(min_length=1, max_length=50)
    delivery_delay: int = Field(
        0, ge=0, le=MAX_DELAY_MS, description="milliseconds before preparation starts"
    )
    delivery_location: Location | None = None
    total_cost: int | None = Field(None, ge=0, description="if sent, must equal the menu's total in cents")


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
    status: Status
    eta: datetime | None = Field(description="estimated delivery time")
    history: list[HistoryEntry]
    driver: DriverView | None
    items: list[Item]
    total_cost: int = Field(description="cents")
    delivery_delay: int
    links: Links


class Problem(Model):
    """An error: what went wrong, and where."""

    detail: str | list[dict[str, object]]
