"""Restaurant point-of-sale stub (:5050): prepares orders and reports them ready through the public API.

It can refuse orders (a configured rate, or any order with a configured product), and stop
preparing an order on request. Every answer is kept, so asking again gives the same answer.
"""

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from urllib.parse import quote

import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import Field

from foodorder import telemetry
from foodorder.config import Settings
from foodorder.external.faults import inject_faults
from foodorder.external.store import open_store
from foodorder.models import Model

SCHEMA = """
CREATE TABLE IF NOT EXISTS preparations (
    order_id TEXT PRIMARY KEY,
    restaurant_id TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    at INTEGER NOT NULL,
    ready_at INTEGER NOT NULL,
    reported_at INTEGER
);
"""
PREPARING, REFUSED, CANCELLED = "preparing", "refused", "cancelled"
log = logging.getLogger("foodorder.pos")


class PrepareRequest(Model):
    """A request to prepare an order."""

    order_id: str = Field(min_length=1, max_length=200)
    restaurant_id: str = Field(min_length=1, max_length=64)
    product_ids: list[str] = Field(default_factory=list)


class CancelRequest(Model):
    """A request to stop preparing an order."""

    order_id: str = Field(min_length=1, max_length=200)


class Preparation(Model):
    """An order the kitchen was asked for; `reportedAt` is set once the ready report was accepted."""

    order_id: str
    restaurant_id: str
    state: str = Field(description="preparing, refused or cancelled")
    reason: str | None
    at: int = Field(description="epoch milliseconds")
    ready_at: int
    reported_at: int | None


class Preparations(Model):
    """Orders the kitchen took, oldest first."""

    preparations: list[Preparation]


def now_ms() -> int:
    return int(time.time() * 1000)


def create_app(settings: Settings) -> FastAPI:
    """The POS's HTTP API and the loop that reports finished orders."""
    db = open_store(settings.data_dir / "pos.sqlite3", SCHEMA, version=2)
    tick_s = min(0.2, max(0.02, settings.scaled(settings.preparation_s) / 10))

    async def report_ready(client: httpx.AsyncClient) -> None:
        """Report every finished, unreported order; what fails is tried again on the next tick."""
        due = db.execute(
            "SELECT order_id, restaurant_id FROM preparations"
            " WHERE state = ? AND reported_at IS NULL AND ready_at <= ?",
            (PREPARING, now_ms()),
        ).fetchall()
        for order_id, restaurant_id in due:
            path = (
                f"/api/v1/restaurants/{quote(restaurant_id, safe='')}/orders/{quote(order_id, safe='')}/ready"
            )
            try:
                response = await client.post(path)
            except httpx.HTTPError as error:
                log.warning("reporting %s ready failed (%s); will retry", order_id, error)
                continue
            if response.is_client_error:
                log.error(
                    "the gateway refused %s as ready: %s %s", order_id, response.status_code, response.text
                )
            elif not response.is_success:
                continue
            db.execute("UPDATE preparations SET reported_at = ? WHERE order_id = ?", (now_ms(), order_id))

    async def reporter() -> None:
        headers = {"Authorization": f"Bearer {settings.pos_restaurant_key}"}
        async with httpx.AsyncClient(base_url=settings.gateway_url, headers=headers, timeout=5) as client:
            while True:
                await report_ready(client)
                await asyncio.sleep(tick_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(reporter())
        yield
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    app = FastAPI(title="foodorder restaurant POS (stub)", lifespan=lifespan)
    telemetry.instrument(app)
    inject_faults(app, settings)

    def preparation(order_id: str) -> Preparation | None:
        row = db.execute("SELECT * FROM preparations WHERE order_id = ?", (order_id,)).fetchone()
        return Preparation.model_validate(dict(row)) if row else None

    def refusal(request: PrepareRequest) -> str | None:
        """Why the kitchen will not make this order, if it will not."""
        if unavailable := sorted(set(request.product_ids) & set(settings.pos_refused_products)):
            return f"the kitchen cannot make product {', '.join(unavailable)} today"
        if random.random() < settings.pos_refusal_rate:
            return "the kitchen is too busy to take the order"
        return None

    @app.post("/prepare", responses={409: {"description": "the kitchen refuses the order"}})
    async def prepare(request: PrepareRequest) -> JSONResponse:
        """Start preparing, or refuse (once per order); the ready report survives a restart of the POS."""
        for product, status_code in settings.pos_failing_products.items():
            if product in request.product_ids:
                return JSONResponse({"detail": f"failing orders with product {product}"}, status_code)
        if preparation(request.order_id) is None:
            at = now_ms()
            reason = refusal(request)
            db.execute(
                "INSERT OR IGNORE INTO preparations VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (
                    request.order_id,
                    request.restaurant_id,
                    REFUSED if reason else PREPARING,
                    reason,
                    at,
                    at + int(settings.scaled(settings.preparation_s) * 1000),
                ),
            )
            log.info("order %s %s", request.order_id, f"refused: {reason}" if reason else "taken")
        taken = preparation(request.order_id)
        assert taken is not None
        if taken.state == REFUSED:
            return JSONResponse({"detail": taken.reason}, status_code=409)
        return JSONResponse(taken.model_dump(mode="json"))

    @app.post("/cancel")
    async def cancel(request: CancelRequest) -> Preparation | None:
        """Stop preparing the order: it is not reported ready. Unknown or refused orders stay as they are."""
        db.execute(
            "UPDATE preparations SET state = ?, reason = 'cancelled' WHERE order_id = ? AND state = ?",
            (CANCELLED, request.order_id, PREPARING),
        )
        return preparation(request.order_id)

    @app.get("/preparations")
    async def preparations() -> Preparations:
        """Every order the kitchen took."""
        rows = db.execute("SELECT * FROM preparations ORDER BY at")
        return Preparations(preparations=[Preparation.model_validate(dict(row)) for row in rows])

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    return app
