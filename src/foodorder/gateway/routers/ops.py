"""The operations dashboard: every driver and active order on a live map, counts per status, stalls.

`/ops?region=<id>` shows one region's drivers (those whose shift is in it) and orders (of its
restaurants) only.

It reads the services' state through Restate's SQL introspection (admin API), so it shows what the
engine holds, not a copy.
"""

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import Field

from foodorder import introspection
from foodorder.catalog import load_catalog
from foodorder.config import Settings
from foodorder.gateway.auth import OperatorDep
from foodorder.gateway.web import render
from foodorder.models import DriverStatus, Location, Model, Order, OrderEvent, Status

router = APIRouter(tags=["operations"])
SNAPSHOT_EVERY_S = 1.0
RECENT_PROBLEMS = 10
STATE_QUERY = (
    "SELECT service_name, service_key, key, value_utf8 FROM state"
    " WHERE (service_name = 'driver-digital-twin' AND key IN ('driver-status', 'driver-location', 'region'))"
    " OR (service_name = 'order-status' AND key = 'history')"
    " OR (service_name = 'order-workflow' AND key = 'order')"
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
    region: str | None
    restaurant_location: Location | None
    delivery_location: Location | None


class Snapshot(Model):
    """What /ops shows at one moment."""

    at: int
    drivers: list[DriverRow]
    active_orders: list[OrderRow]
    recent_problems: list[OrderRow] = Field(description="latest orders that ended REJECTED or CANCELLED")
    counts: dict[str, int]
    stale_after_s: float


async def snapshot(admin: httpx.AsyncClient, settings: Settings, region: str | None = None) -> Snapshot:
    """Drivers and orders (of `region`, if given) as the engine holds them now."""
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for row in await introspection.query(admin, STATE_QUERY):
        state.setdefault((row["service_name"], row["service_key"]), {})[row["key"]] = json.loads(
            row["value_utf8"]
        )
    now = int(time.time() * 1000)
    drivers, orders = [], []
    for (service, key), values in sorted(state.items()):
        if service == "driver-digital-twin" and "driver-status" in values:
            location = values.get("driver-location")
            driver = DriverRow(
                id=key, status=values["driver-status"], region=values.get("region"), location=location
            )
            if region in (None, driver.region):
                drivers.append(driver)
        elif service == "order-status" and values.get("history"):
            values |= state.get(("order-workflow", key), {})
            order = order_row(key, values, now, settings.stale_after_s)
            if region in (None, order.region):
                orders.append(order)
    ended = sorted(
        (o for o in orders if o.status in (Status.REJECTED, Status.CANCELLED)), key=lambda o: -o.since
    )
    return Snapshot(
        at=now,
        drivers=drivers,
        active_orders=[o for o in orders if not o.status.terminal],
        recent_problems=ended[:RECENT_PROBLEMS],
        counts=dict(Counter(o.status.value for o in orders)),
        stale_after_s=settings.stale_after_s,
    )


def order_row(key: str, values: dict[str, Any], now: int, stale_after_s: float) -> OrderRow:
    last = OrderEvent.model_validate(values["history"][-1])
    status = last.status or Status.NEW
    order = Order.model_validate(values["order"]) if "order" in values else None
    shop = load_catalog().restaurant(order.restaurant_id) if order else None
    return OrderRow(
        id=key,
        status=status,
        since=last.at,
        stale=not status.terminal and now - last.at > stale_after_s * 1000,
        reason=last.reason,
        region=shop.region if shop else None,
        restaurant_location=shop.location if shop else None,
        delivery_location=order.delivery_location if order else None,
    )


def region_filter(
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
    request: Request, _: OperatorDep, region: RegionFilter = None
) -> AsyncIterator[ServerSentEvent]:
    """A snapshot of drivers and orders (of one region, if given) every second."""
    settings: Settings = request.app.state.settings
    async with httpx.AsyncClient(base_url=settings.admin_url, timeout=5) as admin:
        while True:
            try:
                data = (await snapshot(admin, settings, region)).model_dump(mode="json")
                yield ServerSentEvent(event="snapshot", data=data)
            except httpx.HTTPError as error:
                yield ServerSentEvent(event="unavailable", data={"detail": f"restate admin: {error}"})
            await asyncio.sleep(SNAPSHOT_EVERY_S)
