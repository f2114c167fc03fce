"""Shared dependencies of the routers: the ingress client and the orders a caller may see.

The gateway's dependencies are all `async def`, even those that only read the app's state: FastAPI
runs a plain `def` dependency in its thread pool, a thread hand-off on every request.
"""

import asyncio
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from foodorder.clients.locations import LocationPublisher
from foodorder.gateway.auth import ProviderDep
from foodorder.gateway.restate import Ingress
from foodorder.gateway.schemas import PathId
from foodorder.models import Order


async def ingress(request: Request) -> Ingress:
    client: Ingress = request.app.state.ingress
    return client


IngressDep = Annotated[Ingress, Depends(ingress)]


async def locations(request: Request) -> LocationPublisher:
    publisher: LocationPublisher = request.app.state.locations
    return publisher


LocationsDep = Annotated[LocationPublisher, Depends(locations)]


def order_key(provider_id: str, order_ref: str) -> str:
    """The order workflow's key: providers' references live in separate namespaces."""
    return f"{provider_id}:{order_ref}"


# How long a read waits for an accepted workflow to store its order (it does so as its first step,
# which a busy engine may start seconds after the 202), asking again at most every half second.
STORE_WAIT_S = 30.0
STORE_POLL_MAX_S = 0.5


async def load_order(ingress: Ingress, key: str) -> Order | None:
    """The order stored by its workflow, or None if there is no such order.

    A read that comes in the moments between the submission's 202 and the workflow's first step
    finds no order yet: only then, and only if the workflow was started, it waits for the order.
    """
    raw: Any = await ingress.call("order-workflow", key, "getOrder")
    if raw is None and await ingress.workflow_started("order-workflow", key):
        return await stored_order(ingress, key)
    return None if raw is None else Order.model_validate(raw)


async def stored_order(ingress: Ingress, key: str) -> Order:
    """The order of a workflow that was started: polled until its first step stored it."""
    deadline, pause = asyncio.get_running_loop().time() + STORE_WAIT_S, 0.02
    while (raw := await ingress.call("order-workflow", key, "getOrder")) is None:
        if asyncio.get_running_loop().time() > deadline:
            raise HTTPException(503, f"order {key!r} was accepted but is not stored yet: retry")
        await asyncio.sleep(pause)
        pause = min(2 * pause, STORE_POLL_MAX_S)
    return Order.model_validate(raw)


async def provider_order(order_id: PathId, provider: ProviderDep, ingress: IngressDep) -> Order:
    """The caller's own order `order_id`; 404 for unknown orders and for other providers' orders."""
    order = await load_order(ingress, order_key(provider.id, order_id))
    if order is None:
        raise HTTPException(404, f"no order {order_id!r}")
    return order


ProviderOrderDep = Annotated[Order, Depends(provider_order)]
