"""The operations dashboard: drivers and the orders in flight on a live map, counts per status, stalls.

It reads Restate's own tables through SQL introspection (admin API): the orders in flight are the
workflows whose invocation has not completed (`sys_invocation`), with why Restate retries any
invocation of theirs; their statuses come from the workflows' state for those orders only, and the
orders that ended are counted by the ops board (`ordering/board.py`). So a refresh costs the same with
10,000 ended orders as with 10, and no invocation.

`/ops?region=<id>` shows one region's drivers (those whose shift is in it) and orders (of its
restaurants) only; the board counts the orders that ended per region too.
"""

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import Field

from foodorder import introspection
from foodorder.catalog import load_catalog
from foodorder.clients.restate import RestateApi
from foodorder.config import Settings
from foodorder.gateway.auth import OperatorDep
from foodorder.gateway.web import render
from foodorder.models import DriverStatus, Location, Model, Order, OrderEvent, Status, epoch_ms
from foodorder.ordering import board
from foodorder.ordering.board import Problem

router = APIRouter(tags=["operations"])
SNAPSHOT_EVERY_S = 1.0
PAGE_SIZE = 50
PageDep = Annotated[int, Query(ge=1, description="page of the orders in flight")]
SizeDep = Annotated[int, Query(ge=1, le=500, description="orders in flight per page")]
# Why Restate retries an invocation: kept by the invoker for the invocations it is working on only.
FAILURES_QUERY = (
    "SELECT id, retry_count, last_failure, last_failure_related_command_name FROM sys_invocation_state"
    " WHERE last_failure IS NOT NULL"
)
ORDER_SERVICES = "('order-workflow', 'order-status')"
# What /ops reads of each order in flight and each driver (by key: see `keyed`).
READS = (
    f"({introspection.HISTORY_ROWS})"
    " OR (service_name = 'order-workflow' AND key = 'order')"
    " OR (service_name = 'driver-digital-twin' AND key IN ('driver-status', 'driver-location', 'region'))"
)


class DriverRow(Model):
    id: str
    status: DriverStatus
    region: str | None = Field(description="the region of the driver's shift (none between shifts)")
    location: Location | None


class OrderRow(Model):
    id: str
    status: Status
    since: int = Field(description="epoch ms of the last status change")
    stale: bool
    reason: str | None
    retrying: str | None = Field(description="why Restate retries an invocation of the order")
    region: str | None
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
    admin: RestateApi,
    settings: Settings,
    page: int = 1,
    size: int = PAGE_SIZE,
    region: str | None = None,
) -> Snapshot:
    """Drivers, one page of the orders in flight and the counts (of `region`, if given), as the engine
    holds them now.

    Every read is by key (the board's shards, the orders in flight, the drivers) or of the invocations
    Restate is working on: its cost grows with the drivers and the orders in flight, never with the
    orders that ended.
    """
    listed, retrying = await asyncio.gather(board.read(admin), retrying_orders(admin))
    in_flight = listed.in_flight
    for key, retry in retrying.items():
        if retry.run_since is not None:
            in_flight.setdefault(key, retry.run_since)
    state: dict[tuple[str, str], dict[str, Any]] = {}
    if keys := [*in_flight, *listed.drivers]:
        where = f"{introspection.keyed(keys)} AND ({READS})"
        sql = f"SELECT service_name, service_key, key, value_utf8 FROM state WHERE {where}"
        for row in await introspection.query(admin, sql):
            values = state.setdefault((row["service_name"], row["service_key"]), {})
            values[row["key"]] = json.loads(row["value_utf8"])
    latest = {
        key: OrderEvent.model_validate(values["history"][-1])
        for (_, key), values in state.items()
        if values.get("history")
    }
    now = epoch_ms()
    stale_before = now - settings.stale_after_s * 1000

    def since(key: str) -> int:
        return latest[key].at if key in latest else in_flight[key]

    def submitted(key: str) -> Order | None:
        order = state.get(("order-workflow", key), {}).get("order")
        return Order.model_validate(order) if order else None

    # An order whose ending the board has not counted yet, but whose final status is recorded, is done.
    orders = sorted((k for k in in_flight if k not in latest or not latest[k].final), key=since)
    if region is not None:
        orders = [k for k in orders if order_region(submitted(k)) == region]
    pages = max(1, -(-len(orders) // size))
    page = min(max(page, 1), pages)
    counts = Counter((latest[k].status or Status.NEW) if k in latest else Status.NEW for k in orders)
    for tally in listed.tallies:
        counts.update(tally.ended if region is None else tally.ended_by_region.get(region, {}))
    problems = sorted(
        (p for tally in listed.tallies for p in tally.problems if region in (None, p.region)),
        key=lambda p: -p.at,
    )
    drivers = [
        DriverRow(
            id=driver,
            status=values["driver-status"],
            region=values.get("region"),
            location=values.get("driver-location"),
        )
        for driver in sorted(listed.drivers)
        if "driver-status" in (values := state.get(("driver-digital-twin", driver), {}))
    ]
    return Snapshot(
        at=now,
        drivers=[driver for driver in drivers if region in (None, driver.region)],
        active_orders=[
            order_row(
                key,
                latest.get(key),
                since(key),
                submitted(key),
                retrying[key].reason if key in retrying else None,
                stale_before,
            )
            for key in orders[(page - 1) * size : page * size]
        ],
        active=len(orders),
        stale=sum(since(k) < stale_before for k in orders),
        page=page,
        pages=pages,
        recent_problems=problems[: board.RECENT_PROBLEMS],
        counts={status.value: n for status, n in counts.items()},
        stale_after_s=settings.stale_after_s,
    )


@dataclass(frozen=True)
class Retrying:
    """An invocation of an order that Restate retries: why, and whether it is the order's workflow run
    (then the order is in flight even before it could tell the board: it may never have run)."""

    reason: str
    run_since: int | None  # epoch ms the run was created, for the workflow's run


async def retrying_orders(admin: RestateApi) -> dict[str, Retrying]:
    """The orders with an invocation Restate retries (the latest such invocation), by order."""
    failures = {r["id"]: r for r in await introspection.query(admin, FAILURES_QUERY)}
    if not failures:
        return {}
    targets = await introspection.query(
        admin,
        "SELECT id, target_service_key, target_handler_name, created_at FROM sys_invocation_status"
        f" WHERE id IN ({introspection.literals(failures)}) AND target_service_name IN {ORDER_SERVICES}",
    )
    orders = {}
    for target in targets:
        failure, handler = failures[target["id"]], target["target_handler_name"]
        step = failure.get("last_failure_related_command_name")
        where = f"{handler} ({step})" if step else handler
        reason = f"{where}, retry {failure['retry_count']}: {failure['last_failure']}"
        run_since = sql_time_ms(target["created_at"]) if handler == "run" else None
        orders[target["target_service_key"]] = Retrying(reason, run_since)
    return orders


def sql_time_ms(timestamp: str) -> int:
    """Epoch ms of a timestamp as Restate's SQL answers it (RFC 3339)."""
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


class Snapshots:
    """The latest snapshot of each page (of each region filter), shared by every open /ops: however many
    tabs are open, Restate is asked at most once per SNAPSHOT_EVERY_S for a page."""

    def __init__(self, admin: RestateApi, settings: Settings) -> None:
        self.admin, self.settings = admin, settings
        self.latest: dict[tuple[int, int, str | None], tuple[float, asyncio.Future[Snapshot]]] = {}

    async def get(self, page: int, size: int, region: str | None = None) -> Snapshot:
        """The page's snapshot, read now unless another tab had it read less than a period ago."""
        now = asyncio.get_running_loop().time()
        self.latest = {k: v for k, v in self.latest.items() if now - v[0] < SNAPSHOT_EVERY_S}
        if (page, size, region) not in self.latest:
            reading = asyncio.ensure_future(snapshot(self.admin, self.settings, page, size, region))
            self.latest[(page, size, region)] = (now, reading)
        return await asyncio.shield(self.latest[(page, size, region)][1])


def order_region(order: Order | None) -> str | None:
    """The region of the order's restaurant (None before the order is stored)."""
    shop = load_catalog().restaurant(order.restaurant_id) if order else None
    return shop.region if shop else None


def order_row(
    key: str,
    last: OrderEvent | None,
    since: int,
    submitted: Order | None,
    retrying: str | None,
    stale_before: float,
) -> OrderRow:
    """One order in flight as /ops lists it."""
    shop = load_catalog().restaurant(submitted.restaurant_id) if submitted else None
    return OrderRow(
        id=key,
        status=(last.status if last else None) or Status.NEW,
        since=since,
        stale=since < stale_before,
        reason=last.reason if last else None,
        retrying=retrying,
        region=shop.region if shop else None,
        restaurant_location=shop.location if shop else None,
        delivery_location=submitted.delivery_location if submitted else None,
    )


async def region_filter(
    region: Annotated[str | None, Query(description="show only this region's drivers and orders")] = None,
) -> str | None:
    """The region asked for, if the catalog has it (404 otherwise); None for every region."""
    if region is not None and load_catalog().region(region) is None:
        raise HTTPException(404, f"no region {region!r}")
    return region


RegionFilter = Annotated[str | None, Depends(region_filter)]


@router.get("/ops", response_class=HTMLResponse, include_in_schema=False)
async def ops_page(request: Request, _: OperatorDep, region: RegionFilter = None) -> HTMLResponse:
    """The dashboard page, of every region or one; its data arrives over /ops/events."""
    regions = [r.model_dump(mode="json") for r in load_catalog().regions]
    return render(request, "ops.html", regions=regions, region=region)


@router.get("/ops/events", response_class=EventSourceResponse, include_in_schema=False)
async def ops_events(
    request: Request,
    _: OperatorDep,
    page: PageDep = 1,
    size: SizeDep = PAGE_SIZE,
    region: RegionFilter = None,
) -> AsyncIterator[ServerSentEvent]:
    """A snapshot of drivers and one page of orders (of one region, if given) every second."""
    snapshots: Snapshots = request.app.state.snapshots
    while True:
        try:
            data = (await snapshots.get(page, size, region)).model_dump(mode="json")
            yield ServerSentEvent(event="snapshot", data=data)
        except httpx.HTTPError as error:
            yield ServerSentEvent(event="unavailable", data={"detail": f"restate admin: {error}"})
        await asyncio.sleep(SNAPSHOT_EVERY_S)


@router.get("/ops/snapshot", include_in_schema=False)
async def ops_snapshot(
    request: Request,
    _: OperatorDep,
    page: PageDep = 1,
    size: SizeDep = PAGE_SIZE,
    region: RegionFilter = None,
) -> Snapshot:
    """One snapshot, read now, as JSON (what /ops/events sends every second)."""
    return await snapshot(request.app.state.admin, request.app.state.settings, page, size, region)
