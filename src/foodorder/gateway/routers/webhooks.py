"""Marketplace integration: signed order webhooks in, and the log of the status webhooks sent out.

A provider configured in FOODORDER_PROVIDER_WEBHOOKS may push its orders to
`/api/v1/providers/{providerId}/webhooks/orders`, signed with its secret instead of an API key; the
order then runs exactly as one submitted with `POST /api/v1/orders`. Its status webhooks (sent by the
services' `webhook-outbox`) are listed, per provider, from the engine's state, and can be sent again.
"""

import json
import time
from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from pydantic import Field, ValidationError
from pydantic.json_schema import SkipJsonSchema

from foodorder import introspection
from foodorder.config import Settings
from foodorder.gateway.auth import OperatorDep, ProviderDep
from foodorder.gateway.board import BoardStartsDep
from foodorder.gateway.deps import IngressDep, order_key
from foodorder.gateway.limits import limiter
from foodorder.gateway.routers.orders import links, priced_order, take_order
from foodorder.gateway.schemas import (
    TOO_MANY,
    UNAUTHENTICATED,
    UNAVAILABLE,
    UNREADABLE_BODY,
    OrderAccepted,
    OrderRequest,
    PathId,
    problems,
)
from foodorder.gateway.stores import REFUSALS, StoresDep
from foodorder.models import Delivery, DeliveryState, Model, Status
from foodorder.signing import SIGNATURE, TIMESTAMP, BadSignature, verify

router = APIRouter(tags=["marketplace webhooks"], responses=TOO_MANY | UNAVAILABLE)
OUTBOX = "webhook-outbox"
RECENT_FAILURES = 20
UNSIGNED = problems(
    {401: "unknown provider, or a signature missing, wrong or more than 5 minutes off: nothing stored"}
)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@router.post(
    "/api/v1/providers/{provider_id}/webhooks/orders",
    responses={
        **UNSIGNED,
        **UNREADABLE_BODY,
        **problems({409: "an order with this id and a different content exists; " + REFUSALS[409]}),
        **problems({422: "a field does not fit (naming it); " + REFUSALS[422]}),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": OrderRequest.model_json_schema(by_alias=True)}},
        }
    },
)
async def order_webhook(
    provider_id: PathId,
    request: Request,
    ingress: IngressDep,
    stores: StoresDep,
    starts: BoardStartsDep,
    timestamp: Annotated[str | None, Header(alias=TIMESTAMP, description="epoch seconds")] = None,
    signature: Annotated[
        str | None, Header(alias=SIGNATURE, description='hex HMAC-SHA256 of "{timestamp}.{raw body}"')
    ] = None,
) -> OrderAccepted:
    """An order pushed by a provider, signed with its secret: taken at once; a resend is a no-op.

    The body is that of `POST /api/v1/orders`. The answer (200) comes as soon as the order is in
    Restate's log, before its workflow runs; a resend of the same order answers the same.
    """
    body = await request.body()
    webhook = _settings(request).provider_webhooks.get(provider_id)
    if webhook is None:
        raise HTTPException(401, f"provider {provider_id!r} has no webhook secret configured")
    try:
        verify(webhook.secret, timestamp, signature, body, time.time())
    except BadSignature as error:
        raise HTTPException(401, str(error)) from None
    limit = limiter(request)
    await limit.hit(limit.api, "order webhooks for this provider", "webhook", provider_id)
    try:
        submitted = OrderRequest.model_validate_json(body)
    except ValidationError as error:
        detail = [
            {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in error.errors(include_url=False)
        ]
        raise HTTPException(422, detail) from None
    order = priced_order(order_key(provider_id, submitted.id), submitted)
    current = await take_order(ingress, stores, starts, order)
    return OrderAccepted(id=submitted.id, status=current or Status.NEW, links=links(submitted.id))


class DeliveryLog(Model):
    """A provider's status webhooks, newest first."""

    deliveries: list[Delivery]


class ReplayAccepted(Model):
    """The event is queued to be delivered again, with the same event id."""

    event_id: str
    state: DeliveryState


def deliveries_query(provider: str | None) -> str:
    """SQL for the delivery logs of `provider`'s event streams (their keys start with its id), or all."""
    sql = f"SELECT service_key, value_utf8 FROM state WHERE service_name = '{OUTBOX}' AND key = 'deliveries'"
    if provider is None:
        return sql
    prefix = f"{provider}:".replace("'", "''")
    return f"{sql} AND starts_with(service_key, '{prefix}')"


async def provider_deliveries(request: Request, provider: str | None) -> list[tuple[str, Delivery]]:
    """Every logged delivery of `provider` (None: of every provider) with its stream's key, newest first."""
    rows = await introspection.query(request.app.state.admin, deliveries_query(provider))
    found = [
        (row["service_key"], Delivery.model_validate(entry))
        for row in rows
        for entry in json.loads(row["value_utf8"])
    ]
    return sorted(found, key=lambda pair: pair[1].queued_at, reverse=True)


class DeliveryFilter(Model):
    """Which deliveries to list (an unknown parameter is refused)."""

    # Not null in the schema: a query parameter is left out, never null (the fuzz run's negative
    # cases would otherwise send a "null" that reads as left out).
    status: DeliveryState | SkipJsonSchema[None] = Field(None, description="only these; all when left out")
    limit: int = Field(100, ge=1, le=1000)


@router.get("/api/v1/webhooks/deliveries", responses=UNAUTHENTICATED)
async def deliveries(
    request: Request, provider: ProviderDep, wanted: Annotated[DeliveryFilter, Query()]
) -> DeliveryLog:
    """Your status webhooks (pending, delivered or failed), newest first."""
    found = await provider_deliveries(request, provider.id)
    return DeliveryLog(deliveries=[d for _, d in found if wanted.status in (None, d.state)][: wanted.limit])


@router.post(
    "/api/v1/webhooks/deliveries/{event_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    responses=UNAUTHENTICATED
    | problems({404: "no such event for this provider", 409: "the event is still being delivered"}),
)
async def replay(
    event_id: PathId, request: Request, provider: ProviderDep, ingress: IngressDep
) -> ReplayAccepted:
    """Send one of your status webhooks again (same event id), with a new retry window."""
    found = await provider_deliveries(request, provider.id)
    stream = next((key for key, d in found if d.event.event_id == event_id and d.state != "pending"), None)
    if stream is None:
        if any(d.event.event_id == event_id for _, d in found):
            raise HTTPException(409, f"event {event_id!r} is still being delivered")
        raise HTTPException(404, f"no event {event_id!r}")
    await ingress.send(OUTBOX, stream, "replay", event_id)
    return ReplayAccepted(event_id=event_id, state="pending")


class WebhooksOverview(Model):
    """What /ops shows of the status webhooks: deliveries per provider and state, the latest failures."""

    counts: dict[str, dict[str, int]]
    failed: list[Delivery]


@router.get("/ops/webhooks", include_in_schema=False)
async def ops_webhooks(request: Request, _: OperatorDep) -> WebhooksOverview:
    """Every provider's status webhooks for the operations dashboard."""
    found = [d for _, d in await provider_deliveries(request, None)]
    counts: dict[str, Counter[str]] = {}
    for delivery in found:
        counts.setdefault(delivery.provider, Counter())[delivery.state] += 1
    failed = [d for d in found if d.state == "failed"]
    return WebhooksOverview(
        counts={provider: dict(states) for provider, states in counts.items()},
        failed=failed[:RECENT_FAILURES],
    )
