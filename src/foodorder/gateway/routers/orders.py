"""Providers: submit orders, read them, follow them live."""

from fastapi import APIRouter, HTTPException, Response, status

from foodorder import telemetry
from foodorder.catalog import load_catalog
from foodorder.gateway.auth import ProviderDep
from foodorder.gateway.board import BoardStarts, BoardStartsDep
from foodorder.gateway.deps import IngressDep, ProviderOrderDep, order_key, stored_order
from foodorder.gateway.events import EventStream, StreamDep
from foodorder.gateway.restate import Ingress
from foodorder.gateway.schemas import (
    TOO_MANY,
    UNAUTHENTICATED,
    UNAVAILABLE,
    UNREADABLE_BODY,
    CancelAccepted,
    CancelRequest,
    DriverView,
    HistoryEntry,
    Item,
    Links,
    OrderAccepted,
    OrderRequest,
    OrderView,
    PathId,
    problems,
)
from foodorder.gateway.stores import REFUSALS, StoresDep, StoreStates, refuse_unavailable
from foodorder.models import Order, Product, Status, StatusChange, Tracking, as_datetime
from foodorder.ordering import board

router = APIRouter(
    prefix="/api/v1/orders",
    tags=["orders (provider key)"],
    responses=UNAUTHENTICATED | TOO_MANY | UNAVAILABLE,
)
CANCEL_TIMEOUT_S = 60.0
NOT_FOUND = problems({404: "no order with this id from this provider"})


def field_error(field: list[str | int], message: str) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors, naming the field."""
    return HTTPException(422, [{"loc": ["body", *field], "msg": message, "type": "value_error"}])


def priced_order(key: str, request: OrderRequest) -> Order:
    """The order the workflow runs: products described and priced from the restaurant's menu."""
    shop = load_catalog().restaurant(request.restaurant_id)
    if shop is None:
        raise field_error(["restaurantId"], f"unknown restaurant {request.restaurant_id!r}")
    products, total = [], 0
    for i, line in enumerate(request.products):
        item = shop.item(line.product_id)
        if item is None:
            raise field_error(["products", i, "productId"], f"{shop.id!r} has no product {line.product_id!r}")
        products.append(Product(product_id=item.id, description=item.name, quantity=line.quantity))
        total += item.price * line.quantity
    if request.total_cost is not None and request.total_cost != total:
        raise field_error(["totalCost"], f"the menu prices this order at {total}, not {request.total_cost}")
    return Order(
        id=key,
        restaurant_id=shop.id,
        products=products,
        total_cost=total,
        delivery_delay=request.delivery_delay,
        delivery_location=request.delivery_location,
    )


def links(order_ref: str) -> Links:
    return Links(self=f"{router.prefix}/{order_ref}", events=f"{router.prefix}/{order_ref}/events")


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": OrderAccepted, "description": "this order was already submitted, with this content"},
        **problems({409: "an order with this id and a different content exists; " + REFUSALS[409]}),
        **problems({422: "a field does not fit (naming it); " + REFUSALS[422]}),
        **UNREADABLE_BODY,
    },
)
async def submit_order(
    request: OrderRequest,
    provider: ProviderDep,
    ingress: IngressDep,
    stores: StoresDep,
    starts: BoardStartsDep,
    response: Response,
) -> OrderAccepted:
    """Submit an order; the same id with the same content again returns the same order."""
    order = priced_order(order_key(provider.id, request.id), request)
    current = await take_order(ingress, stores, starts, order)
    if current is not None:
        response.status_code = status.HTTP_200_OK
    return OrderAccepted(id=request.id, status=current or Status.NEW, links=links(request.id))


async def take_order(
    ingress: Ingress, stores: StoreStates, starts: BoardStarts, order: Order
) -> Status | None:
    """Start the order's workflow unless the store refuses it: None when this request started it,
    the order's status when it was submitted before with the same content (409 for another)."""
    with telemetry.about_order(order.id):  # the store's state is read for this order
        await refuse_unavailable(stores, ingress, order)
    # Restate starts a workflow once per key and says whether this request started it: an accepted
    # order costs this one invocation (the ops board hears of it in a batch, in the shard that the
    # header names: `BoardStarts`); a GET that comes before the workflow stored the order waits for
    # it (see `provider_order`), and only a resubmission reads the stored order to compare.
    shard = starts.next_shard
    sent = await ingress.send(
        "order-workflow",
        order.id,
        "run",
        order.model_dump(mode="json"),
        headers={board.LISTED_HEADER: shard},
    )
    if sent.get("status") == "Accepted":
        starts.add(order.id, shard)
        return None
    if await stored_order(ingress, order.id) != order:
        raise HTTPException(409, "an order with this id exists with a different content")
    current = Status(await ingress.call("order-workflow", order.id, "getStatus") or Status.NEW)
    if not current.terminal:  # the first submission's answer may have been lost before its start was listed
        starts.add(order.id, await ingress.call("order-workflow", order.id, "getBoardShard"))
    return current


def priced_items(order: Order) -> list[Item]:
    """The order's lines with their menu prices (0 for a line the menu no longer has)."""
    shop = load_catalog().restaurant(order.restaurant_id)
    lines = []
    for p in order.products:
        item = shop.item(p.product_id) if shop else None
        price = item.price if item else 0
        lines.append(Item(product_id=p.product_id, name=p.description, quantity=p.quantity, unit_price=price))
    return lines


@router.get("/{order_id}", responses=NOT_FOUND)
async def get_order(order_id: PathId, order: ProviderOrderDep, ingress: IngressDep) -> OrderView:
    """The order: status, ETA, history, driver, items and price."""
    history = [
        StatusChange.model_validate(h) for h in await ingress.call("order-workflow", order.id, "getHistory")
    ]
    tracking = Tracking.model_validate(await ingress.call("order-status", order.id, "getTracking"))
    current = history[-1].status if history else Status.NEW
    shop = load_catalog().restaurant(order.restaurant_id)
    return OrderView(
        id=order_id,
        restaurant_id=order.restaurant_id,
        region=shop.region if shop else None,
        status=current,
        eta=as_datetime(tracking.arrival) if tracking.arrival and not current.terminal else None,
        history=[
            HistoryEntry(
                status=h.status,
                at=as_datetime(h.at),
                reason=h.reason,
                reason_code=h.reason_code,
                items=h.items,
            )
            for h in history
        ],
        driver=DriverView(id=tracking.driver.driver_id, location=tracking.driver.location)
        if tracking.driver and current in (Status.WAITING_FOR_DRIVER, Status.IN_DELIVERY)
        else None,
        items=priced_items(order),
        total_cost=int(order.total_cost),
        delivery_delay=order.delivery_delay,
        delivery_location=order.delivery_location,
        links=links(order_id),
    )


@router.post(
    "/{order_id}/cancel",
    responses=NOT_FOUND
    | UNREADABLE_BODY
    | problems({409: "the order was picked up or has ended: it can no longer be cancelled"}),
)
async def cancel_order(
    order_id: PathId, order: ProviderOrderDep, ingress: IngressDep, request: CancelRequest | None = None
) -> CancelAccepted:
    """Cancel the order until the driver picks it up; cancelling twice is harmless.

    The scheduled wait is cut short, the restaurant told to stop, the driver released and the
    payment voided before this answers.
    """
    reason = request.reason if request and request.reason else "cancelled by the provider"
    # The answer waits for the undo (POS, driver, payment), which may wait for a retrying step.
    final = await ingress.call("order-workflow", order.id, "cancel", reason, timeout_s=CANCEL_TIMEOUT_S)
    return CancelAccepted(id=order_id, status=Status(final))


@router.get("/{order_id}/events", response_class=EventStream, responses=NOT_FOUND)
async def order_events(order: ProviderOrderDep, stream: StreamDep) -> EventStream:
    """Server-Sent Events for every status, ETA and driver change; ends after a final status.

    A stream also ends after FOODORDER_STREAM_MAX_S: the client resumes with Last-Event-ID.
    """
    return stream(order.id)
