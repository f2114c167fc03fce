"""Upgrades with orders in flight: each order finishes on the code it started on, and an old release
is retired once nothing needs it.

The old releases are real ones, from git, upgraded one after the other, so that orders of both are
in flight on this code: the last whose workflows recorded their statuses in order-status, and the
last whose order-status was told of every order's first ETA and driver. Their orders keep doing so
after the upgrade, and the new code shows them, driver included.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from foodorder import introspection, releases
from foodorder.config import Settings
from foodorder.models import Status
from foodorder.stack import settings_env
from tests.integration.conftest import (
    ARTIFACTS,
    Api,
    Client,
    api_order,
    listening,
    stack_settings,
    start_up,
)
from tests.integration.test_order_flow import DELIVERED_SEQUENCE

PREVIOUS_RELEASES = [
    # The last release whose workflow recorded its statuses in order-status (`recordStatus`).
    "1aa3c3d188b3cb5ac30f40b0fbe6c84425620fb5",
    # The last whose workflow sent order-status its first ETA (`setETA`), and whose driver's twin
    # told order-status of the driver at the assignment.
    "e8324b44541411ed822eeca02e74c01fc3c315fe",
]
REPOSITORY = Path(__file__).parents[2]


def previous_release(tmp_path: Path, commit: str) -> Path:
    """The foodorder package of release `commit`, taken from git; its parent."""
    src = tmp_path / commit
    src.mkdir()
    archive = subprocess.run(
        ["git", "archive", commit, "src/foodorder"], cwd=REPOSITORY, capture_output=True, check=False
    )
    assert archive.returncode == 0, f"git cannot give release {commit}: {archive.stderr.decode()}"
    subprocess.run(["tar", "-x", "--strip-components=1", "-C", str(src)], input=archive.stdout, check=True)
    return src


def ours(settings: Settings) -> dict[str, releases.Deployment]:
    """The registered releases, by version."""
    return {d.release: d for d in releases.Admin(settings.admin_url).deployments() if d.release}


def pinned_deployments(settings: Settings, orders: list[dict[str, object]]) -> set[str]:
    """The deployments the orders' workflows ran on."""
    keys = ", ".join(f"'dev-provider:{order['id']}'" for order in orders)
    rows = introspection.query_blocking(
        settings.admin_url,
        "SELECT pinned_deployment_id FROM sys_invocation WHERE target_service_name = 'order-workflow'"
        f" AND target_handler_name = 'run' AND target_service_key IN ({keys})",
    )
    return {row["pinned_deployment_id"] for row in rows}


def journal_mismatches(settings: Settings) -> list[str]:
    """Invocations and log lines that report a journal mismatch (Restate error 570)."""
    rows = introspection.query_blocking(
        settings.admin_url,
        "SELECT target, last_failure FROM sys_invocation"
        " WHERE last_failure_error_code = '570' OR last_failure LIKE '%mismatch%'",
    )
    lines = [
        line
        for log in (settings.data_dir / "logs").glob("*.log")
        for line in log.read_text(errors="replace").splitlines()
        if "mismatch" in line.lower()
    ]
    return [f"{row['target']}: {row['last_failure']}" for row in rows] + lines


def releases_listed(settings: Settings) -> str:
    """What `foodorder releases` prints."""
    command = [sys.executable, "-m", "foodorder.cli", "releases"]
    env = {**os.environ, **settings_env(settings)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def test_orders_in_flight_finish_on_their_release_and_the_old_ones_retire(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path / "data")
    olds = [previous_release(tmp_path, commit) for commit in PREVIOUS_RELEASES]
    old_versions = [releases.code_version(old / "foodorder") for old in olds]
    new_version = releases.code_version()
    api, client = Api(settings), Client(settings)
    # Each release's orders wait through the upgrades after it (75 s, then 45 s of wall time at the
    # tests' time scale), even on a loaded machine.
    old_orders = [[api_order(deliveryDelay=delay) for _ in range(3)] for delay in (1_500_000, 900_000)]

    for n, (old, orders) in enumerate(zip(olds, old_orders, strict=True), start=1):
        up = start_up(settings, f"releases-{n}", {"PYTHONPATH": str(old)})
        try:
            for order in orders:
                assert api.request("POST", "/api/v1/orders", json=order).status_code == 202
            for order in orders:
                api.wait_for(str(order["id"]), Status.SCHEDULED)
        finally:
            up.send_signal(signal.SIGTERM)
            assert up.wait(timeout=60) == 0

    up = start_up(settings, "releases-3")
    try:
        deployments = ours(settings)
        assert set(deployments) == {*old_versions, new_version}
        assert deployments[new_version].address == (settings.host, settings.services_port)
        old_ports = [deployments[version].address[1] for version in old_versions]
        old_processes = [
            next(p for p in psutil.Process(up.pid).children() if port in _ports_of(p)) for port in old_ports
        ]
        listed = releases_listed(settings)
        assert re.search(rf"{new_version} .* current", listed), listed
        for version in old_versions:
            assert re.search(rf"{version} .* draining", listed), listed

        new_orders = [api_order() for _ in range(2)]
        watchers = [Api(settings) for _ in old_orders]
        with ThreadPoolExecutor() as pool:
            # A customer of each old release follows an order live across the upgrade.
            streams = [
                pool.submit(watcher.events, str(orders[0]["id"]))
                for watcher, orders in zip(watchers, old_orders, strict=True)
            ]
            for order in new_orders:
                assert api.request("POST", "/api/v1/orders", json=order).status_code == 202
            for order in [*old_orders[0], *old_orders[1], *new_orders]:
                api.wait_for(str(order["id"]), Status.DELIVERED, timeout_s=120)
            for stream in streams:
                events = stream.result(timeout=120)
                assert [e["data"]["status"] for e in events if e["event"] == "status"] == DELIVERED_SEQUENCE
        for watcher in watchers:
            watcher.http.close()
        for order in [*old_orders[0], *old_orders[1]]:  # order-status was told of the old orders' drivers
            tracking = client.state("order-status", f"dev-provider:{order['id']}", "tracking")
            assert tracking is not None and tracking["driver"] is not None, order["id"]

        for version, orders in zip(old_versions, old_orders, strict=True):
            assert pinned_deployments(settings, orders) == {deployments[version].id}
        assert pinned_deployments(settings, new_orders) == {deployments[new_version].id}
        assert journal_mismatches(settings) == []

        def retired() -> bool:
            return (
                set(ours(settings)) == {new_version}
                and not any(process.is_running() for process in old_processes)
                and listening(settings.host, old_ports) == []
                and not any(releases.code_path(settings.data_dir, v).exists() for v in old_versions)
            )

        deadline = time.monotonic() + 3 * releases.DRAIN_CHECK_INTERVAL_S + 30
        while not retired() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert set(ours(settings)) == {new_version}
        assert not any(process.is_running() for process in old_processes)
        assert listening(settings.host, old_ports) == []
        assert not any(releases.code_path(settings.data_dir, version).exists() for version in old_versions)
        assert releases.code_path(settings.data_dir, new_version).exists()
    finally:
        api.http.close()
        client.http.close()
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)
        shutil.copytree(settings.data_dir / "logs", ARTIFACTS / "logs" / "releases", dirs_exist_ok=True)


def _ports_of(process: psutil.Process) -> set[int]:
    """The ports `process` listens on, itself or through its children (granian's workers)."""
    return {
        c.laddr.port
        for member in (process, *process.children(recursive=True))
        for c in member.net_connections("inet")
        if c.status == psutil.CONN_LISTEN
    }
