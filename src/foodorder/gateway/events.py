"""An order's events (status, ETA, driver position) as Server-Sent Events, read from order-status."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi.sse import ServerSentEvent

from foodorder.gateway.restate import Ingress
from foodorder.models import OrderEvent

EVENT_POLL_S = 0.25


async def order_event_stream(ingress: Ingress, order_key: str, after: int) -> AsyncIterator[ServerSentEvent]:
    """Every event of the order after number `after`, as it happens; ends after a final status."""
    while True:
        batch: list[Any] = await ingress.call("order-status", order_key, "getEvents", after)
        for raw in batch:
            event = OrderEvent.model_validate(raw)
            after = event.seq
            yield ServerSentEvent(id=str(event.seq), event=event.type, data=event.model_dump(mode="json"))
            if event.status is not None and event.status.terminal:
                return
        await asyncio.sleep(EVENT_POLL_S)
