"""Restaurant point-of-sale stub (:5050): prepares orders and reports them ready through the public API."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from urllib.parse import quote

import httpx
from fastapi import FastAPI
from pydantic import Field

from foodorder.config import Settings
from foodorder.external.store import open_store
from foodorder.models import Model

SCHEMA = """
CREATE TABLE IF NOT EXISTS preparations (
    order_id TEXT PRIMARY KEY,
    restaurant_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    ready_at INTEGER NOT NULL,
    reported_at INTEGER
);
"""
log = logging.getLogger("foodorder.pos")


class PrepareRequest(Model):
    """A request to prepare an order."""

    order_id: str = Field(min_length=1, max_length=200)
    restaurant_id: str = Field(min_length=1, max_length=64)


class Preparation(Model):
    """An order the kitchen took; `reportedAt` is set once the ready report was accepted."""

    order_id: str
    restaurant_id: str
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
    db = open_store(settings.data_dir / "pos.sqlite3", SCHEMA)
    tick_s = min(0.2, max(0.02, settings.scaled(settings.preparation_s) / 10))

    async def report_ready(client: httpx.AsyncClient) -> None:
        """Report every finished, unreported order; what fails is tried again on the next tick."""
        due = db.execute(
            "SELECT order_id, restaurant_id FROM preparations WHERE reported_at IS NULL AND ready_at <= ?",
            (now_ms(),),
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

    @app.post("/prepare")
    async def prepare(request: PrepareRequest) -> Preparation:
        """Start preparing (once per order); the ready report survives a restart of the POS."""
        at = now_ms()
        ready_at = at + int(settings.scaled(settings.preparation_s) * 1000)
        db.execute(
            "INSERT OR IGNORE INTO preparations VALUES (?, ?, ?, ?, NULL)",
            (request.order_id, request.restaurant_id, at, ready_at),
        )
        row = db.execute("SELECT * FROM preparations WHERE order_id = ?", (request.order_id,)).fetchone()
        return Preparation.model_validate(dict(row))

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
