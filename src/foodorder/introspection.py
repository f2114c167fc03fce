"""Restate's SQL introspection (admin API, POST /query): the engine's state and invocations as rows."""

import json
from collections.abc import Iterable
from typing import Any

import httpx

from foodorder.clients.restate import RestateApi
from foodorder.models import Status

Rows = list[dict[str, Any]]
# Each order's history of statuses, as its workflow keeps it (order-status, for an order that a
# release before the workflow kept them started).
HISTORY_ROWS = "service_name IN ('order-workflow', 'order-status') AND key = 'history'"
ORDER_HISTORIES = f"SELECT service_key, value_utf8 FROM state WHERE {HISTORY_ROWS}"


def _request(sql: str) -> dict[str, Any]:
    return {"json": {"query": sql}, "headers": {"accept": "application/json"}}


def _rows(response: httpx.Response) -> Rows:
    response.raise_for_status()
    rows: Rows = response.json()["rows"]
    return rows


async def query(admin: RestateApi, sql: str) -> Rows:
    """The rows `sql` selects, through `admin` (the admin API of every node). A query is a read, so a
    node whose query engine fails it (5xx: say, for a moment after another node died) hands it to
    the next node, each node once."""
    for _ in admin.urls:
        node = admin.current
        response = await admin.request("POST", "/query", **_request(sql))
        if not response.is_server_error:
            break
        admin.move_on(node)
    return _rows(response)


def query_blocking(admin_url: str, sql: str, timeout_s: float = 30) -> Rows:
    """The rows `sql` selects, for code that does not run in an event loop."""
    return _rows(httpx.post(f"{admin_url}/query", timeout=timeout_s, **_request(sql)))


def literals(values: Iterable[str]) -> str:
    """SQL string literals, comma-separated."""
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


def keyed(keys: Iterable[str]) -> str:
    """A filter of the `state` table on these keys that Restate answers by reading just those keys (it
    derives their partition keys from `service_key` when the row is not scoped), not by a scan."""
    return f"scope IS NULL AND service_key IN ({literals(keys)})"


def latest_statuses(rows: Rows) -> dict[str, Status]:
    """Each order's latest status, by its key, from rows of ORDER_HISTORIES."""
    histories = (json.loads(row["value_utf8"]) for row in rows)
    return {
        row["service_key"]: Status(history[-1]["status"])
        for row, history in zip(rows, histories, strict=True)
        if history
    }
