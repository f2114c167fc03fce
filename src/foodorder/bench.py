"""`foodorder bench`: throughput, latency, cost per order and memory, beside the engine's own ceiling.

It starts a stack of its own on free ports, runs seven phases against it, and writes
bench/results/latest.json and latest.md. The HTTP phases are driven by wrk (a native load
generator: a Python one took half a core of the two it measured); it runs on the same machine, so
every figure is next to the engine ceiling measured in the same run, with the same generator.

`--replication` instead runs the engine ceiling, intake and end-to-end phases twice, back to back:
on one restate-server and on a replicated cluster of three (bench/results/replication.json).
"""

import asyncio
import contextlib
import itertools
import json
import math
import multiprocessing
import os
import platform
import random
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from foodorder import geo, introspection
from foodorder.catalog import load_catalog
from foodorder.clients.restate import RestateApi
from foodorder.config import DEV_DRIVER_KEY, DEV_PROVIDER_KEY, Settings
from foodorder.models import MAX_DELAY_MS, Status
from foodorder.stack import Stack, on_free_ports

RESULTS = Path("bench/results")
ORDER = {"restaurantId": "bites_n_bytes", "products": [{"productId": "1000", "quantity": 1}]}
# End-to-end orders go to one restaurant per region in turn, as the simulated drivers are spread.
E2E_RESTAURANTS = ["bites_n_bytes", "golden_gate_grill", "lake_merritt_deli"]
MATCHER_REGION, MATCHER_RESTAURANT = "san-francisco", "golden_gate_grill"
INTAKE_P99_TARGET_MS = 100
TARGETS = {
    "intake_orders_per_s": ">= 300",
    "intake_p99_ms": f"<= {INTAKE_P99_TARGET_MS}",
    "location_points_per_s": ">= 1000",
    "state_bytes_per_order": "<= 4096",
    "peak_pss_mb.total": "<= 1536",
    "invocations_per_accepted_order": "<= 1.2",
    "system_invocations_per_order": "<= 25",
    "invocations_per_location_report": "<= 1",
}


@dataclass
class Plan:
    """How long and how hard each phase runs."""

    seconds: float
    concurrency_levels: list[int]
    location_drivers: int
    e2e_drivers: int
    e2e_orders_per_s: float
    matcher_deliveries: int = 100
    points_per_batch: int = 10
    watchers: int = 1000
    watched_orders: int = 100
    watched_moving: int = 20


QUICK = Plan(
    seconds=5, concurrency_levels=[1, 4, 8, 16, 64], location_drivers=20, e2e_drivers=60, e2e_orders_per_s=4
)
FULL = Plan(
    seconds=20,
    concurrency_levels=[1, 4, 8, 16, 32, 64],
    location_drivers=50,
    e2e_drivers=150,
    e2e_orders_per_s=8,
    matcher_deliveries=300,
)
# The seed's design spends, per step of a driver, one invocation to move and three per location
# point (twin, delivery manager, order-status), and one per second per idle phone polling for work.
SEED_INVOCATIONS_PER_STEP = 4
# Drivers of the location phase whose points only measure the lag (the others carry the load).
PROBES = 2
# The invocations a location report causes: the twin's, and what it passes on.
LOCATION_HANDLERS = (
    ("driver-digital-twin", "handleDriverLocationUpdateEvent"),
    ("order-status", "trackDriver"),
    ("delivery-manager", "handleDriverLocationUpdate"),
)
# Sustained end to end: rates 1.5 times higher, at most this many more, while the p99 from submission
# to DELIVERED stays within this factor of an order alone; drivers enough for the rate.
SUSTAINED_STEPS = 3
SUSTAINED_P99_FACTOR = 2.0
DRIVERS_PER_ORDER_PER_S = 15
# An order alone: the median of this many, one after another, at the loaded orders' restaurants in
# turn (its trip depends on the region and on how far the nearest driver happens to be, so one or two
# orders, or orders at one restaurant only, make a yardstick the loaded orders are not measured by).
UNLOADED_ORDERS = 2 * len(E2E_RESTAURANTS)
WARM_UP_S = 2
# Intake beside the event streams runs below the two cores' saturation, where the intake target is: at
# 16 connections the p99 is the queue's, and two runs without streams gave p99s twice apart.
WATCHERS_INTAKE_CONCURRENCY = 8
# The services endpoint's servers compared side by side (environment of `foodorder services`).
SERVICES_SERVERS = {
    "hypercorn": {"FOODORDER_SERVICES_SERVER": "hypercorn", "FOODORDER_SERVICES_WORKERS": "1"},
    "granian": {"FOODORDER_SERVICES_SERVER": "granian", "FOODORDER_SERVICES_WORKERS": "1"},
    "granian-2-workers": {"FOODORDER_SERVICES_SERVER": "granian", "FOODORDER_SERVICES_WORKERS": "2"},
}


WRK_SCRIPT = Path(__file__).parent / "data" / "wrk.lua"
MISSING_WRK = (
    "foodorder bench drives its HTTP phases with wrk, which is not installed:"
    " `make wrk` installs Debian's (apt-get install wrk)"
)


class BenchError(Exception):
    """The bench cannot run or measure as it should."""


def percentile(samples: list[float], p: float) -> float:
    """The p-th percentile (0 < p < 100) of `samples`; 0 without samples."""
    if len(samples) < 2:
        return samples[0] if samples else 0.0
    return statistics.quantiles(samples, n=100, method="inclusive")[round(p) - 1]


@dataclass
class Run:
    """Requests done by a closed loop of workers, and how long each took."""

    done: int = 0
    failed: int = 0
    latencies_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def per_s(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies_s, q) * 1000


@dataclass
class Load:
    """What wrk measured: requests answered with success and not, over how long, latency percentiles."""

    done: int
    failed: int
    elapsed_s: float
    p50_ms: float
    p99_ms: float

    @property
    def per_s(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s else 0.0


def parse_wrk(output: str) -> Load:
    """The figures wrk.lua's `done` writes as the last line of wrk's output."""
    figures = json.loads(output.strip().splitlines()[-1])
    return Load(
        done=figures["requests"] - figures["status_errors"],
        failed=figures["status_errors"] + figures["socket_errors"],
        elapsed_s=figures["duration_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
    )


async def wrk(
    base_url: str,
    path: str,
    connections: int,
    seconds: float,
    authorization: str | None = None,
    body: Any = None,
) -> Load:
    """POST to `path` over `connections` connections, each request after the last answer, for `seconds`.

    In `body`, "{id}" becomes an id of its own in every request.
    """
    binary = shutil.which("wrk")
    if binary is None:
        raise BenchError(MISSING_WRK)
    process = await asyncio.create_subprocess_exec(
        *(binary, "--threads", "1", "--connections", str(connections), "--duration", f"{seconds:g}s"),
        *("--timeout", "30s", "--script", str(WRK_SCRIPT), base_url),
        *("--", path, authorization or "-", json.dumps(body) if body is not None else "-"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise BenchError(f"wrk failed: {err.decode().strip()}")
    return parse_wrk(out.decode())


async def closed_loop(request: Callable[[int], Awaitable[bool]], concurrency: int, seconds: float) -> Run:
    """`concurrency` workers calling `request(n)` back to back for `seconds`."""
    run, numbers = Run(), itertools.count()
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < deadline:
            started = time.monotonic()
            ok = await request(next(numbers))
            run.latencies_s.append(time.monotonic() - started)
            run.done += ok
            run.failed += not ok

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    run.elapsed_s = time.monotonic() - started
    return run


class MemoryWatch:
    """Samples the memory of every process of the stack; keeps each one's peak, resident (RSS) and
    proportional (PSS).

    The stack's memory is the sum of its processes' PSS: a page that several processes share (the
    libraries every Python process maps, what granian's worker shares with the process it was forked
    from) counts once in that sum, divided among them, where summing RSS counts it in each. On an idle
    stack here the RSS sum was 130 MB more than the PSS sum.
    """

    def __init__(self, stack: Stack) -> None:
        self.stack, self.peaks_mb = stack, dict.fromkeys(stack.processes, 0.0)
        self.peaks_pss_mb = dict.fromkeys(stack.processes, 0.0)
        self.stopped = threading.Event()
        self.paused: set[str] = set()  # processes not sampled for now
        self.thread = threading.Thread(target=self._sample, daemon=True)

    @contextlib.contextmanager
    def aside(self, name: str) -> Iterator[None]:
        """No samples of process `name` meanwhile: it runs as it is not configured (a comparison's)."""
        self.paused.add(name)
        try:
            yield
        finally:
            self.paused.discard(name)

    def _sample(self) -> None:
        while not self.stopped.wait(0.5):
            for name, process in self.stack.processes.items():
                if process.popen is None or name in self.paused:
                    continue
                try:
                    memory = [member.memory_full_info() for member in with_children(process.popen.pid)]
                except psutil.Error:
                    continue
                self.peaks_mb[name] = max(self.peaks_mb[name], sum(m.rss for m in memory) / 2**20)
                self.peaks_pss_mb[name] = max(self.peaks_pss_mb[name], sum(m.pss for m in memory) / 2**20)

    def __enter__(self) -> "MemoryWatch":
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        self.thread.join()


class Watching:
    """Open event streams on orders, held by a process of its own; counts the events they bring."""

    def __init__(self, gateway_url: str, refs: list[str], streams: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.streams, self.started, self.events = streams, context.Value("i", 0), context.Value("i", 0)
        self.stopping = context.Event()
        self.process = context.Process(
            target=watch_streams,
            args=(gateway_url, refs, streams, self.started, self.events, self.stopping),
            daemon=True,
        )
        self.process.start()

    async def opened(self, timeout_s: float = 180) -> None:
        """Wait until every stream brought its first event."""
        deadline = time.monotonic() + timeout_s
        while self.started.value < self.streams:
            if time.monotonic() > deadline or not self.process.is_alive():
                raise TimeoutError(f"{self.started.value} of {self.streams} event streams opened")
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        self.stopping.set()
        self.process.join(30)


def watch_streams(
    gateway_url: str, refs: list[str], streams: int, started: Any, events: Any, stopping: Any
) -> None:
    """In a child process: `streams` event streams spread over `refs` until `stopping` is set."""

    async def main() -> None:
        limits = httpx.Limits(max_connections=streams + 10)
        async with httpx.AsyncClient(
            base_url=gateway_url, timeout=httpx.Timeout(30, read=None), limits=limits
        ) as http:

            async def watch(ref: str) -> None:
                """One stream; opened again, a second later, if it failed before its first event (a
                refusal or a timeout while the machine is loaded), as a browser's EventSource does."""
                auth = {"Authorization": f"Bearer {DEV_PROVIDER_KEY}"}
                opened = False
                while not opened:
                    with contextlib.suppress(httpx.HTTPError):
                        async with http.stream(
                            "GET", f"/api/v1/orders/{ref}/events", headers=auth
                        ) as response:
                            response.raise_for_status()
                            async for line in response.aiter_lines():
                                if line.startswith("id:"):
                                    with events.get_lock():
                                        events.value += 1
                                    if not opened:
                                        with started.get_lock():
                                            started.value += 1
                                        opened = True
                    if not opened:
                        await asyncio.sleep(1)

            tasks = [asyncio.ensure_future(watch(refs[n % len(refs)])) for n in range(streams)]
            await asyncio.to_thread(stopping.wait)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


class Bench:
    """The phases, against one stack."""

    def __init__(self, stack: Stack, plan: Plan, progress: Progress, memory: MemoryWatch) -> None:
        self.stack, self.s, self.plan, self.progress = stack, stack.settings, plan, progress
        self.memory = memory  # the whole run's, which a phase may keep a process out of
        gateway = stack.processes["gateway"].popen
        self.gateway_pid = gateway.pid if gateway else 0
        # Few connections: with many, httpx's pool burns the load generator's CPU, not the stack's.
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        self.ingress = httpx.AsyncClient(base_url=self.s.ingress_url, timeout=30, limits=limits)
        self.api = httpx.AsyncClient(base_url=self.s.gateway_url, timeout=30, limits=limits)
        self.admin = RestateApi(self.s.admin_urls, timeout_s=30)
        self.results: dict[str, Any] = {}

    async def close(self) -> None:
        for client in (self.ingress, self.api):
            await client.aclose()
        await self.admin.close()

    def phase(self, name: str, seconds: float) -> Callable[[], None]:
        """A progress line for a phase; call the result when the phase is over."""
        task = self.progress.add_task(name, total=seconds)
        started = time.monotonic()

        async def tick() -> None:
            while not self.progress.tasks[task].finished:
                self.progress.update(task, completed=min(seconds, time.monotonic() - started))
                await asyncio.sleep(0.2)

        ticker = asyncio.ensure_future(tick())

        def done() -> None:
            self.progress.update(task, completed=seconds)
            ticker.cancel()

        return done

    async def sql(self, query: str) -> introspection.Rows:
        return await introspection.query(self.admin, query)

    async def handler_invocations(self) -> dict[tuple[str, str], int]:
        """Invocations so far, by service and handler."""
        rows = await self.sql(
            "SELECT target_service_name AS s, target_handler_name AS h, count(*) AS n"
            " FROM sys_invocation GROUP BY 1, 2"
        )
        return {(row["s"], row["h"]): int(row["n"]) for row in rows}

    async def settled_invocations(self, timeout_s: float = 30) -> dict[tuple[str, str], int]:
        """Invocations by service and handler once the work already started has made all its calls."""
        seen = await self.handler_invocations()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            if (now := await self.handler_invocations()) == seen:
                break
            seen = now
        return seen

    async def submit(self, ref: str, delay_ms: int = 0, restaurant: str = "bites_n_bytes") -> bool:
        body = {"id": ref, **ORDER, "restaurantId": restaurant, "deliveryDelay": delay_ms}
        headers = {"Authorization": f"Bearer {DEV_PROVIDER_KEY}"}
        response = await self.api.post("/api/v1/orders", json=body, headers=headers)
        return response.status_code == 202

    # 1. The engine's ceiling --------------------------------------------------------------

    async def engine(self) -> None:
        best: Load | None = None
        for connections in (8, 32):
            done = self.phase(f"engine ceiling, no-op handler, {connections} connections", self.plan.seconds)
            load = await wrk(self.s.ingress_url, "/engine-probe/noop", connections, self.plan.seconds)
            done()
            best = load if best is None or load.per_s > best.per_s else best
        assert best is not None
        self.results["engine_noop_invocations_per_s"] = round(best.per_s, 1)
        self.results["engine_noop_p99_ms"] = round(best.p99_ms, 1)

    # 2. Intake ------------------------------------------------------------------------------

    async def intake(self) -> None:
        levels, before = [], await self.settled_invocations()
        cpu_before = cpu_seconds(self.stack)
        for concurrency in self.plan.concurrency_levels:
            done = self.phase(f"intake, {concurrency} concurrent providers", self.plan.seconds)
            # Due in a week: these orders are accepted and charged, then wait, out of the other phases' way.
            started = time.monotonic()
            load = await self.submissions(f"intake-{concurrency}", concurrency, self.plan.seconds)
            done()
            # The 202 comes once Restate logged the order: the workflows may still be catching up.
            # The level ends when every accepted order is SCHEDULED (paid for, waiting for its time).
            drained = self.phase(f"intake, {concurrency} concurrent: until every order is scheduled", 60)
            await self.until_scheduled(f"intake-{concurrency}-", load.done)
            drained()
            processed_s = time.monotonic() - started
            levels.append(
                {
                    "concurrency": concurrency,
                    "orders_per_s": round(load.per_s, 1),
                    "p50_ms": round(load.p50_ms, 1),
                    "p99_ms": round(load.p99_ms, 1),
                    "failed": load.failed,
                    "scheduled_per_s": round(load.done / processed_s, 1),
                }
            )
        best = max(levels, key=lambda level: level["orders_per_s"])
        # Everything the accepted orders made happen until they wait for their due time. An order
        # whose answer wrk gave up on (a timeout) was accepted all the same: every order the gateway
        # took counts.
        cpu_after = cpu_seconds(self.stack)
        after = await self.settled_invocations()
        accepted = await self.orders_taken("intake-")
        self.results["intake_orders_taken"] = accepted
        # The CPU each process of the stack spent per order, from its submission until it was scheduled
        # (restate-server's includes answering the phase's own queries for the scheduled orders).
        cpu = self.results["intake_cpu_ms_per_order"] = cpu_ms_per_order(cpu_before, cpu_after, accepted)
        # The same in units of the payment stub's, whose work per order no change of the stack's touches:
        # the machine's speed moved that figure by a fifth from hour to hour here; this ratio moved less.
        if cpu.get("payment"):
            self.results["intake_cpu_per_payment_stub_cpu"] = round(cpu["total"] / cpu["payment"], 2)
        spent = {handler: n - before.get(handler, 0) for handler, n in after.items()}
        self.results["invocations_per_accepted_order"] = round(sum(spent.values()) / accepted, 2)
        self.results["invocations_per_accepted_order_by_handler"] = {
            f"{service}/{handler}": round(n / accepted, 3)
            for (service, handler), n in sorted(spent.items())
            if n
        }
        self.results["intake"] = levels
        self.results["intake_orders_per_s"] = best["orders_per_s"]
        self.results["intake_p99_ms"] = best["p99_ms"]
        self.results["intake_best_concurrency"] = best["concurrency"]
        # The target is a rate at a p99: the best level that keeps that p99 (None: no level did).
        held = [level for level in levels if level["p99_ms"] <= INTAKE_P99_TARGET_MS]
        self.results["intake_within_p99_target"] = (
            max(held, key=lambda level: level["orders_per_s"]) if held else None
        )
        self.results["intake_scheduled_per_s"] = max(level["scheduled_per_s"] for level in levels)
        self.results["intake_share_of_ceiling"] = round(
            best["orders_per_s"] / self.results["engine_noop_invocations_per_s"], 3
        )

    async def orders_taken(self, prefix: str) -> int:
        """How many orders whose reference starts with `prefix` have a workflow."""
        query = (
            "SELECT count(*) AS n FROM state WHERE service_name = 'order-workflow' AND key = 'order'"
            f" AND service_key LIKE 'dev-provider:{prefix}%'"
        )
        return int((await self.sql(query))[0]["n"])

    async def until_scheduled(self, prefix: str, orders: int, stall_s: float = 120) -> None:
        """Wait until `orders` orders whose reference starts with `prefix` have been SCHEDULED.

        However long the workflows take to catch up with what intake accepted (a busy machine may
        need minutes for a thousand orders), the wait fails only when no order moved for `stall_s`.
        """
        query = (
            f"SELECT count(*) AS n FROM state WHERE service_name = 'order-workflow' AND key = 'history'"
            f" AND service_key LIKE 'dev-provider:{prefix}%' AND value_utf8 LIKE '%\"SCHEDULED\"%'"
        )
        progress, stalled_at = -1, time.monotonic() + stall_s
        while (scheduled := int((await self.sql(query))[0]["n"])) < orders:
            if scheduled > progress:
                progress, stalled_at = scheduled, time.monotonic() + stall_s
            elif time.monotonic() > stalled_at:
                raise BenchError(
                    f"{scheduled} of {orders} accepted orders were scheduled; none more in {stall_s:.0f}s"
                )
            await asyncio.sleep(0.5)

    async def submissions(self, prefix: str, connections: int, seconds: float) -> Load:
        """New orders, each with an id of its own, due in a week, back to back over `connections`."""
        body = {"id": f"{prefix}-{{id}}", **ORDER, "deliveryDelay": MAX_DELAY_MS}
        auth = f"Bearer {DEV_PROVIDER_KEY}"
        return await wrk(self.s.gateway_url, "/api/v1/orders", connections, seconds, auth, body)

    # 2a. The services endpoint's HTTP/2 server ---------------------------------------------------

    async def servers(self, stack: Stack) -> None:
        """The ceiling and intake again with the services endpoint under each server, side by side."""
        # The stack's peak memory is its own configuration's: each server's is measured on its own,
        # and the last one's is left out until it has stopped.
        with self.memory.aside("services"):
            self.results["services_servers"] = {
                name: await self.under_server(stack, name, env) for name, env in SERVICES_SERVERS.items()
            }
            # Back to the configured server for the phases after this one.
            configured = {
                "FOODORDER_SERVICES_SERVER": self.s.services_server,
                "FOODORDER_SERVICES_WORKERS": str(self.s.services_workers),
            }
            stack.restart("services", configured)
            await self.until_answering()

    async def under_server(self, stack: Stack, name: str, env: dict[str, str]) -> dict[str, Any]:
        """The ceiling and intake with the services endpoint restarted under `env`."""
        stack.restart("services", env)  # from the main thread: children die with the thread that forked them
        await self.until_answering()
        done = self.phase(f"services under {name}: ceiling, then intake", self.plan.seconds * 2)
        # restate-server opens its connections to the new endpoint under the first load: not measured.
        await wrk(self.s.ingress_url, "/engine-probe/noop", 32, WARM_UP_S)
        with MemoryWatch(stack) as memory:
            noop = await wrk(self.s.ingress_url, "/engine-probe/noop", 32, self.plan.seconds)
            started, cpu_before = time.monotonic(), cpu_seconds(stack)
            intake = await self.submissions(f"servers-{name}", 16, self.plan.seconds)
            await self.until_scheduled(f"servers-{name}-", intake.done)
            scheduled_s, cpu_after = time.monotonic() - started, cpu_seconds(stack)
        done()
        # Throughput moves with the machine's load from one server's turn to the next; the CPU
        # each order cost the endpoint is the figure to compare.
        cpu = cpu_ms_per_order(cpu_before, cpu_after, await self.orders_taken(f"servers-{name}-"))
        return {
            "noop_per_s": round(noop.per_s, 1),
            "noop_p99_ms": round(noop.p99_ms, 1),
            "intake_orders_per_s": round(intake.per_s, 1),
            "intake_p99_ms": round(intake.p99_ms, 1),
            "intake_scheduled_per_s": round(intake.done / scheduled_s, 1),
            "failed": noop.failed + intake.failed,
            "services_cpu_ms_per_order": cpu["services"],
            "cpu_ms_per_order": cpu["total"],
            "services_peak_rss_mb": round(memory.peaks_mb["services"], 1),
            "services_peak_pss_mb": round(memory.peaks_pss_mb["services"], 1),
            "load_average": [round(n, 2) for n in os.getloadavg()],
        }

    async def until_answering(self, timeout_s: float = 60) -> None:
        """Wait until restate-server reaches the services endpoint again."""
        deadline = time.monotonic() + timeout_s
        while not (await self.ingress.post("/engine-probe/noop")).is_success:
            if time.monotonic() > deadline:
                raise BenchError("the services endpoint did not answer again after its restart")
            await asyncio.sleep(0.2)

    # 2b. Intake beside watchers ----------------------------------------------------------------

    async def watchers(self) -> None:
        """Intake p99 without and with many open event streams on active orders, and their engine cost.

        The watched orders: some with a driver reporting a location every second (each report is
        a change to stream), the rest scheduled for later (quiet).
        """
        drivers = [f"watched-driver-{i}" for i in range(self.plan.watched_moving)]
        headers = {"Authorization": f"Bearer {DEV_DRIVER_KEY}"}
        moving = [f"watched-moving-{i}" for i in range(len(drivers))]
        quiet = [f"watched-quiet-{i}" for i in range(self.plan.watched_orders - len(moving))]
        for ref in quiet:
            await self.submit(ref, MAX_DELAY_MS)
        carried = await self.on_deliveries(drivers, moving)
        rng, reports = random.Random(11), [0]

        async def report(driver: str, stamp: int) -> None:
            point = {**geo.random_location(rng).model_dump(mode="json"), "at": stamp}
            try:
                response = await self.api.post(
                    f"/api/v1/drivers/{driver}/locations", json={"points": [point]}, headers=headers
                )
            except httpx.HTTPError:
                return  # a phone that could not report this second
            reports[0] += response.status_code == 202

        async def report_locations() -> None:
            for stamp in itertools.count(1):
                await asyncio.gather(asyncio.sleep(1), *(report(driver, stamp) for driver in carried))

        gateway = psutil.Process(self.gateway_pid)

        async def intake(label: str) -> tuple[Load, float]:
            """Intake, and the gateway's CPU (cores) meanwhile."""
            seconds = self.plan.seconds * 2  # twice the intake phase's: a p99 of more samples
            done = self.phase(f"intake at {WATCHERS_INTAKE_CONCURRENCY} concurrent, {label}", seconds)
            cpu = sum(gateway.cpu_times()[:2])
            prefix = f"watchers-{label.replace(' ', '-')}"
            load = await self.submissions(prefix, WATCHERS_INTAKE_CONCURRENCY, seconds)
            cores = (sum(gateway.cpu_times()[:2]) - cpu) / load.elapsed_s
            await self.until_scheduled(f"{prefix}-", load.done)  # so that the next part starts afresh
            done()
            return load, cores

        reporter = asyncio.ensure_future(report_locations())
        before_streams, cpu_without = await intake("no watchers")
        refs = moving + quiet
        # The streams' client runs in a process of its own, so that reading them does not slow the
        # load generator's own event loop (and with it the latencies it measures).
        watching = Watching(self.s.gateway_url, refs, self.plan.watchers)
        opening = self.phase(f"opening {self.plan.watchers} event streams", 60)
        await watching.opened()
        opening()
        before, counted = await self.watcher_invocations(), (watching.events.value, reports[0])
        with_watchers, cpu_with = await intake(f"{self.plan.watchers} watchers")
        spent = sum((await self.watcher_invocations()).values()) - sum(before.values())
        streamed, changes = watching.events.value - counted[0], reports[0] - counted[1]
        watching.stop()
        # Without watchers once more: the machine's other load drifts, so compare with both sides.
        after_streams, _ = await intake("no watchers again")
        reporter.cancel()
        await self.hand_over(carried, moving)
        without_p99 = (before_streams.p99_ms + after_streams.p99_ms) / 2
        elapsed = with_watchers.elapsed_s
        self.results["watchers"] = self.plan.watchers
        self.results["watchers_intake_concurrency"] = WATCHERS_INTAKE_CONCURRENCY
        self.results["watched_orders"] = len(refs)
        self.results["intake_p99_ms_without_watchers"] = round(without_p99, 1)
        self.results["intake_p99_ms_without_watchers_before_after"] = [
            round(before_streams.p99_ms, 1),
            round(after_streams.p99_ms, 1),
        ]
        self.results["intake_p99_ms_with_watchers"] = round(with_watchers.p99_ms, 1)
        self.results["intake_p99_ratio_with_watchers"] = round(with_watchers.p99_ms / without_p99, 2)
        self.results["watcher_invocations_per_s"] = round(spent / elapsed, 1)
        self.results["watched_changes_per_s"] = round(changes / elapsed, 1)
        self.results["watcher_events_delivered_per_s"] = round(streamed / elapsed, 1)
        self.results["gateway_cpu_without_watchers"] = round(cpu_without, 2)
        self.results["gateway_cpu_with_watchers"] = round(cpu_with, 2)
        # What the same streams would cost polling getEvents every 0.25 s: each stream on its own
        # (the design before), or one reader per watched order.
        self.results["watchers_polling_invocations_per_s"] = self.plan.watchers * 4
        self.results["one_poller_per_order_invocations_per_s"] = len(refs) * 4

    async def watcher_invocations(self) -> dict[str, int]:
        """Invocations made for event streams, by handler: the workflows' and order-status' reads and
        waits, and the drivers' locations passed on to the watched orders (a twin tells an unwatched
        order less)."""
        rows = await self.sql(
            "SELECT target_handler_name AS h, count(*) AS n FROM sys_invocation"
            " WHERE (target_service_name = 'order-status'"
            " AND target_handler_name IN ('waitForEvents', 'addWatcher', 'getEvents', 'trackDriver'))"
            " OR (target_service_name = 'order-workflow' AND target_handler_name = 'waitForStatus')"
            " OR (target_service_name = 'driver-digital-twin' AND target_handler_name = 'watch') GROUP BY 1"
        )
        return {row["h"]: int(row["n"]) for row in rows}

    # 3. Location ingest ---------------------------------------------------------------------

    async def locations(self, stack: Stack) -> None:
        """Location ingest through the API, published to Kafka (the default), then sent on the ingress."""
        gateway = stack.processes["gateway"]

        def publish_via(transport: str) -> None:
            if gateway.env["FOODORDER_LOCATION_TRANSPORT"] != transport:
                gateway.env["FOODORDER_LOCATION_TRANSPORT"] = transport
                stack.kill("gateway")  # and started again at once, with its locations going that way

        self.results["location_points_per_batch"] = self.plan.points_per_batch
        self.results["locations"] = {}
        for transport in ("kafka", "ingress"):
            publish_via(transport)
            self.results["locations"][transport] = await self.location_ingest(transport)
        publish_via(self.s.location_transport)

    async def location_ingest(self, transport: str) -> dict[str, float]:
        """Batches of points for drivers on deliveries, as fast as they are taken; the lag of a few probes.

        The probes get no batches, so their points are always the newest (the twin skips older ones).
        """
        drivers = [f"bench-{transport}-driver-{i}" for i in range(self.plan.location_drivers)]
        headers = {"Authorization": f"Bearer {DEV_DRIVER_KEY}"}
        refs = [f"locations-{transport}-{i}" for i in range(len(drivers))]
        order_of = await self.on_deliveries(drivers, refs)
        probes, loaded = drivers[:PROBES], drivers[PROBES:]

        done = self.phase(f"location ingest via {transport}, {len(drivers)} drivers", self.plan.seconds)
        stamps = itertools.count(1)
        rng = random.Random(7)

        async def batch(n: int) -> bool:
            driver = loaded[n % len(loaded)]
            at = next(stamps) * self.plan.points_per_batch
            points = [
                {**geo.random_location(rng).model_dump(mode="json"), "at": at + i}
                for i in range(self.plan.points_per_batch)
            ]
            response = await self.api.post(
                f"/api/v1/drivers/{driver}/locations", json={"points": points}, headers=headers
            )
            return response.status_code == 202

        lags: list[float] = []

        async def sample() -> None:
            while True:
                driver = rng.choice(probes)
                lags.append(await self.mark(driver, order_of[driver], next(stamps), headers))

        sampler = asyncio.ensure_future(sample())
        run = await closed_loop(batch, 32, self.plan.seconds)
        sampler.cancel()
        done()
        # Accepted is not processed: wait until every driver's last point shows, and count that time too.
        drained = self.phase(f"location ingest via {transport}, until the last points show", 30)
        drains = await asyncio.gather(*(self.mark(d, order_of[d], next(stamps), headers) for d in drivers))
        drained()
        drain_s = max(drains)
        lags += drains
        await self.hand_over(drivers, refs)
        points = run.done * self.plan.points_per_batch
        return {
            "points_per_s": round(points / (run.elapsed_s + drain_s), 1),
            "accepted_per_s": round(run.per_s * self.plan.points_per_batch, 1),
            "drain_s": round(drain_s, 2),
            "p50_lag_ms": round(percentile(lags, 50) * 1000, 1),
            "p99_lag_ms": round(percentile(lags, 99) * 1000, 1),
            "lag_samples": len(lags),
        }

    async def mark(self, driver: str, order_key: str, stamp: int, headers: dict[str, str]) -> float:
        """Post a point nobody else posts; the seconds until the order's tracking shows it."""
        point = geo.random_location(random.Random(stamp)).model_dump(mode="json")
        at = stamp * self.plan.points_per_batch + self.plan.points_per_batch - 1
        started = time.monotonic()
        await self.api.post(
            f"/api/v1/drivers/{driver}/locations", json={"points": [{**point, "at": at}]}, headers=headers
        )
        while time.monotonic() - started < 60:
            tracking = (await self.ingress.post(f"/order-status/{order_key}/getTracking")).json()
            if (tracking.get("driver") or {}).get("location") == point:
                break
            await asyncio.sleep(0.01)
        return time.monotonic() - started

    async def on_deliveries(self, drivers: list[str], refs: list[str]) -> dict[str, str]:
        """Drivers on shift in San Jose (API), an order each, their offers accepted; who carries which."""
        headers = {"Authorization": f"Bearer {DEV_DRIVER_KEY}"}
        rng = random.Random(len(drivers))
        for driver in drivers:
            shift = {"location": geo.random_location(rng).model_dump(mode="json")}
            await self.api.post(f"/api/v1/drivers/{driver}/availability", json=shift, headers=headers)
        for ref in refs:
            await self.submit(ref)
        waiting, deadline = set(drivers), time.monotonic() + 120
        while waiting and time.monotonic() < deadline:
            for driver in sorted(waiting):
                answer = await self.api.get(f"/api/v1/drivers/{driver}/offers/current", headers=headers)
                if not answer.is_success:
                    raise BenchError(
                        f"{driver}'s offer could not be read: {answer.status_code} {answer.text}"
                    )
                offer = answer.json()
                if offer["offer"] is not None:
                    accept = f"/api/v1/drivers/{driver}/offers/{offer['offer']['offerId']}/accept"
                    await self.api.post(accept, headers=headers)
                    waiting.discard(driver)
            await asyncio.sleep(0.1)
        await self.until_status(refs, "WAITING_FOR_DRIVER", timeout_s=120)
        return await self.assignments(drivers, refs)

    async def hand_over(self, drivers: Iterable[str], refs: list[str]) -> None:
        """The bench's drivers pick up and deliver the orders they carry, and end their shifts, so that a
        phase leaves no order waiting for its driver (its silence check would fire in a later phase,
        its driver would be replaced and a simulated one would deliver it, all counted as that
        phase's work) and no driver without a phone waiting for a later phase's offers."""
        for handler in ("notifyDeliveryPickUp", "notifyDeliveryDelivered", "setDriverUnavailable"):
            answers = await asyncio.gather(
                *(self.ingress.post(f"/driver-digital-twin/{d}/{handler}") for d in drivers)
            )
            if refused := [a.text for a in answers if not a.is_success]:
                raise BenchError(f"{len(refused)} bench drivers could not {handler}: {refused[0]}")
        await self.until_status(refs, "DELIVERED", timeout_s=300)

    async def assignments(self, drivers: list[str], refs: list[str]) -> dict[str, str]:
        """Which order (workflow key) each bench driver carries."""
        rows = await self.sql(introspection.ORDER_HISTORIES)
        wanted = {f"dev-provider:{ref}" for ref in refs}
        order_of = {}
        for row in rows:
            if row["service_key"] in wanted:
                reason = json.loads(row["value_utf8"])[-1].get("reason") or ""
                order_of[reason.removeprefix("driver ")] = row["service_key"]
        return {driver: order_of[driver] for driver in drivers}

    async def until_status(self, refs: list[str], status: str, timeout_s: float) -> None:
        keys = ", ".join(f"'dev-provider:{ref}'" for ref in refs)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            rows = await self.sql(f"{introspection.ORDER_HISTORIES} AND service_key IN ({keys})")
            if list(introspection.latest_statuses(rows).values()).count(Status(status)) == len(refs):
                return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"orders did not all reach {status} in {timeout_s:.0f}s")

    # 4. One region's matcher ---------------------------------------------------------------------

    async def matcher(self) -> None:
        """Matches per second through one region's matcher: K deliveries wait, then K drivers come on shift
        (each arrival is one matcher call that makes an offer) and accept (one more call each)."""
        k = self.plan.matcher_deliveries
        done = self.phase(f"one region's matcher, {k} deliveries", self.plan.seconds)
        refs = [f"match-{n}" for n in range(k)]
        await asyncio.gather(*(self.submit(ref, restaurant=MATCHER_RESTAURANT) for ref in refs))
        await self.until_matcher_holds(k)
        center = load_catalog().center_of(MATCHER_RESTAURANT)
        rng = random.Random(0)
        shifts = {f"matcher-driver-{n}": geo.random_location(rng, center) for n in range(k)}
        started = time.monotonic()
        await asyncio.gather(
            *(
                self.ingress.post(
                    f"/driver-digital-twin/{driver}/setDriverAvailable",
                    json={"location": spot.model_dump(mode="json")},
                )
                for driver, spot in shifts.items()
            )
        )
        offers = await self.until_offered(set(shifts))
        offered = time.monotonic()
        await asyncio.gather(
            *(self.ingress.post(f"/driver-digital-twin/{d}/acceptOffer", json=o) for d, o in offers.items())
        )
        await self.until_status(refs, "WAITING_FOR_DRIVER", timeout_s=300)
        matched = time.monotonic()
        done()
        await self.hand_over(shifts, refs)
        self.results["matcher"] = {
            "region": MATCHER_REGION,
            "deliveries": k,
            "offers_per_s": round(k / (offered - started), 1),
            "matches_per_s": round(k / (matched - started), 1),
        }

    async def until_matcher_holds(self, pending: int, timeout_s: float = 300) -> None:
        """Wait until the region's matcher queues `pending` deliveries (nobody to offer them to yet)."""
        query = (
            "SELECT value_utf8 FROM state WHERE service_name = 'driver-delivery-matcher'"
            f" AND service_key = '{MATCHER_REGION}' AND key = 'pending-deliveries'"
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            rows = await self.sql(query)
            if rows and len(json.loads(rows[0]["value_utf8"])) >= pending:
                return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"the matcher never held {pending} deliveries")

    async def until_offered(self, drivers: set[str], timeout_s: float = 300) -> dict[str, str]:
        """Wait until each of `drivers` holds an offer; their offer ids."""
        query = (
            "SELECT service_key, value_utf8 FROM state WHERE service_name = 'driver-digital-twin'"
            " AND key = 'offer' AND service_key LIKE 'matcher-driver-%'"
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            offers = {r["service_key"]: json.loads(r["value_utf8"])["offerId"] for r in await self.sql(query)}
            if set(offers) >= drivers:
                return offers
            await asyncio.sleep(0.05)
        raise TimeoutError("not every driver was offered a delivery")

    # 5. End to end ----------------------------------------------------------------------------

    async def end_to_end(self, stack: Stack) -> None:
        stack.start_drivers(self.plan.e2e_drivers)
        await asyncio.sleep(2)
        unloaded_s = await self.unloaded_order_s()
        before = await self.handler_invocations()
        level = await self.deliveries(stack, "e2e", self.plan.e2e_orders_per_s, self.plan.seconds * 4)
        after = await self.handler_invocations()
        orders = level["orders"]
        spent = {name: after.get(name, 0) - before.get(name, 0) for name in after}
        by_service: dict[str, int] = {}
        for (service, _), n in spent.items():
            by_service[service] = by_service.get(service, 0) + n
        self.results["e2e_orders"] = orders
        self.results["e2e_orders_per_s"] = level["delivered_per_s"]
        self.results["e2e_p50_s"] = level["p50_s"]
        self.results["e2e_p99_s"] = level["p99_s"]
        self.results["invocations_per_order"] = round(sum(by_service.values()) / orders, 1)
        self.results["invocations_per_order_by_service"] = {
            name: round(n / orders, 1) for name, n in sorted(by_service.items()) if n
        }
        # The simulated phones stand in for devices outside the system: the system is the rest.
        system = sum(n for name, n in by_service.items() if name != "driver-mobile-app")
        self.results["system_invocations_per_order"] = round(system / orders, 1)
        self.results["system_invocations_per_order_by_handler"] = {
            f"{service}/{handler}": round(n / orders, 2)
            for (service, handler), n in sorted(spent.items())
            if n and service != "driver-mobile-app"
        }
        reports = spent.get(("driver-digital-twin", "handleDriverLocationUpdateEvent"), 0)
        passed_on = sum(spent.get(handler, 0) for handler in LOCATION_HANDLERS)
        self.results["location_reports_per_order"] = round(reports / orders, 1)
        self.results["invocations_per_location_report"] = round(passed_on / reports, 2) if reports else None
        # The seed's design on the same trips: 4 invocations a step, plus what is not about locations.
        per_order = self.results["invocations_per_order_by_service"]
        not_locations = ("order-workflow", "driver-delivery-matcher", "delivery-manager")
        self.results["seed_design_invocations_per_order"] = round(
            SEED_INVOCATIONS_PER_STEP * per_order.get("driver-mobile-app", 0)
            + sum(per_order.get(name, 0) for name in not_locations),
            1,
        )
        stored = await self.sql(
            "SELECT service_name, sum(length(value)) AS bytes FROM state"
            " WHERE service_key LIKE 'dev-provider:e2e-%' GROUP BY service_name"
        )
        state = {row["service_name"]: row["bytes"] / orders for row in stored}
        self.results["state_bytes_per_order"] = round(sum(state.values()))
        self.results["state_bytes_per_order_by_service"] = {k: round(v) for k, v in sorted(state.items())}
        self.results["e2e_time_scale"] = self.s.time_scale
        self.results["e2e_drivers"] = self.plan.e2e_drivers
        await self.sustained(stack, unloaded_s, level)

    async def unloaded_order_s(self) -> float:
        """Submission to DELIVERED of an order alone on the stack: the median of orders one after another,
        spread over the restaurants as the loaded orders are."""
        done = self.phase("end to end, orders alone", 10 * UNLOADED_ORDERS)
        for n in range(UNLOADED_ORDERS):
            await self.submit(f"unloaded-{n}", restaurant=E2E_RESTAURANTS[n % len(E2E_RESTAURANTS)])
            await self.until_status([f"unloaded-{n}"], "DELIVERED", timeout_s=120)
        done()
        durations = await self.durations("unloaded-")
        median = percentile(durations, 50)
        self.results["e2e_unloaded_s"] = round(median, 2)
        return median

    async def deliveries(self, stack: Stack, prefix: str, per_s: float, window: float) -> dict[str, Any]:
        """Orders at `per_s` for `window` seconds, each until DELIVERED: how fast and how long they took."""
        drivers = max(self.plan.e2e_drivers, math.ceil(per_s * DRIVERS_PER_ORDER_PER_S))
        stack.start_drivers(drivers)  # drivers already on duty go on as they are
        done = self.phase(f"end to end, {per_s:g} orders/s, {drivers} drivers", window)
        refs, submissions, interval = [], [], 1 / per_s
        started = time.monotonic()
        for n in itertools.count():
            if time.monotonic() - started >= window:
                break
            refs.append(f"{prefix}-{n}")
            shop = E2E_RESTAURANTS[n % len(E2E_RESTAURANTS)]
            submissions.append(asyncio.ensure_future(self.submit(refs[-1], restaurant=shop)))
            await asyncio.sleep(max(0.0, started + (n + 1) * interval - time.monotonic()))
        await asyncio.gather(*submissions)
        done()
        drain = self.phase("end to end, waiting for the last deliveries", 120)
        await self.until_status(refs, "DELIVERED", timeout_s=300)
        drain()
        durations, span_s = await self.durations(f"{prefix}-"), await self.span_s(f"{prefix}-")
        return {
            "offered_per_s": per_s,
            "drivers": drivers,
            "orders": len(refs),
            "delivered_per_s": round(len(refs) / span_s, 2),
            "p50_s": round(percentile(durations, 50), 2),
            "p99_s": round(percentile(durations, 99), 2),
        }

    async def sustained(self, stack: Stack, unloaded_s: float, first: dict[str, Any]) -> None:
        """The highest rate whose p99 submission to DELIVERED stays within 2x an unloaded order's: up
        from the first rate by half as much again while it holds, or down by half until it holds."""

        def holds(level: dict[str, Any]) -> bool:
            return bool(level["p99_s"] <= SUSTAINED_P99_FACTOR * unloaded_s)

        levels, per_s = [first], first["offered_per_s"]
        step = 1.5 if holds(first) else 0.5
        while len(levels) <= SUSTAINED_STEPS and holds(levels[-1]) == (step > 1):
            per_s *= step
            levels.append(await self.deliveries(stack, f"sustained-{per_s:g}", per_s, self.plan.seconds * 2))
        held = [level for level in levels if holds(level)]
        self.results["e2e_levels"] = levels
        self.results["e2e_sustained_orders_per_s"] = max(
            (level["delivered_per_s"] for level in held), default=0.0
        )

    async def histories(self, prefix: str) -> list[list[dict[str, Any]]]:
        rows = await self.sql(
            f"{introspection.ORDER_HISTORIES} AND service_key LIKE 'dev-provider:{prefix}%'"
        )
        return [json.loads(row["value_utf8"]) for row in rows]

    async def durations(self, prefix: str) -> list[float]:
        """Seconds from submission to the last status, of the orders whose reference starts with `prefix`."""
        return [(h[-1]["at"] - h[0]["at"]) / 1000 for h in await self.histories(prefix)]

    async def span_s(self, prefix: str) -> float:
        """Seconds from the first submission to the last delivery of those orders."""
        histories = await self.histories(prefix)
        first: int = min(h[0]["at"] for h in histories)
        last: int = max(h[-1]["at"] for h in histories)
        return (last - first) / 1000


def bench_settings(data_dir: Path, restate_nodes: int = 1) -> Settings:
    """Free ports, no simulated drivers at first, and timings that deliver in seconds."""
    return on_free_ports(
        Settings(
            data_dir=data_dir,
            restate_nodes=restate_nodes,
            drivers=0,
            time_scale=20,
            driver_speed_mps=60,
            driver_silence_timeout_s=3600,
            driver_search_timeout_s=36_000,  # the matcher phase keeps hundreds of deliveries waiting
            offer_timeout_s=3600,  # the matcher phase answers its offers after all were made
            # One load generator, one key: the public limits would stop the bench, not measure it.
            api_rate_limit="1000000/second",
            streams_per_address=100_000,
            streams_per_key=100_000,
            streams_total=100_000,
            location_transport="kafka",  # the location phase compares it with the ingress
        )
    )


async def run_phases(stack: Stack, plan: Plan, progress: Progress, memory: MemoryWatch) -> dict[str, Any]:
    bench = Bench(stack, plan, progress, memory)
    # The machine's load average (1, 5, 15 min) as each phase starts: the figures move with it.
    load = bench.results["load_average_by_phase"] = {}
    phases: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("engine", bench.engine),
        ("intake", bench.intake),
        ("servers", lambda: bench.servers(stack)),
        ("watchers", bench.watchers),
        ("locations", lambda: bench.locations(stack)),
        ("matcher", bench.matcher),
        ("end_to_end", lambda: bench.end_to_end(stack)),
    ]
    try:
        for name, phase in phases:
            load[name] = [round(n, 2) for n in os.getloadavg()]
            await phase()
    finally:
        await bench.close()
    return bench.results


Phases = Callable[[Stack, Plan, Progress, MemoryWatch], Coroutine[Any, Any, dict[str, Any]]]


def on_fresh_stack(phases: Phases, plan: Plan, console: Console, restate_nodes: int = 1) -> dict[str, Any]:
    """Run `phases` on a stack of its own; their results, with each process's peak memory."""
    if shutil.which("wrk") is None:  # before minutes of starting a stack
        raise BenchError(MISSING_WRK)
    with tempfile.TemporaryDirectory(prefix="foodorder-bench-") as tmp:
        stack = Stack(bench_settings(Path(tmp), restate_nodes), log_dir=Path(tmp) / "logs")
        try:
            console.print(f"starting a stack on free ports, {restate_nodes} restate-server node(s)…")
            stack.start_all()
            with (
                MemoryWatch(stack) as memory,
                Progress(
                    TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console
                ) as progress,
            ):
                results = asyncio.run(phases(stack, plan, progress, memory))
        finally:
            stack.stop()
    for key, peaks in (("peak_rss_mb", memory.peaks_mb), ("peak_pss_mb", memory.peaks_pss_mb)):
        rounded = {name: round(mb, 1) for name, mb in peaks.items()}
        results[key] = {**rounded, "total": round(sum(rounded.values()), 1)}
    return results


def stamp(results: dict[str, Any], quick: bool) -> None:
    """Add the machine, the mode and the time to `results`."""
    results["machine"] = {
        "cpus": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
    }
    results["mode"] = "quick" if quick else "full"
    results["at"] = datetime.now(UTC).isoformat(timespec="seconds")


def run(quick: bool, console: Console) -> dict[str, Any]:
    """Run every phase on a fresh stack (the observability phases on stacks of their own); write and print
    the results."""
    from foodorder import bench_observability

    plan = QUICK if quick else FULL
    results = on_fresh_stack(run_phases, plan, console)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        results["observability"] = bench_observability.run(plan, progress)
    stamp(results, quick)
    write(results)
    console.print(table(results))
    return results


# What the replication comparison keeps of each run.
REPLICATION_FIGURES = (
    "engine_noop_invocations_per_s",
    "engine_noop_p99_ms",
    "intake_orders_per_s",
    "intake_p99_ms",
    "e2e_orders_per_s",
    "e2e_p50_s",
    "e2e_p99_s",
    "invocations_per_order",
)
REPLICATION_NODES = (1, 3)
# What the partitions comparison shows of each run.
ENGINE_FIGURES = (
    "engine_noop_invocations_per_s",
    "engine_noop_p99_ms",
    "intake_orders_per_s",
    "intake_p99_ms",
    "intake_scheduled_per_s",
    "intake_share_of_ceiling",
    "invocations_per_accepted_order",
)
PARTITIONS_ENV = "RESTATE_DEFAULT_NUM_PARTITIONS"  # overrides data/restate.toml for a new cluster


def with_children(pid: int) -> list[psutil.Process]:
    """A process and every process below it (granian's workers serve the services endpoint)."""
    process = psutil.Process(pid)
    return [process, *process.children(recursive=True)]


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """The CPU time (user and system) each process of the stack, with its children, has used so far."""
    used = {}
    for name, process in stack.processes.items():
        if process.popen is not None:
            with contextlib.suppress(psutil.Error):
                used[name] = sum(sum(m.cpu_times()[:2]) for m in with_children(process.popen.pid))
    return used


def cpu_ms_per_order(before: dict[str, float], after: dict[str, float], orders: int) -> dict[str, float]:
    """The CPU milliseconds each process spent per order between two `cpu_seconds`, and their total."""
    spent = {
        name: round((used - before.get(name, 0.0)) * 1000 / max(orders, 1), 2) for name, used in after.items()
    }
    return spent | {"total": round(sum(spent.values()), 2)}


async def replication_phases(
    stack: Stack, plan: Plan, progress: Progress, memory: MemoryWatch
) -> dict[str, Any]:
    """The phases that show what replication costs: the engine's ceiling, intake, end to end.

    Also the CPU each process spent per delivered order during the end-to-end phase. An end-to-end
    phase whose orders are not all delivered in time is reported as such, beside the other figures.
    """
    bench = Bench(stack, plan, progress, memory)
    figures: dict[str, Any] = {"load_average": round(psutil.getloadavg()[0], 1)}
    try:
        await bench.engine()
        await bench.intake()
        before = cpu_seconds(stack)
        try:
            await bench.end_to_end(stack)
        except TimeoutError as error:
            figures["e2e_unfinished"] = str(error)
        after = cpu_seconds(stack)
    finally:
        await bench.close()
    figures |= {key: bench.results[key] for key in REPLICATION_FIGURES if key in bench.results}
    if "e2e_orders" in bench.results:
        # Every order of the phase: those alone, then each level's.
        orders = UNLOADED_ORDERS + sum(level["orders"] for level in bench.results["e2e_levels"])
        figures["e2e_cpu_ms_per_order"] = cpu_ms_per_order(before, after, orders)
    return figures


async def engine_phases(stack: Stack, plan: Plan, progress: Progress, memory: MemoryWatch) -> dict[str, Any]:
    """The engine's ceiling and intake, which the partitions of restate-server bound."""
    bench = Bench(stack, plan, progress, memory)
    figures: dict[str, Any] = {"load_average": round(psutil.getloadavg()[0], 1)}
    try:
        await bench.engine()
        await bench.intake()
    finally:
        await bench.close()
    return figures | bench.results


@dataclass(frozen=True)
class Variant:
    """One engine set-up to measure: restate-server nodes, and partitions (None: data/restate.toml's)."""

    label: str
    restate_nodes: int = 1
    partitions: int | None = None


@contextlib.contextmanager
def partitions_env(partitions: int | None) -> Iterator[None]:
    """restate-server's partition count for the stacks started meanwhile (they inherit RESTATE_*)."""
    if partitions is None:
        yield
        return
    os.environ[PARTITIONS_ENV] = str(partitions)
    try:
        yield
    finally:
        del os.environ[PARTITIONS_ENV]


def compare(
    name: str,
    variants: list[Variant],
    phases: Phases,
    plan: Plan,
    quick: bool,
    console: Console,
    shown: tuple[str, ...],
) -> dict[str, Any]:
    """`phases` on a fresh stack per variant, back to back; written to bench/results/<name>.json, printed."""
    results: dict[str, Any] = {}
    for variant in variants:
        with partitions_env(variant.partitions):
            figures = results[variant.label] = on_fresh_stack(phases, plan, console, variant.restate_nodes)
        figures.pop("peak_pss_mb")
        peaks = figures.pop("peak_rss_mb")
        figures["restate_rss_mb"] = round(
            sum(mb for process, mb in peaks.items() if process.startswith("restate"))
        )
        figures["total_rss_mb"] = round(peaks["total"])
    stamp(results, quick)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    out = Table(title=f"foodorder bench --{name} ({results['mode']}, {results['machine']['cpus']} CPUs)")
    out.add_column("measure")
    for variant in variants:
        out.add_column(variant.label.replace("_", " "))
    for key in ("load_average", *shown, "restate_rss_mb", "total_rss_mb"):
        if any(key in results[variant.label] for variant in variants):
            out.add_row(key, *(str(results[variant.label].get(key, "-")) for variant in variants))
    console.print(out)
    return results


def run_replication(quick: bool, console: Console) -> dict[str, Any]:
    """The replication phases on one node and on a cluster of three, back to back.

    End to end runs at half the main bench's rate, so that a loaded machine still delivers every order.
    """
    base = QUICK if quick else FULL
    plan = replace(base, concurrency_levels=[16], e2e_orders_per_s=base.e2e_orders_per_s / 2)
    variants = [Variant(f"nodes_{nodes}", restate_nodes=nodes) for nodes in REPLICATION_NODES]
    shown = (*REPLICATION_FIGURES, "e2e_cpu_ms_per_order", "e2e_unfinished")
    return compare("replication", variants, replication_phases, plan, quick, console, shown)


def run_partitions(quick: bool, console: Console, counts: list[int]) -> dict[str, Any]:
    """The engine's ceiling and intake on one node with each partition count, back to back."""
    plan = replace(QUICK if quick else FULL, concurrency_levels=[16, 64])
    variants = [Variant(f"partitions_{n}", partitions=n) for n in counts]
    return compare("partitions", variants, engine_phases, plan, quick, console, ENGINE_FIGURES)


def table(results: dict[str, Any]) -> Table:
    """The headline figures, each beside its target where it has one."""
    from foodorder import bench_observability

    rows = [
        ("engine ceiling: no-op invocations/s", results["engine_noop_invocations_per_s"], ""),
        (
            "intake: orders/s accepted (best level)",
            results["intake_orders_per_s"],
            TARGETS["intake_orders_per_s"],
        ),
        ("intake: orders/s scheduled (paid for, best level)", results["intake_scheduled_per_s"], ""),
        ("intake: p99 ms at that level", results["intake_p99_ms"], TARGETS["intake_p99_ms"]),
        (
            f"intake: orders/s accepted at the best level whose p99 is within {INTAKE_P99_TARGET_MS} ms",
            "-"  # a run from before the figure existed
            if "intake_within_p99_target" not in results
            else "{orders_per_s} ({concurrency} concurrent, p99 {p99_ms} ms)".format_map(within)
            if (within := results["intake_within_p99_target"])
            else "none",
            TARGETS["intake_orders_per_s"],
        ),
        ("intake: share of the no-op ceiling", results["intake_share_of_ceiling"], ">= 0.5"),
        (
            "intake: CPU ms per accepted order: total (restate-server / services / gateway / payment stub)",
            "{total} ({restate-server} / {services} / {gateway} / {payment})".format_map(
                defaultdict(lambda: "-", results["intake_cpu_ms_per_order"])
            ),
            "",
        ),
        (
            "intake: CPU per accepted order, in multiples of the payment stub's (the machine's speed out)",
            results.get("intake_cpu_per_payment_stub_cpu", "-"),
            "",
        ),
        (
            "invocations per accepted order",
            results["invocations_per_accepted_order"],
            TARGETS["invocations_per_accepted_order"],
        ),
        (
            f"one region's matcher: offers/s, matches/s ({results['matcher']['deliveries']} deliveries)",
            f"{results['matcher']['offers_per_s']}, {results['matcher']['matches_per_s']}",
            "",
        ),
        ("end to end: delivered orders/s", results["e2e_orders_per_s"], ""),
        ("end to end: p50 / p99 s", f"{results['e2e_p50_s']} / {results['e2e_p99_s']}", ""),
        (
            "end to end: sustained orders/s (p99 within 2x of an order alone)",
            f"{results['e2e_sustained_orders_per_s']} (alone: {results['e2e_unloaded_s']} s)",
            "",
        ),
        (
            "Restate invocations per delivered order",
            results["invocations_per_order"],
            f"<= {results['seed_design_invocations_per_order'] / 2:.0f} (half the seed's)",
        ),
        (
            "system invocations per delivered order (all but the simulated phones)",
            results["system_invocations_per_order"],
            TARGETS["system_invocations_per_order"],
        ),
        (
            "system invocations per location report",
            results["invocations_per_location_report"],
            TARGETS["invocations_per_location_report"],
        ),
        (
            "Restate state bytes per delivered order",
            results["state_bytes_per_order"],
            TARGETS["state_bytes_per_order"],
        ),
        (
            f"intake p99 ms without / with {results['watchers']} watchers"
            f" ({results.get('watchers_intake_concurrency', 16)} concurrent)",
            f"{results['intake_p99_ms_without_watchers']} / {results['intake_p99_ms_with_watchers']}",
            "with <= 1.5x without",
        ),
        (
            "engine invocations/s for the watchers",
            results["watcher_invocations_per_s"],
            f"<= one reader per watched order ({results['one_poller_per_order_invocations_per_s']} polling)",
        ),
        *(
            (
                f"location points/s via {transport} (p50 / p99 lag ms)",
                f"{figures['points_per_s']} ({figures['p50_lag_ms']} / {figures['p99_lag_ms']})",
                TARGETS["location_points_per_s"],
            )
            for transport, figures in results["locations"].items()
        ),
        (
            "peak memory MB, whole stack: PSS (RSS)",
            "{} ({})".format(
                results.get("peak_pss_mb", {}).get("total", "-"), results["peak_rss_mb"]["total"]
            ),
            TARGETS["peak_pss_mb.total"],
        ),
        *bench_observability.rows(results["observability"]),
    ]
    out = Table(title=f"foodorder bench ({results['mode']}, {results['machine']['cpus']} CPUs)")
    for column in ("measure", "figure", "target"):
        out.add_column(column)
    for name, figure, target in rows:
        out.add_row(name, str(figure), target)
    return out


def write(results: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["| measure | figure |", "|---|---|"]
    for key, value in results.items():
        if key in ("intake", "machine", "e2e_levels", "services_servers"):
            continue
        lines.append(f"| {key} | {json.dumps(value) if isinstance(value, dict) else value} |")
    lines += [
        "",
        "| intake concurrency | orders/s accepted | p50 ms | p99 ms | failed | scheduled/s |",
        "|---|---|---|---|---|---|",
    ]
    for level in results["intake"]:
        lines.append(
            f"| {level['concurrency']} | {level['orders_per_s']} | {level['p50_ms']} | {level['p99_ms']} |"
            f" {level['failed']} | {level['scheduled_per_s']} |"
        )
    (RESULTS / "latest.md").write_text("\n".join(lines) + "\n")
