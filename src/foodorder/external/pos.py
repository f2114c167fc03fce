"""Restaurant point-of-sale stub (:5050): prepares orders and reports them ready to the order workflow."""

import time
from datetime import timedelta
from urllib.parse import quote

import httpx
from fastapi import FastAPI
from pydantic import Field

from foodorder.clients import ingress
from foodorder.config import Settings
from foodorder.external.store import open_store
from foodorder.models import Model

SCHEMA = """
CREATE TABLE IF NOT EXISTS preparations (
    order_id TEXT PRIMARY KEY,
    restaurant_id TEXT,
    at INTEGER NOT NULL
);
"""


class PrepareRequest(Model):
    """The seed's request to prepare an order."""

    order_id: str = Field(min_length=1)
    restaurant_id: str | None = None


class Preparation(Model):
    """An order the kitchen took."""

    order_id: str
    restaurant_id: str | None
    at: int = Field(description="epoch milliseconds")


class Preparations(Model):
    """Orders the kitchen took, oldest first."""

    preparations: list[Preparation]


def create_app(settings: Settings) -> FastAPI:
    """The POS's HTTP API."""
    app = FastAPI(title="foodorder restaurant POS (stub)")
    db = open_store(settings.data_dir / "pos.sqlite3", SCHEMA)
    client = httpx.AsyncClient(timeout=settings.http_timeout_s)

    @app.post("/prepare")
    async def prepare(request: PrepareRequest) -> Preparation:
        """Start preparing; the ready report is a delayed, deduplicated send, so a restart cannot lose it."""
        # Scheduled on Restate before the preparation is recorded: a crash in between leads to a
        # retried /prepare whose send Restate deduplicates by the same key.
        await ingress.send(
            client,
            settings.ingress_url,
            f"order-workflow/{quote(request.order_id, safe='')}/finishedPreparation",
            None,
            idempotency_key=f"pos-ready-{request.order_id}",
            delay=timedelta(seconds=settings.scaled(settings.preparation_s)),
        )
        db.execute(
            "INSERT OR IGNORE INTO preparations VALUES (?, ?, ?)",
            (request.order_id, request.restaurant_id, int(time.time() * 1000)),
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
