"""A real foodorder stack (restate-server from node_modules, services, POS, payment) on free ports."""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from foodorder import introspection
from foodorder.config import (
    DEV_DRIVER_KEY,
    DEV_PROVIDER_KEY,
    DEV_RESTAURANT_KEY,
    DEV_STOREFRONT_KEY,
    STOREFRONT,
    Settings,
)
from foodorder.models import Status
from foodorder.stack import Stack, on_free_ports, settings_env, wait_until

ARTIFACTS = Path("test-artifacts")
OTHER_PROVIDER_KEY = "other-provider-key"
MCSTATE_KEY = "mcstate-only-key"
DRIVER_9_KEY = "driver-9-only-key"
DRIVERS = 4  # spread over the catalog's regions in turn: two in San Jose, one in each other


class Client:
    """What a provider, a customer screen and an auditor do against the stack, over HTTP."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.http = httpx.Client(timeout=30)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()

    def call(self, target: str, body: object = None) -> httpx.Response:
        """A request-response call on the Restate ingress ("service/key/handler")."""
        return self.http.post(f"{self.settings.ingress_url}/{target}", json=body)

    def submit(self, order: dict[str, Any]) -> None:
        """Submit an order the way the seed's web UI does (a one-way send of order-workflow/run)."""
        response = self.http.post(
            f"{self.settings.ingress_url}/order-workflow/{order['id']}/run/send", json=order
        )
        assert response.status_code == 202, response.text

    def status(self, order_id: str) -> dict[str, Any]:
        response = self.call(f"order-status/{order_id}/get")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def history(self, order_id: str) -> list[dict[str, Any]]:
        response = self.call(f"order-workflow/{order_id}/getHistory")
        assert response.status_code == 200, response.text
        entries: list[dict[str, Any]] = response.json()
        return entries

    def wait_for(self, order_id: str, wanted: Status, timeout_s: float = 90) -> list[dict[str, Any]]:
        """Poll order-status until `wanted`; returns every answer seen, or fails naming the last one."""
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seen.append(self.status(order_id))
            if seen[-1]["status"] == wanted:
                return seen
            if seen[-1]["status"] in {s.value for s in Status if s.terminal}:
                break
            time.sleep(0.05)
        pytest.fail(f"order {order_id} did not reach {wanted}; last answer {seen[-1] if seen else None}")

    def ledger(self, order_id: str) -> dict[str, Any]:
        """The payment provider's entries for the order, and the net amount it took."""
        response = self.http.get(f"{self.settings.payment_url}/ledger", params={"orderId": order_id})
        assert response.status_code == 200, response.text
        ledger: dict[str, Any] = response.json()
        return ledger

    def payments(self, order_id: str) -> list[str]:
        """The order's payment operations, e.g. ["authorize", "capture"] or ["authorize declined"]."""
        return [
            e["operation"] if e["outcome"] == "ok" else f"{e['operation']} {e['outcome']}"
            for e in self.ledger(order_id)["entries"]
        ]

    def net_paid(self, order_id: str) -> float:
        net: float = self.ledger(order_id)["net"]
        return net

    def state(self, service: str, key: str, name: str) -> Any:
        """A value of a service's state, as Restate's SQL introspection shows it (None if unset)."""
        query = (
            f"SELECT value_utf8 FROM state WHERE service_name = '{service}'"
            f" AND service_key = '{key}' AND key = '{name}'"
        )
        rows = introspection.query_blocking(self.settings.admin_url, query)
        return json.loads(rows[0]["value_utf8"]) if rows else None

    def eventually(self, read: Callable[[], Any], wanted: Any, timeout_s: float = 10) -> None:
        """Wait until `read()` returns `wanted` (state written by one-way sends lands a moment later)."""
        deadline = time.monotonic() + timeout_s
        while (seen := read()) != wanted:
            assert time.monotonic() < deadline, f"still {seen!r}, not {wanted!r}"
            time.sleep(0.05)

    def preparations(self, order_id: str) -> list[dict[str, Any]]:
        response = self.http.get(f"{self.settings.pos_url}/preparations")
        assert response.status_code == 200, response.text
        return [p for p in response.json()["preparations"] if p["orderId"] == order_id]


def stack_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Free ports, a private data directory, and a time scale that delivers an order in seconds.

    `overrides` are set before the ports are picked: a cluster's nodes need runs of free ports.
    """
    settings = Settings(
        data_dir=data_dir,
        time_scale=20,
        driver_speed_mps=60,
        location_report_interval_s=1,  # every step, so that tests see the driver move
        drivers=DRIVERS,
        driver_decline_share=0,  # the offers tests decline on purpose
        offer_timeout_s=600,  # 30 s of wall time: an offer waits for a test on a loaded machine
        provider_keys={
            DEV_PROVIDER_KEY: "dev-provider",
            OTHER_PROVIDER_KEY: "other-provider",
            DEV_STOREFRONT_KEY: STOREFRONT,
        },
        restaurant_keys={DEV_RESTAURANT_KEY: ["*"], MCSTATE_KEY: ["mcstate"]},
        driver_keys={DEV_DRIVER_KEY: ["*"], DRIVER_9_KEY: ["driver-9"]},
        # Tests poll and submit from one address and key far faster than a client should.
        api_rate_limit="10000/second",
        storefront_rate_limit="10000/second",
        stream_batch_s=0.1,  # the tests' time runs 20 times faster: so do the drivers' reports
    )
    return on_free_ports(settings.model_copy(update=overrides))


@contextmanager
def running_stack(settings: Settings, name: str) -> Iterator[Stack]:
    """A started stack with its drivers, stopped at the end; logs go to test-artifacts/logs/<name>."""
    stack = Stack(settings, log_dir=ARTIFACTS / "logs" / name)
    try:
        stack.start_all()
        stack.start_drivers(settings.drivers)
        yield stack
    finally:
        stack.stop()


def start_up(settings: Settings, name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`foodorder up` as a user runs it (with `env` added), waiting until the public API is ready."""
    log = ARTIFACTS / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:  # the child keeps its own copy of the file
        up = subprocess.Popen(
            [sys.executable, "-m", "foodorder.cli", "up"],
            env={**os.environ, **settings_env(settings), **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_until(lambda: httpx.get(f"{settings.gateway_url}/readyz").is_success, "foodorder up", timeout_s=90)
    return up


def listening(host: str, ports: Iterable[int]) -> list[int]:
    """Those of `ports` that something listens on."""
    with_listener = []
    for port in ports:
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                with_listener.append(port)
    return with_listener


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(stack_settings(tmp_path_factory.mktemp("foodorder")), "session") as stack:
        yield stack


@pytest.fixture(scope="session")
def client(stack: Stack) -> Iterator[Client]:
    with Client(stack.settings) as client:
        yield client


_counter = iter(range(1, 1_000_000))


def new_order(**overrides: Any) -> dict[str, Any]:
    """A seed-shaped order with a fresh id."""
    order: dict[str, Any] = {
        "id": f"order-{time.time_ns()}-{next(_counter)}",
        "restaurantId": "bites_n_bytes",
        "products": [{"productId": "1000", "description": "Pepperoni pizza", "quantity": 2}],
        "totalCost": 2180,  # the menu's price of two pepperoni pizzas, in cents
        "deliveryDelay": 0,
    }
    order.update(overrides)
    return order


class Api:
    """The public API as a provider, restaurant or driver uses it."""

    def __init__(self, settings: Settings) -> None:
        self.http = httpx.Client(base_url=settings.gateway_url, timeout=30)

    def request(
        self, method: str, path: str, key: str | None = DEV_PROVIDER_KEY, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return self.http.request(method, path, headers=headers | kwargs.pop("headers", {}), **kwargs)

    def wait_for(self, order_ref: str, wanted: Status, timeout_s: float = 90) -> dict[str, Any]:
        """Poll GET /api/v1/orders/{ref} until `wanted`; the last view."""
        deadline = time.monotonic() + timeout_s
        view: dict[str, Any] = {}
        while time.monotonic() < deadline:
            response = self.request("GET", f"/api/v1/orders/{order_ref}")
            assert response.status_code == 200, response.text
            view = response.json()
            if view["status"] == wanted:
                return view
            time.sleep(0.05)
        pytest.fail(f"order {order_ref} did not reach {wanted}; last view {view}")

    def wait_until_reached(self, order_ref: str, wanted: Status, timeout_s: float = 90) -> None:
        """Poll until the order's history holds `wanted` (it may have moved on since)."""
        deadline = time.monotonic() + timeout_s
        statuses: list[str] = []
        while wanted not in statuses:
            assert time.monotonic() < deadline, f"order {order_ref} never reached {wanted}: {statuses}"
            response = self.request("GET", f"/api/v1/orders/{order_ref}")
            assert response.status_code == 200, response.text
            statuses = [h["status"] for h in response.json()["history"]]
            time.sleep(0.05)

    def events(
        self, order_ref: str, last_event_id: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Read the SSE stream until it ends (or `limit` events): each event as {id, event, data}."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
        events: list[dict[str, Any]] = []
        with self.http.stream(
            "GET",
            f"/api/v1/orders/{order_ref}/events",
            headers={"Authorization": f"Bearer {DEV_PROVIDER_KEY}", **headers},
            timeout=120,
        ) as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            event: dict[str, Any] = {}
            for line in response.iter_lines():
                if line.startswith(("id:", "event:", "data:")):
                    name, _, value = line.partition(":")
                    event[name] = json.loads(value) if name == "data" else value.strip()
                elif not line and "data" in event:
                    events.append(event)
                    event = {}
                    if limit is not None and len(events) >= limit:
                        break
        return events


@contextmanager
def api_of(settings: Settings) -> Iterator[Api]:
    """The public API of the stack on `settings`, its connections closed at the end."""
    api = Api(settings)
    try:
        yield api
    finally:
        api.http.close()


@pytest.fixture(scope="session")
def api(stack: Stack) -> Iterator[Api]:
    with api_of(stack.settings) as api:
        yield api


def api_order(**overrides: Any) -> dict[str, Any]:
    """An order as a provider sends it to the public API, with a fresh reference."""
    order: dict[str, Any] = {
        "id": f"ref-{time.time_ns()}-{next(_counter)}",
        "restaurantId": "bites_n_bytes",
        "products": [{"productId": "1000", "quantity": 2}, {"productId": "1003", "quantity": 1}],
    }
    order.update(overrides)
    return order
