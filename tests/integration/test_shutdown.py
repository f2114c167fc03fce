"""SIGTERM to `foodorder up` under load stops everything cleanly; a restart finishes every order."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from foodorder.config import Settings
from foodorder.models import Status
from foodorder.stack import settings_env, wait_until
from tests.integration.conftest import ARTIFACTS, Api, Client, api_order, stack_settings


def start_up(settings: Settings, name: str) -> subprocess.Popen[bytes]:
    """`foodorder up` as a user runs it, waiting until the public API is ready."""
    log = ARTIFACTS / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:  # the child keeps its own copy of the file
        up = subprocess.Popen(
            [sys.executable, "-m", "foodorder.cli", "up"],
            env={**os.environ, **settings_env(settings)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_until(lambda: httpx.get(f"{settings.gateway_url}/readyz").is_success, "foodorder up", timeout_s=90)
    return up


def listening(settings: Settings) -> list[int]:
    ports = [settings.ingress_port, settings.admin_port, settings.services_port, settings.gateway_port]
    with_listener = []
    for port in ports:
        with socket.socket() as s:
            if s.connect_ex((settings.host, port)) == 0:
                with_listener.append(port)
    return with_listener


def test_sigterm_under_load_then_a_restart_completes_every_order(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path)
    up = start_up(settings, "shutdown-1")
    try:
        api = Api(settings)
        orders = [api_order(deliveryDelay=delay) for delay in (0, 0, 0, 40_000, 40_000, 80_000)]
        for order in orders:
            assert api.request("POST", "/api/v1/orders", json=order).status_code == 202
        api.wait_until_reached(orders[0]["id"], Status.IN_PREPARATION)
        api.http.close()

        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=30) == 0
        assert listening(settings) == []
    finally:
        up.kill()
        up.wait()

    up = start_up(settings, "shutdown-2")
    try:
        with Client(settings) as client:
            api = Api(settings)
            for order in orders:
                api.wait_for(order["id"], Status.DELIVERED, timeout_s=120)
                assert client.payments(f"dev-provider:{order['id']}") == ["authorize", "capture"]
            api.http.close()
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=30)
