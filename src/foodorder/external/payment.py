"""Payment provider stub (:5060): idempotent charges and a ledger that can be read over HTTP."""

import time
from typing import Annotated

from fastapi import FastAPI, Header, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from foodorder.config import Settings
from foodorder.external.store import open_store
from foodorder.models import Model

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    idempotency_key TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    amount REAL NOT NULL,
    outcome TEXT NOT NULL,
    at INTEGER NOT NULL
);
"""


class ChargeRequest(Model):
    """A charge of `amount` cents for an order."""

    order_id: str = Field(min_length=1)
    amount: float = Field(ge=0)


class LedgerEntry(Model):
    """One charge attempt the provider accepted or declined."""

    idempotency_key: str
    order_id: str
    amount: float
    outcome: str = Field(description="charged or declined")
    at: int = Field(description="epoch milliseconds")


class Ledger(Model):
    """Ledger entries, oldest first."""

    entries: list[LedgerEntry]


def create_app(settings: Settings) -> FastAPI:
    """The payment provider's HTTP API."""
    app = FastAPI(title="foodorder payment provider (stub)")
    db = open_store(settings.data_dir / "payment.sqlite3", SCHEMA)

    def entry(key: str) -> LedgerEntry:
        row = db.execute("SELECT * FROM ledger WHERE idempotency_key = ?", (key,)).fetchone()
        return LedgerEntry.model_validate(dict(row))

    @app.post("/charges", responses={402: {"description": "declined"}})
    async def charge(
        request: ChargeRequest, idempotency_key: Annotated[str, Header(min_length=1)]
    ) -> JSONResponse:
        """Charge once per idempotency key; a repeated key answers with the first outcome."""
        declined = request.amount > settings.payment_decline_above
        db.execute(
            "INSERT OR IGNORE INTO ledger VALUES (?, ?, ?, ?, ?)",
            (
                idempotency_key,
                request.order_id,
                request.amount,
                "declined" if declined else "charged",
                int(time.time() * 1000),
            ),
        )
        recorded = entry(idempotency_key)
        code = 402 if recorded.outcome == "declined" else 200
        return JSONResponse(recorded.model_dump(mode="json"), status_code=code)

    @app.get("/ledger")
    async def ledger(order_id: Annotated[str | None, Query(alias="orderId")] = None) -> Ledger:
        """Every entry, or those of one order (?orderId=)."""
        rows = (
            db.execute("SELECT * FROM ledger WHERE order_id = ? ORDER BY at", (order_id,))
            if order_id
            else db.execute("SELECT * FROM ledger ORDER BY at")
        )
        return Ledger(entries=[LedgerEntry.model_validate(dict(row)) for row in rows])

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    return app
