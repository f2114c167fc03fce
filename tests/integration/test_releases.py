"""An upgrade with orders in flight: each order finishes on the code it started on, and the old
release is retired once nothing needs it.

The old release is a real one, from git: the last whose workflows recorded their statuses in
order-status. Its orders in flight keep doing so after the upgrade, and the new code shows them.
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
from tests.integration.conftest import ARTIFACTS, Api, api_order, listening, stack_settings, start_up
from tests.integration.test_order_flow import DELIVERED_SEQUENCE

# The last release whose workflow recorded its statuses in order-status (`recordStatus`).
PREVIOUS_RELEASE = "1aa3c3d188b3cb5ac30f40b0fbe6c84425620fb5"
REPOSITORY = Path(__file__).parents[2]


def previous_release(tmp_path: Path) -> Path:
    """The foodorder package of PREVIOUS_RELEASE, taken from git; its parent."""
    src = tmp_path / "previous"
    src.mkdir()
    archive = subprocess.run(
        ["git", "archive", PREVIOUS_RELEASE, "src/foodorder"],
        cwd=REPOSITORY,
        capture_output=True,
        check=False,
    )
    assert archive.returncode == 0, f"git cannot give release {PREVIOUS_RELEASE}: {archive.stderr.decode()}"
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


def test_orders_in_flight_finish_on_their_release_and_the_old_one_retires(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path / "data")
    previous = previous_release(tmp_path)
    old_version = releases.code_version(previous / "foodorder")
    new_version = releases.code_version()
    api = Api(settings)
    # 45 s of wall time at the tests' time scale: they wait through the upgrade, even on a loaded machine.
    old_orders = [api_order(deliveryDelay=900_000) for _ in range(3)]

    up = start_up(settings, "releases-1", {"PYTHONPATH": str(previous)})
    try:
        for order in old_orders:
            assert api.request("POST", "/api/v1/orders", json=order).status_code == 202
        for order in old_orders:
            api.wait_for(str(order["id"]), Status.SCHEDULED)
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=60) == 0

    up = start_up(settings, "releases-2")
    try:
        deployments = ours(settings)
        assert set(deployments) == {old_version, new_version}
        assert deployments[new_version].address == (settings.host, settings.services_port)
        old_port = deployments[old_version].address[1]
        old_process = next(p for p in psutil.Process(up.pid).children() if old_port in _ports_of(p))
        listed = releases_listed(settings)
        assert re.search(rf"{new_version} .* current", listed), listed
        assert re.search(rf"{old_version} .* draining", listed), listed

        new_orders = [api_order() for _ in range(2)]
        watcher = Api(settings)
        with ThreadPoolExecutor() as pool:
            # A customer follows an old order live across the upgrade.
            streamed = pool.submit(watcher.events, str(old_orders[0]["id"]))
            for order in new_orders:
                assert api.request("POST", "/api/v1/orders", json=order).status_code == 202
            for order in old_orders + new_orders:
                api.wait_for(str(order["id"]), Status.DELIVERED, timeout_s=120)
            statuses = [e["data"]["status"] for e in streamed.result(timeout=120) if e["event"] == "status"]
        watcher.http.close()
        assert statuses == DELIVERED_SEQUENCE

        assert pinned_deployments(settings, old_orders) == {deployments[old_version].id}
        assert pinned_deployments(settings, new_orders) == {deployments[new_version].id}
        assert journal_mismatches(settings) == []

        def retired() -> bool:
            return (
                set(ours(settings)) == {new_version}
                and not old_process.is_running()
                and listening(settings.host, [old_port]) == []
                and not releases.code_path(settings.data_dir, old_version).exists()
            )

        deadline = time.monotonic() + 3 * releases.DRAIN_CHECK_INTERVAL_S + 30
        while not retired() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert set(ours(settings)) == {new_version}
        assert not old_process.is_running()
        assert listening(settings.host, [old_port]) == []
        assert not releases.code_path(settings.data_dir, old_version).exists()
        assert releases.code_path(settings.data_dir, new_version).exists()
    finally:
        api.http.close()
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
