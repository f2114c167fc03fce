"""Stopping `foodorder up` leaves nothing behind: SIGTERM stops every process in time, a killed
supervisor takes its processes with it, and a restart finishes every order."""

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from foodorder.config import Settings
from foodorder.models import Status
from foodorder.stack import free_port, wait_until
from tests.integration.conftest import Api, Client, api_order, listening, stack_settings, start_up

# restate-server stops first, then the others side by side; a server whose requests never end
# exits 5 s after SIGTERM (hypercorn's graceful timeout and a margin).
STOP_BOUND_S = 20.0


def every_port(settings: Settings) -> list[int]:
    s = settings
    return [
        s.ingress_port,
        s.admin_port,
        s.node_port,
        s.services_port,
        s.pos_port,
        s.payment_port,
        s.gateway_port,
    ]


def running(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those of `processes` that still run (an exited one nobody reaped yet counts as gone)."""
    alive = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
    return alive


def shutdown_settings(tmp_path: Path) -> Settings:
    """The tests' stack with 5 s preparations: the stop comes while the first orders are prepared.

    Stopped later, with a driver assigned, the restart would outlast the driver-silence timeout
    (6 s at this time scale), and the order would lose its driver.
    """
    return stack_settings(tmp_path).model_copy(update={"preparation_s": 100})


def submit_orders_in_flight(settings: Settings) -> list[dict[str, object]]:
    """Orders being prepared now and orders scheduled for later; returns once the first is in preparation."""
    api = Api(settings)
    try:
        orders = [api_order(deliveryDelay=delay) for delay in (0, 0, 0, 40_000, 40_000, 80_000)]
        for order in orders:
            assert api.request("POST", "/api/v1/orders", json=order).status_code == 202
        api.wait_until_reached(str(orders[0]["id"]), Status.IN_PREPARATION)
        return orders
    finally:
        api.http.close()


def test_sigterm_under_load_then_a_restart_completes_every_order(tmp_path: Path) -> None:
    settings = shutdown_settings(tmp_path)
    up = start_up(settings, "shutdown-1")
    try:
        orders = submit_orders_in_flight(settings)
        processes = psutil.Process(up.pid).children(recursive=True)

        started = time.monotonic()
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=60) == 0
        assert time.monotonic() - started < STOP_BOUND_S
        assert running(processes) == []
        assert listening(settings.host, every_port(settings)) == []
    finally:
        up.kill()
        up.wait()

    up = start_up(settings, "shutdown-2")
    api = Api(settings)
    try:
        with Client(settings) as client:
            for order in orders:
                api.wait_for(str(order["id"]), Status.DELIVERED, timeout_s=120)
                assert client.payments(f"dev-provider:{order['id']}") == ["authorize", "capture"]
    finally:
        api.http.close()
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=30)


def test_a_killed_supervisor_takes_every_process_with_it(tmp_path: Path) -> None:
    settings = shutdown_settings(tmp_path)
    up = start_up(settings, "shutdown-killed")
    processes = psutil.Process(up.pid).children(recursive=True)
    try:
        submit_orders_in_flight(settings)

        up.kill()
        up.wait()

        deadline = time.monotonic() + STOP_BOUND_S
        while running(processes) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [(p.pid, p.cmdline()) for p in running(processes)] == []
        assert listening(settings.host, every_port(settings)) == []
    finally:
        for process in running(processes):
            process.kill()


# An ASGI app whose response never ends and that swallows the cancellation meant to end it, as
# the Restate SDK does with an invocation still open when the server shuts down.
ENDLESS_APP = """
import asyncio, sys
from foodorder.serve import serve

async def app(scope, receive, send):
    if scope["type"] != "http":
        raise NotImplementedError(scope["type"])
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"started", "more_body": True})
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass

serve(app, "127.0.0.1", int(sys.argv[1]))
"""


def test_a_server_stops_in_time_even_if_a_response_never_ends() -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", ENDLESS_APP, str(port)])
    try:
        wait_until(lambda: listening("127.0.0.1", [port]) == [port], "the endless app")
        with httpx.stream("GET", f"http://127.0.0.1:{port}/", timeout=30) as response:
            assert next(response.iter_raw()) == b"started"
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=STOP_BOUND_S)
    finally:
        server.kill()
        server.wait()
