"""Payment provider stub (:5060): authorize, then capture, void or refund; every call idempotent by key.

Money moves only on capture (+) and refund (-): an order's ledger nets to its price when it was
delivered and to zero otherwise. The ledger can be read over HTTP.
"""

import asyncio
import uuid
from enum import StrEnum
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from foodorder import telemetry
from foodorder.config import Settings
from foodorder.external.faults import inject_faults
from foodorder.external.store import open_store
from foodorder.models import Model, epoch_ms

SCHEMA = """
CREATE TABLE IF NOT EXISTS authorizations (
    authorization_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    amount REAL NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger (
    idempotency_key TEXT PRIMARY KEY,
    authorization_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    amount REAL NOT NULL,
    outcome TEXT NOT NULL,
    at INTEGER NOT NULL
);
"""


class Operation(StrEnum):
    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"


class AuthState(StrEnum):
    """Where an authorization stands; each operation is allowed from some states only."""

    AUTHORIZED = "authorized"
    DECLINED = "declined"
    CAPTURED = "captured"
    VOIDED = "voided"
    REFUNDED = "refunded"


# operation -> (the state it needs, the state it leads to)
TRANSITIONS = {
    Operation.CAPTURE: (AuthState.AUTHORIZED, AuthState.CAPTURED),
    Operation.VOID: (AuthState.AUTHORIZED, AuthState.VOIDED),
    Operation.REFUND: (AuthState.CAPTURED, AuthState.REFUNDED),
}
# How each operation moves money for the customer's account at the merchant.
MONEY = {Operation.AUTHORIZE: 0, Operation.CAPTURE: 1, Operation.VOID: 0, Operation.REFUND: -1}


class AuthorizeRequest(Model):
    """Hold `amount` cents on the customer's card for an order."""

    order_id: str = Field(min_length=1)
    amount: float = Field(ge=0)


class LedgerEntry(Model):
    """One operation the provider carried out (or declined)."""

    idempotency_key: str
    authorization_id: str
    order_id: str
    operation: Operation
    amount: float
    outcome: str = Field(description="ok, or declined")
    at: int = Field(description="epoch milliseconds")

    @property
    def money(self) -> float:
        """Cents that moved to the merchant with this entry (negative for a refund)."""
        return MONEY[self.operation] * self.amount if self.outcome == "ok" else 0


class Ledger(Model):
    """Ledger entries, oldest first, and the money they moved."""

    entries: list[LedgerEntry]
    net: float = Field(description="captured minus refunded, in cents")


def create_app(settings: Settings) -> FastAPI:
    """The payment provider's HTTP API."""
    app = FastAPI(title="foodorder payment provider (stub)")
    telemetry.instrument(app)
    inject_faults(app, settings)
    db = open_store(settings.data_dir / "payment.sqlite3", SCHEMA, version=2)

    def recorded(key: str) -> LedgerEntry | None:
        row = db.execute("SELECT * FROM ledger WHERE idempotency_key = ?", (key,)).fetchone()
        return LedgerEntry.model_validate(dict(row)) if row else None

    def record(key: str, auth_id: str, order_id: str, op: Operation, amount: float, outcome: str) -> None:
        db.execute(
            "INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, auth_id, order_id, op, amount, outcome, epoch_ms()),
        )

    def answer(entry: LedgerEntry) -> JSONResponse:
        return JSONResponse(
            entry.model_dump(mode="json"), status_code=402 if entry.outcome == "declined" else 200
        )

    @app.post("/authorizations", responses={402: {"description": "declined"}})
    async def authorize(
        request: AuthorizeRequest, idempotency_key: Annotated[str, Header(min_length=1)]
    ) -> JSONResponse:
        """Hold the amount; amounts above the configured limit are declined. Once per key."""
        await asyncio.sleep(settings.payment_latency_s)
        if (entry := recorded(idempotency_key)) is None:
            declined = request.amount > settings.payment_decline_above
            auth_id = f"auth_{uuid.uuid4().hex}"
            state = AuthState.DECLINED if declined else AuthState.AUTHORIZED
            with db:
                db.execute(
                    "INSERT INTO authorizations VALUES (?, ?, ?, ?)",
                    (auth_id, request.order_id, request.amount, state),
                )
                record(
                    idempotency_key, auth_id, request.order_id, Operation.AUTHORIZE, request.amount,
                    "declined" if declined else "ok",
                )  # fmt: skip
            entry = recorded(idempotency_key)
            assert entry is not None
        return answer(entry)

    def operate(op: Operation, auth_id: str, key: str) -> JSONResponse:
        if (entry := recorded(key)) is not None:
            return answer(entry)
        row = db.execute("SELECT * FROM authorizations WHERE authorization_id = ?", (auth_id,)).fetchone()
        if row is None:
            raise HTTPException(404, f"no authorization {auth_id!r}")
        needed, leads_to = TRANSITIONS[op]
        if row["state"] != needed:
            raise HTTPException(409, f"cannot {op} authorization {auth_id!r}: it is {row['state']}")
        with db:
            db.execute("UPDATE authorizations SET state = ? WHERE authorization_id = ?", (leads_to, auth_id))
            record(key, auth_id, row["order_id"], op, row["amount"], "ok")
        entry = recorded(key)
        assert entry is not None
        return answer(entry)

    wrong_state: dict[int | str, dict[str, Any]] = {
        404: {"description": "no such authorization"},
        409: {"description": "not allowed now"},
    }

    @app.post("/authorizations/{authorization_id}/capture", responses=wrong_state)
    async def capture(
        authorization_id: str, idempotency_key: Annotated[str, Header(min_length=1)]
    ) -> JSONResponse:
        """Take the held amount."""
        return operate(Operation.CAPTURE, authorization_id, idempotency_key)

    @app.post("/authorizations/{authorization_id}/void", responses=wrong_state)
    async def void(
        authorization_id: str, idempotency_key: Annotated[str, Header(min_length=1)]
    ) -> JSONResponse:
        """Release the hold without taking anything."""
        return operate(Operation.VOID, authorization_id, idempotency_key)

    @app.post("/authorizations/{authorization_id}/refund", responses=wrong_state)
    async def refund(
        authorization_id: str, idempotency_key: Annotated[str, Header(min_length=1)]
    ) -> JSONResponse:
        """Give back a captured amount."""
        return operate(Operation.REFUND, authorization_id, idempotency_key)

    @app.get("/ledger")
    async def ledger(order_id: Annotated[str | None, Query(alias="orderId")] = None) -> Ledger:
        """Every entry, or those of one order (?orderId=), with the net amount taken."""
        rows = (
            db.execute("SELECT * FROM ledger WHERE order_id = ? ORDER BY at, rowid", (order_id,))
            if order_id
            else db.execute("SELECT * FROM ledger ORDER BY at, rowid")
        )
        entries = [LedgerEntry.model_validate(dict(row)) for row in rows]
        return Ledger(entries=entries, net=sum(e.money for e in entries))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    return app
