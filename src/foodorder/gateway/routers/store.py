"""The web storefront: pick a restaurant, fill a cart, check out, then follow the order live.

The browser never holds an API key: its server side here places and cancels orders through the
public API as the storefront provider. An order's page is reachable by its unguessable id.
"""

import random
import uuid
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import Field

from foodorder import geo
from foodorder.catalog import load_catalog
from foodorder.config import Settings
from foodorder.gateway.deps import IngressDep, load_order, order_key
from foodorder.gateway.events import EventStream, StreamDep
from foodorder.gateway.limits import StorefrontRate
from foodorder.gateway.routers.orders import priced_items, priced_order
from foodorder.gateway.schemas import (
    TOO_MANY,
    UNAVAILABLE,
    UNREADABLE_BODY,
    Body,
    CancelAccepted,
    CartLine,
    Item,
    OrderRequest,
    PathId,
    problems,
)
from foodorder.gateway.web import render
from foodorder.models import MAX_DELAY_MS, Model

router = APIRouter(tags=["storefront (browser)"])


class Cart(Body):
    """What the customer chose."""

    restaurant_id: str = Field(min_length=1, max_length=64)
    products: list[CartLine] = Field(min_length=1, max_length=50)
    delivery_delay: int = Field(0, ge=0, le=MAX_DELAY_MS, description="milliseconds until it is due")


class Quote(Model):
    """The cart priced by the server from the menu."""

    items: list[Item]
    total_cost: int = Field(description="cents")


class Placed(Model):
    """Where to follow the order that was placed."""

    id: str
    url: str


def storefront_api(request: Request) -> httpx.AsyncClient:
    """The public API as the storefront provider (server side only)."""
    client: httpx.AsyncClient = request.app.state.storefront_api
    return client


async def storefront_order(order_id: PathId, ingress: IngressDep, request: Request) -> str:
    """The workflow key of the storefront's order `order_id`; 404 if there is none."""
    settings: Settings = request.app.state.settings
    key = order_key(settings.storefront_provider, order_id)
    if await load_order(ingress, key) is None:
        raise HTTPException(404, f"no order {order_id!r}")
    return key


StorefrontOrderKey = Annotated[str, Depends(storefront_order)]


def passthrough(response: httpx.Response) -> JSONResponse:
    """The public API's answer, as it is, for the browser."""
    return JSONResponse(response.json(), status_code=response.status_code)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def storefront(request: Request) -> HTMLResponse:
    """Restaurants, menus and a cart."""
    catalog = load_catalog().model_dump(mode="json")
    return render(request, "store.html", catalog=catalog)


@router.post(
    "/store/quote",
    dependencies=[StorefrontRate],
    responses=UNREADABLE_BODY | TOO_MANY | problems({422: "unknown restaurant or product"}),
)
async def quote(cart: Cart) -> Quote:
    """The cart's lines and total, priced by the server."""
    order = priced_order("quote", order_request(cart, "quote"))
    return Quote(items=priced_items(order), total_cost=int(order.total_cost))


@router.post(
    "/store/checkout",
    status_code=201,
    response_model=Placed,
    dependencies=[StorefrontRate],
    responses=UNREADABLE_BODY | UNAVAILABLE | TOO_MANY | problems({422: "the cart cannot be ordered"}),
)
async def checkout(cart: Cart, request: Request) -> JSONResponse:
    """Place the order through the public API; the customer's door is a spot in the restaurant's region."""
    ref = uuid.uuid4().hex
    body: dict[str, Any] = order_request(cart, ref).model_dump(mode="json", exclude_none=True)
    door = geo.random_location(random.Random(), load_catalog().center_of(cart.restaurant_id))
    body["deliveryLocation"] = door.model_dump(mode="json")
    response = await storefront_api(request).post("/api/v1/orders", json=body)
    if response.status_code != 202:
        return passthrough(response)
    return JSONResponse(Placed(id=ref, url=f"/orders/{ref}").model_dump(mode="json"), status_code=201)


def order_request(cart: Cart, ref: str) -> OrderRequest:
    """The cart as the public API's order, under the reference `ref`."""
    return OrderRequest(
        id=ref, restaurant_id=cart.restaurant_id, products=cart.products, delivery_delay=cart.delivery_delay
    )


@router.get("/orders/{order_id}", response_class=HTMLResponse, include_in_schema=False)
async def order_page(order_id: PathId, request: Request) -> HTMLResponse:
    """The order's live page: timeline, ETA, map, and a cancel button while it can be cancelled."""
    response = await storefront_api(request).get(f"/api/v1/orders/{order_id}")
    if response.status_code == 404:
        raise HTTPException(404, f"no order {order_id!r}")
    response.raise_for_status()
    order = response.json()
    catalog = load_catalog()
    restaurant = catalog.restaurant(order["restaurantId"])
    region = catalog.region(restaurant.region) if restaurant else None
    return render(
        request,
        "order.html",
        order=order,
        restaurant=restaurant.model_dump(mode="json") if restaurant else None,
        region=region.model_dump(mode="json") if region else None,
    )


@router.get(
    "/store/orders/{order_id}/events",
    response_class=EventStream,
    responses=TOO_MANY | problems({404: "no such order"}),
)
async def order_events(key: StorefrontOrderKey, stream: StreamDep) -> EventStream:
    """The order's events for its page (the same stream as the API's)."""
    return stream(key)


@router.post(
    "/store/orders/{order_id}/cancel",
    response_model=CancelAccepted,
    dependencies=[StorefrontRate],
    responses=UNAVAILABLE | TOO_MANY | problems({404: "no such order", 409: "too late to cancel"}),
)
async def cancel(order_id: PathId, request: Request) -> JSONResponse:
    """The customer's cancel button."""
    response = await storefront_api(request).post(
        f"/api/v1/orders/{order_id}/cancel", json={"reason": "cancelled by the customer"}
    )
    return passthrough(response)
