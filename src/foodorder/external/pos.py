"""Restaurant point-of-sale stub (:5050): prepares orders and reports them ready through the public API.

It can refuse orders (a configured rate, or any order with a configured product), hold orders for a
person to accept or deny through the public API (any order with a configured product), and stop
preparing an order on request. Every answer is kept, so asking again gives the same answer; every
cancel is recorded once per idempotency key.
"""

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse
from pydantic import Field

from foodorder import telemetry
from foodorder.config import Settings
from foodorder.external.faults import inject_faults
from foodorder.external.store import open_store
from foodorder.models import Model, Refusal, RejectionReason, epoch_ms

SCHEMA = """
CREATE TABLE IF NOT EXISTS preparations (
    order_id TEXT PRIMARY KEY,
    restaurant_id TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    reason_code TEXT,
    items TEXT,
    at INTEGER NOT NULL,
    ready_at INTEGER NOT NULL,
    reported_at INTEGER
);
CREATE TABLE IF NOT EXISTS cancellations (
    idempotency_key TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    at INTEGER NOT NULL
);
"""
PREPARING, HELD, REFUSED, CANCELLED = "preparing", "held", "refused", "cancelled"
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
    state: str = Field(description="preparing, held (for a person to accept), refused or cancelled")
    reason: str | None
    reason_code: RejectionReason | None
    items: str | None = Field(description="the refused product ids, comma-separated")
    at: int = Field(description="epoch milliseconds")
    ready_at: int
    reported_at: int | None


class Preparations(Model):
    """Orders the kitchen took, oldest first."""

    preparations: list[Preparation]


class Cancellation(Model):
    """A cancel the POS carried out (once per idempotency key)."""

    idempotency_key: str
    order_id: str
    at: int = Field(description="epoch milliseconds")


class Cancellations(Model):
    """Every cancel the POS carried out, oldest first."""

    cancellations: list[Cancellation]


def create_app(settings: Settings) -> FastAPI:
    """The POS's HTTP API and the loop that reports finished orders."""
    db = open_store(settings.data_dir / "pos.sqlite3", SCHEMA, version=3)
    tick_s = min(0.2, max(0.02, settings.scaled(settings.preparation_s) / 10))

    async def report_ready(client: httpx.AsyncClient) -> None:
        """Report every finished, unreported order; what fails is tried again on the next tick."""
        due = db.execute(
            "SELECT order_id, restaurant_id FROM preparations"
            " WHERE state = ? AND reported_at IS NULL AND ready_at <= ?",
            (PREPARING, epoch_ms()),
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
            db.execute("UPDATE preparations SET reported_at = ? WHERE order_id = ?", (epoch_ms(), order_id))

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

    def refusal(request: PrepareRequest) -> Refusal | None:
        """Why the kitchen will not make this order, if it will not."""
        if unavailable := sorted(set(request.product_ids) & set(settings.pos_refused_products)):
            return Refusal(
                reason_code=RejectionReason.ITEM_AVAILABILITY,
                reason=f"the kitchen cannot make product {', '.join(unavailable)} today",
                items=unavailable,
            )
        if random.random() < settings.pos_refusal_rate:
            return Refusal(
                reason_code=RejectionReason.RESTAURANT_BUSY,
                reason="the kitchen is too busy to take the order",
            )
        return None

    def first_state(request: PrepareRequest, refused: Refusal | None) -> str:
        if refused is not None:
            return REFUSED
        return HELD if set(request.product_ids) & set(settings.pos_held_products) else PREPARING

    @app.post(
        "/prepare",
        responses={
            202: {"description": "held: a person accepts or denies the order through the public API"},
            409: {"description": "the kitchen refuses the order: {detail, reasonCode, items}"},
        },
    )
    async def prepare(request: PrepareRequest) -> JSONResponse:
        """Start preparing, hold or refuse (once per order); the ready report survives a restart."""
        for product, status_code in settings.pos_failing_products.items():
            if product in request.product_ids:
                return JSONResponse({"detail": f"failing orders with product {product}"}, status_code)
        if preparation(request.order_id) is None:
            at = epoch_ms()
            refused = refusal(request)
            db.execute(
                "INSERT OR IGNORE INTO preparations VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    request.order_id,
                    request.restaurant_id,
                    first_state(request, refused),
                    refused.reason if refused else None,
                    refused.reason_code if refused else None,
                    ",".join(refused.items) if refused else None,
                    at,
                    at + int(settings.scaled(settings.preparation_s) * 1000),
                ),
            )
            log.info("order %s %s", request.order_id, f"refused: {refused.reason}" if refused else "taken")
        taken = preparation(request.order_id)
        assert taken is not None
        if taken.state == REFUSED:
            items = taken.items.split(",") if taken.items else []
            body = {"detail": taken.reason, "reasonCode": taken.reason_code, "items": items}
            return JSONResponse(body, status_code=409)
        return JSONResponse(taken.model_dump(mode="json"), status_code=202 if taken.state == HELD else 200)

    @app.post("/cancel")
    async def cancel(
        request: CancelRequest, idempotency_key: str = Header(alias="Idempotency-Key", min_length=1)
    ) -> Preparation | None:
        """Stop preparing (or holding) the order: it is not reported ready. Once per idempotency key;
        unknown or refused orders stay as they are."""
        # Stopping is idempotent by itself; the record after it, so that a crash between the two
        # statements still records the cancel when it is retried.
        db.execute(
            "UPDATE preparations SET state = ?, reason = 'cancelled' WHERE order_id = ? AND state IN (?, ?)",
            (CANCELLED, request.order_id, PREPARING, HELD),
        )
        db.execute(
            "INSERT OR IGNORE INTO cancellations VALUES (?, ?, ?)",
            (idempotency_key, request.order_id, epoch_ms()),
        )
        return preparation(request.order_id)

    @app.get("/cancellations")
    async def cancellations() -> Cancellations:
        """Every cancel the kitchen carried out."""
        rows = db.execute("SELECT * FROM cancellations ORDER BY at")
        return Cancellations(cancellations=[Cancellation.model_validate(dict(row)) for row in rows])

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
