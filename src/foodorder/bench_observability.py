"""The bench's observability phases: what tracing costs the intake, and what /ops costs at scale.

Each runs on stacks of its own (tracing is set when the processes start):
- tracing: intake at 16 concurrent providers on a stack without an exporter, then on one exporting
  every process's spans (restate-server's too) to an OTLP/HTTP receiver in the bench process;
- /ops: one refresh of the dashboard's data (`GET /ops/snapshot`), timed, with 10 ended orders in the
  store and again with 10,000, and the Restate invocations those refreshes created. The ended orders
  are seeded cheaply: orders for a restaurant the catalog does not have, which the workflow rejects
  at once (about four invocations each).
"""

import asyncio
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from foodorder import introspection
from foodorder.bench import FULL, ORDER, QUICK, RESULTS, Plan, bench_settings, closed_loop
from foodorder.clients.restate import RestateApi
from foodorder.config import DEV_OPS_PASSWORD, DEV_PROVIDER_KEY, OPS_USER, Settings
from foodorder.models import MAX_DELAY_MS, Status
from foodorder.ordering import board
from foodorder.otlp import receiving
from foodorder.stack import Stack

TRACING_CONCURRENCY = 16
ENDED_FEW, ENDED_MANY = 10, 10_000
REFRESHES = 20
SEED_CONCURRENCY = 32
SEED_TIMEOUT_S = 900


@contextmanager
def started(settings: Settings) -> Iterator[Stack]:
    """A stack of its own on `settings`, stopped at the end."""
    stack = Stack(settings, log_dir=settings.data_dir / "logs")
    try:
        stack.start_all()
        yield stack
    finally:
        stack.stop()


async def intake(settings: Settings, seconds: float, prefix: str) -> dict[str, Any]:
    """Orders accepted per second by 16 concurrent providers, and their latency."""
    headers = {"Authorization": f"Bearer {DEV_PROVIDER_KEY}"}
    limits = httpx.Limits(max_connections=TRACING_CONCURRENCY)
    async with httpx.AsyncClient(base_url=settings.gateway_url, timeout=30, limits=limits) as api:

        async def submit(n: int) -> bool:
            body = {"id": f"{prefix}-{n}", **ORDER, "deliveryDelay": MAX_DELAY_MS}
            return (await api.post("/api/v1/orders", json=body, headers=headers)).status_code == 202

        await closed_loop(submit, TRACING_CONCURRENCY, min(2.0, seconds))  # warm-up: connections, caches
        run = await closed_loop(lambda n: submit(n + 1_000_000), TRACING_CONCURRENCY, seconds)
    return {"orders_per_s": round(run.per_s, 1), "p50_ms": round(run.p(50), 1), "p99_ms": round(run.p(99), 1)}


def tracing_cost(plan: Plan, progress: Progress, tmp: Path) -> dict[str, Any]:
    """Intake without and with every process exporting its spans."""
    results: dict[str, Any] = {}
    task = progress.add_task("tracing: intake without, then with an OTLP exporter", total=2)
    with started(bench_settings(tmp / "untraced")) as stack:
        results["without_exporter"] = asyncio.run(intake(stack.settings, plan.seconds, "untraced"))
    progress.advance(task)
    with receiving() as receiver:
        settings = bench_settings(tmp / "traced").model_copy(update={"otlp_endpoint": receiver.endpoint})
        with started(settings) as stack:
            results["with_exporter"] = asyncio.run(intake(stack.settings, plan.seconds, "traced"))
            results["spans_received"] = len(receiver.received())
    progress.advance(task)
    without, with_ = results["without_exporter"], results["with_exporter"]
    results["throughput_ratio"] = round(with_["orders_per_s"] / max(without["orders_per_s"], 0.1), 2)
    return results


async def seed_ended(stack: Stack, count: int, first: int) -> None:
    """`count` more orders that end at once (REJECTED), sent on the ingress; returns once all are counted.

    Numbered from `first`: the board then counts `first + count` rejected orders in all.
    """
    s = stack.settings
    order = {**ORDER, "restaurantId": "nowhere", "totalCost": 0, "deliveryDelay": 0}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(first, first + count):
        queue.put_nowait(n)
    async with httpx.AsyncClient(base_url=s.ingress_url, timeout=30) as ingress:

        async def sender() -> None:
            while not queue.empty():
                key = f"ended-{queue.get_nowait()}"
                response = await ingress.post(f"/order-workflow/{key}/run/send", json={**order, "id": key})
                response.raise_for_status()

        await asyncio.gather(*(sender() for _ in range(SEED_CONCURRENCY)))
    async with RestateApi(s.admin_urls, timeout_s=30) as admin:
        deadline = asyncio.get_running_loop().time() + SEED_TIMEOUT_S
        while asyncio.get_running_loop().time() < deadline:
            if (
                sum(t.ended.get(Status.REJECTED, 0) for t in (await board.read(admin)).tallies)
                >= first + count
            ):
                return
            await asyncio.sleep(1)
    raise TimeoutError(f"{first + count} ended orders not counted after {SEED_TIMEOUT_S} s")


async def refreshes(stack: Stack) -> dict[str, Any]:
    """REFRESHES refreshes of /ops one after the other: their latency and the invocations they created."""
    s = stack.settings
    count = "SELECT count(*) AS n FROM sys_invocation_status"
    async with (
        httpx.AsyncClient(base_url=s.gateway_url, timeout=30, auth=(OPS_USER, DEV_OPS_PASSWORD)) as api,
        RestateApi(s.admin_urls, timeout_s=30) as admin,
    ):
        before = (await introspection.query(admin, count))[0]["n"]
        latencies = []
        for _ in range(REFRESHES):
            started_at = asyncio.get_running_loop().time()
            response = await api.get("/ops/snapshot")
            response.raise_for_status()
            latencies.append(asyncio.get_running_loop().time() - started_at)
        after = (await introspection.query(admin, count))[0]["n"]
    latencies.sort()
    return {
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1),
        "invocations_per_refresh": (after - before) / REFRESHES,
        "orders_in_flight": response.json()["active"],
    }


def ops_at_scale(progress: Progress, tmp: Path) -> dict[str, Any]:
    """/ops refreshes with few and with many ended orders in the store."""
    task = progress.add_task(f"/ops with {ENDED_FEW} and with {ENDED_MANY:,} ended orders", total=ENDED_MANY)
    results: dict[str, Any] = {}
    with started(bench_settings(tmp / "ops")) as stack:
        asyncio.run(seed_ended(stack, ENDED_FEW, 0))
        progress.update(task, completed=ENDED_FEW)
        results[f"ended_{ENDED_FEW}"] = asyncio.run(refreshes(stack))
        asyncio.run(seed_ended(stack, ENDED_MANY - ENDED_FEW, ENDED_FEW))
        progress.update(task, completed=ENDED_MANY)
        results[f"ended_{ENDED_MANY}"] = asyncio.run(refreshes(stack))
    return results


def run(plan: Plan, progress: Progress) -> dict[str, Any]:
    """Both observability phases; their figures."""
    with tempfile.TemporaryDirectory(prefix="foodorder-bench-observability-") as tmp:
        return {"tracing": tracing_cost(plan, progress, Path(tmp)), "ops": ops_at_scale(progress, Path(tmp))}


def rows(results: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """The headline figures for the bench's table."""
    tracing, ops = results["tracing"], results["ops"]
    few, many = ops[f"ended_{ENDED_FEW}"], ops[f"ended_{ENDED_MANY}"]
    return [
        (
            f"intake orders/s at {TRACING_CONCURRENCY} concurrent without / with an OTLP exporter (p99 ms)",
            f"{tracing['without_exporter']['orders_per_s']} ({tracing['without_exporter']['p99_ms']}) / "
            f"{tracing['with_exporter']['orders_per_s']} ({tracing['with_exporter']['p99_ms']})",
            "",
        ),
        (
            f"/ops refresh p50 / max ms with {ENDED_FEW} / {ENDED_MANY:,} ended orders",
            f"{few['p50_ms']} / {few['max_ms']}, {many['p50_ms']} / {many['max_ms']}",
            "<= 200 with 10,000",
        ),
        (
            "/ops invocations per refresh (10 / 10,000 ended)",
            f"{few['invocations_per_refresh']} / {many['invocations_per_refresh']}",
            "the same",
        ),
    ]


def standalone(quick: bool, console: Console) -> dict[str, Any]:
    """Only these phases (`foodorder bench --observability`); writes bench/results/observability.json."""
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        results = run(QUICK if quick else FULL, progress)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "observability.json").write_text(json.dumps(results, indent=2) + "\n")
    out = Table(title="foodorder bench: observability")
    for column in ("measure", "figure", "target"):
        out.add_column(column)
    for row in rows(results):
        out.add_row(row[0], str(row[1]), row[2])
    console.print(out)
    return results
