"""The operations dashboard: drivers and the orders in flight on a live map, counts per status, stalls.

It reads Restate's own tables through SQL introspection (admin API): the orders in flight are the
workflows whose invocation has not completed (`sys_invocation`), with why Restate retries any
invocation of theirs; their statuses come from order-status for those orders only, and the orders
that ended are counted by the ops board (`ordering/board.py`). So a refresh costs the same with
10,000 ended orders as with 10, and no invocation.
"""

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterable
from datetime import datetime
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import Field

from foodorder import introspection
from foodorder.catalog import load_catalog
from foodorder.config import Settings
from foodorder.gateway.auth import OperatorDep
from foodorder.gateway.web import render
from foodorder.models import DriverStatus, Location, Model, Order, OrderEvent, Status
from foodorder.ordering import board
from foodorder.ordering.board import Problem

router = APIRouter(tags=["operations"])
SNAPSHOT_EVERY_S = 1.0
PAGE_SIZE = 50
PageDep = Annotated[int, Query(ge=1, description="page of the orders in flight")]
SizeDep = Annotated[int, Query(ge=1, le=500, description="orders in flight per page")]
DRIVERS_QUERY = (
    "SELECT service_key, key, value_utf8 FROM state WHERE service_name = 'driver-digital-twin'"
    " AND key IN ('driver-status', 'driver-location')"
)
# The orders in flight: each order's workflow whose run has not completed (those that ended, kept
# for the retention period, are left out by the status filter).
RUNNING_QUERY = (
    "SELECT id, target_service_key, created_at, trace_id FROM sys_invocation_status"
    " WHERE target_service_name = 'order-workflow' AND target_handler_name = 'run' AND status != 'completed'"
)
# Why Restate retries an invocation: kept by the invoker for the invocations it is working on only.
FAILURES_QUERY = (
    "SELECT id, retry_count, last_failure, last_failure_related_command_name FROM sys_invocation_state"
    " WHERE last_failure IS NOT NULL"
)
ORDER_SERVICES = "('order-workflow', 'order-status')"


class DriverRow(Model):
    id: str
    status: DriverStatus
    location: Location | None


class OrderRow(Model):
    id: str
    status: Status
    since: int = Field(description="epoch ms of the last status change")
    stale: bool
    reason: str | None
    retrying: str | None = Field(description="why Restate retries an invocation of the order")
    trace_id: str | None = Field(description="the trace of its workflow (with FOODORDER_OTLP_ENDPOINT)")
    restaurant_location: Location | None
    delivery_location: Location | None


class Snapshot(Model):
    """What /ops shows at one moment."""

    at: int
    drivers: list[DriverRow]
    active_orders: list[OrderRow] = Field(description="one page, the longest in their status first")
    active: int = Field(description="orders in flight")
    stale: int = Field(description="orders in flight that kept their status longer than stale_after_s")
    page: int
    pages: int
    recent_problems: list[Problem] = Field(description="latest orders that ended REJECTED or CANCELLED")
    counts: dict[str, int] = Field(description="orders in flight per status, ended orders per final status")
    stale_after_s: float


async def snapshot(
    admin: httpx.AsyncClient, settings: Settings, page: int = 1, size: int = PAGE_SIZE
) -> Snapshot:
    """Drivers, one page of the orders in flight and the counts, as the engine holds them now.

    Its cost grows with the drivers and the orders in flight, never with the orders that ended.
    """
    running = {r["target_service_key"]: r for r in await introspection.query(admin, RUNNING_QUERY)}
    retrying = await retry_reasons(admin)
    histories = await states(admin, "order-status", "history", running)
    latest = {key: OrderEvent.model_validate(json.loads(value)[-1]) for key, value in histories.items()}
    now = int(time.time() * 1000)
    stale_ms = settings.stale_after_s * 1000

    def since(key: str) -> int:
        return latest[key].at if key in latest else parse_time(running[key]["created_at"])

    keys = sorted(running, key=since)
    pages = max(1, -(-len(keys) // size))
    page = min(max(page, 1), pages)
    shown = keys[(page - 1) * size : page * size]
    orders = await states(admin, "order-workflow", "order", shown)
    submitted = {key: Order.model_validate_json(value) for key, value in orders.items()}
    counts = Counter((latest[k].status or Status.NEW) if k in latest else Status.NEW for k in keys)
    tallies = await board.read_tallies(admin)
    for tally in tallies:
        counts.update(tally.ended)
    problems = sorted((p for tally in tallies for p in tally.problems), key=lambda p: -p.at)
    return Snapshot(
        at=now,
        drivers=await drivers(admin),
        active_orders=[
            order_row(
                k, latest.get(k), since(k), running[k], submitted.get(k), retrying.get(k), now - stale_ms
            )
            for k in shown
        ],
        active=len(keys),
        stale=sum(since(k) < now - stale_ms for k in keys),
        page=page,
        pages=pages,
        recent_problems=problems[: board.RECENT_PROBLEMS],
        counts={status.value: n for status, n in counts.items()},
        stale_after_s=settings.stale_after_s,
    )


async def retry_reasons(admin: httpx.AsyncClient) -> dict[str, str]:
    """Why Restate retries an invocation of an order (the latest such invocation), by order."""
    failures = {r["id"]: r for r in await introspection.query(admin, FAILURES_QUERY)}
    if not failures:
        return {}
    targets = await introspection.query(
        admin,
        "SELECT id, target_service_key, target_handler_name FROM sys_invocation_status"
        f" WHERE target_service_name IN {ORDER_SERVICES} AND id IN ({literals(failures)})",
    )
    reasons = {}
    for target in targets:
        failure = failures[target["id"]]
        step = failure.get("last_failure_related_command_name")
        where = target["target_handler_name"] + (f" ({step})" if step else "")
        reasons[target["target_service_key"]] = (
            f"{where}, retry {failure['retry_count']}: {failure['last_failure']}"
        )
    return reasons


def literals(values: Iterable[str]) -> str:
    """SQL string literals, comma-separated."""
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


async def states(admin: httpx.AsyncClient, service: str, name: str, keys: Collection[str]) -> dict[str, str]:
    """The state `name` (JSON) of these keys of `service`, by key (read for these keys only)."""
    if not keys:
        return {}
    sql = (
        "SELECT service_key, value_utf8 FROM state"
        f" WHERE service_name = '{service}' AND key = '{name}' AND service_key IN ({literals(keys)})"
    )
    return {row["service_key"]: row["value_utf8"] for row in await introspection.query(admin, sql)}


def parse_time(value: str) -> int:
    """Epoch ms of a timestamp Restate's SQL returns (RFC 3339)."""
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


async def drivers(admin: httpx.AsyncClient) -> list[DriverRow]:
    """Every driver's twin: status and position."""
    state: dict[str, dict[str, Any]] = {}
    for row in await introspection.query(admin, DRIVERS_QUERY):
        state.setdefault(row["service_key"], {})[row["key"]] = json.loads(row["value_utf8"])
    return [
        DriverRow(id=key, status=values["driver-status"], location=values.get("driver-location"))
        for key, values in sorted(state.items())
        if "driver-status" in values
    ]


def order_row(
    key: str,
    last: OrderEvent | None,
    since: int,
    invocation: dict[str, Any],
    order: Order | None,
    retrying: str | None,
    stale_before: float,
) -> OrderRow:
    """One order in flight as /ops lists it, from its workflow's invocation, last status and order."""
    shop = load_catalog().restaurant(order.restaurant_id) if order else None
    return OrderRow(
        id=key,
        status=(last.status if last else None) or Status.NEW,
        since=since,
        stale=since < stale_before,
        reason=last.reason if last else None,
        retrying=retrying,
        trace_id=invocation.get("trace_id"),
        restaurant_location=shop.location if shop else None,
        delivery_location=order.delivery_location if order else None,
    )


@router.get("/ops", response_class=HTMLResponse, include_in_schema=False)
async def ops_page(request: Request, _: OperatorDep) -> HTMLResponse:
    """The dashboard page; its data arrives over /ops/events."""
    return render(request, "ops.html")


@router.get("/ops/events", response_class=EventSourceResponse, include_in_schema=False)
async def ops_events(
    request: Request, _: OperatorDep, page: PageDep = 1, size: SizeDep = PAGE_SIZE
) -> AsyncIterator[ServerSentEvent]:
    """A snapshot of drivers and one page of orders every second."""
    settings: Settings = request.app.state.settings
    admin: httpx.AsyncClient = request.app.state.admin
    while True:
        try:
            data = (await snapshot(admin, settings, page, size)).model_dump(mode="json")
            yield ServerSentEvent(event="snapshot", data=data)
        except httpx.HTTPError as error:
            yield ServerSentEvent(event="unavailable", data={"detail": f"restate admin: {error}"})
        await asyncio.sleep(SNAPSHOT_EVERY_S)


@router.get("/ops/snapshot", include_in_schema=False)
async def ops_snapshot(
    request: Request, _: OperatorDep, page: PageDep = 1, size: SizeDep = PAGE_SIZE
) -> Snapshot:
    """One snapshot, as JSON (what /ops/events sends every second)."""
    return await snapshot(request.app.state.admin, request.app.state.settings, page, size)
