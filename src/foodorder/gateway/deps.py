"""Shared dependencies of the routers: the ingress client and the orders a caller may see."""

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from foodorder.clients.locations import LocationPublisher
from foodorder.gateway.auth import ProviderDep
from foodorder.gateway.restate import Ingress
from foodorder.gateway.schemas import PathId
from foodorder.models import Order


def ingress(request: Request) -> Ingress:
    client: Ingress = request.app.state.ingress
    return client


IngressDep = Annotated[Ingress, Depends(ingress)]


def locations(request: Request) -> LocationPublisher:
    publisher: LocationPublisher = request.app.state.locations
    return publisher


LocationsDep = Annotated[LocationPublisher, Depends(locations)]


def order_key(provider_id: str, order_ref: str) -> str:
    """The order workflow's key: providers' references live in separate namespaces."""
    return f"{provider_id}:{order_ref}"


async def load_order(ingress: Ingress, key: str) -> Order | None:
    """The order stored by its workflow, or None if there is no such order."""
    raw: Any = await ingress.call("order-workflow", key, "getOrder")
    return None if raw is None else Order.model_validate(raw)


async def provider_order(order_id: PathId, provider: ProviderDep, ingress: IngressDep) -> Order:
    """The caller's own order `order_id`; 404 for unknown orders and for other providers' orders."""
    order = await load_order(ingress, order_key(provider.id, order_id))
    if order is None:
        raise HTTPException(404, f"no order {order_id!r}")
    return order


ProviderOrderDep = Annotated[Order, Depends(provider_order)]
