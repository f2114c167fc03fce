"""Webhook receiver stub (:5070): a provider's end of the status webhooks, for tests and `make up`.

It checks each POST's signature with the provider's secret (401 otherwise), keeps every event once
by its event id in SQLite (a repeat is acknowledged and counted, not kept again), and can be told to
fail or to answer slowly (`POST /control`), so that tests can watch the retries.
"""

import asyncio
import json
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from foodorder.config import Settings
from foodorder.external.faults import inject_faults
from foodorder.external.store import open_store
from foodorder.models import Model, WebhookEvent, epoch_ms
from foodorder.signing import EVENT_ID, SIGNATURE, TIMESTAMP, BadSignature, verify

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    body TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    receipts INTEGER NOT NULL
);
"""


class Behaviour(Model):
    """How the receiver answers: `failWith` an HTTP status instead of taking events, after `delayS`."""

    fail_with: int | None = Field(None, ge=400, le=599)
    delay_s: float = Field(0, ge=0, le=60)


class Received(WebhookEvent):
    """An event as the receiver took it: the provider it was for, and how often it came."""

    provider: str
    receipts: int = Field(description="how many times it arrived (a repeat has the same event id)")


class ReceivedEvents(Model):
    """Events in the order they first arrived."""

    events: list[Received]


def create_app(settings: Settings) -> FastAPI:
    """The receiver's HTTP API."""
    db = open_store(settings.data_dir / "receiver.sqlite3", SCHEMA, version=1)
    behaviour = Behaviour()
    app = FastAPI(title="foodorder webhook receiver (stub)")
    inject_faults(app, settings)

    @app.post("/providers/{provider}/events", responses={401: {"description": "not signed by the provider"}})
    async def receive(provider: str, request: Request) -> JSONResponse:
        """Take one signed event; a repeat of an event id is acknowledged and counted."""
        await asyncio.sleep(behaviour.delay_s)
        if behaviour.fail_with is not None:
            return JSONResponse({"detail": "told to fail"}, status_code=behaviour.fail_with)
        body = await request.body()
        webhook = settings.provider_webhooks.get(provider)
        if webhook is None:
            return JSONResponse({"detail": f"no secret for provider {provider!r}"}, status_code=401)
        headers = request.headers
        try:
            verify(webhook.secret, headers.get(TIMESTAMP), headers.get(SIGNATURE), body, time.time())
        except BadSignature as error:
            return JSONResponse({"detail": str(error)}, status_code=401)
        event = WebhookEvent.model_validate_json(body)
        if headers.get(EVENT_ID) != event.event_id:
            return JSONResponse({"detail": f"{EVENT_ID} differs from the body's eventId"}, status_code=400)
        db.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, 1)"
            " ON CONFLICT (event_id) DO UPDATE SET receipts = receipts + 1",
            (event.event_id, provider, body.decode(), epoch_ms()),
        )
        return JSONResponse({"eventId": event.event_id})

    @app.post("/control")
    async def control(wanted: Behaviour) -> Behaviour:
        """Set how the receiver answers from now on (until it restarts)."""
        nonlocal behaviour
        behaviour = wanted
        return behaviour

    @app.get("/events", response_model_exclude_none=True)
    async def events(provider: str | None = None, order_id: str | None = None) -> ReceivedEvents:
        """What arrived (optionally for one provider, or one order: its provider's id), oldest first."""
        received = []
        for row in db.execute("SELECT * FROM events ORDER BY rowid"):
            fields: dict[str, Any] = json.loads(row["body"])
            if provider not in (None, row["provider"]) or order_id not in (None, fields.get("orderId")):
                continue
            received.append(
                Received.model_validate({**fields, "provider": row["provider"], "receipts": row["receipts"]})
            )
        return ReceivedEvents(events=received)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    return app
