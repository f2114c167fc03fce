"""`foodorder bench`: throughput, latency, cost per order and memory, beside the engine's own ceiling.

It starts a stack of its own on free ports, runs five phases against it, and writes
bench/results/latest.json and latest.md. The load generator runs on the same machine, so every
figure is next to the engine ceiling measured in the same run.

`--replication` instead runs the engine ceiling, intake and end-to-end phases twice, back to back:
on one restate-server and on a replicated cluster of three (bench/results/replication.json).
"""

import asyncio
import contextlib
import itertools
import json
import multiprocessing
import platform
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
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
from foodorder.config import DEV_DRIVER_KEY, DEV_PROVIDER_KEY, Settings
from foodorder.models import MAX_DELAY_MS, Status
from foodorder.stack import Stack, on_free_ports

RESULTS = Path("bench/results")
ORDER = {"restaurantId": "bites_n_bytes", "products": [{"productId": "1000", "quantity": 1}]}
TARGETS = {
    "intake_orders_per_s": ">= 300",
    "intake_p99_ms": "<= 100",
    "location_points_per_s": ">= 1000",
    "state_bytes_per_order": "<= 4096",
    "peak_rss_mb.total": "<= 1536",
}


@dataclass
class Plan:
    """How long and how hard each phase runs."""

    seconds: float
    concurrency_levels: list[int]
    location_drivers: int
    e2e_drivers: int
    e2e_orders_per_s: float
    points_per_batch: int = 10
    watchers: int = 1000
    watched_orders: int = 100
    watched_moving: int = 20


QUICK = Plan(
    seconds=5, concurrency_levels=[1, 16, 64], location_drivers=20, e2e_drivers=60, e2e_orders_per_s=4
)
FULL = Plan(
    seconds=20,
    concurrency_levels=[1, 8, 16, 32, 64],
    location_drivers=50,
    e2e_drivers=150,
    e2e_orders_per_s=8,
)
# The seed's design spends, per step of a driver, one invocation to move and three per location
# point (twin, delivery manager, order-status), and one per second per idle phone polling for work.
SEED_INVOCATIONS_PER_STEP = 4
# Drivers of the location phase whose points only measure the lag (the others carry the load).
PROBES = 2


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
    """Samples the resident memory of every process of the stack; keeps each one's peak."""

    def __init__(self, stack: Stack) -> None:
        self.stack, self.peaks_mb = stack, dict.fromkeys(stack.processes, 0.0)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self.stopped.wait(0.5):
            for name, process in self.stack.processes.items():
                if process.popen is None:
                    continue
                try:
                    rss = psutil.Process(process.popen.pid).memory_info().rss / 2**20
                except psutil.Error:
                    continue
                self.peaks_mb[name] = max(self.peaks_mb[name], rss)

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
                auth = {"Authorization": f"Bearer {DEV_PROVIDER_KEY}"}
                async with http.stream("GET", f"/api/v1/orders/{ref}/events", headers=auth) as response:
                    first = True
                    async for line in response.aiter_lines():
                        if line.startswith("id:"):
                            with events.get_lock():
                                events.value += 1
                            if first:
                                with started.get_lock():
                                    started.value += 1
                                first = False

            tasks = [asyncio.ensure_future(watch(refs[n % len(refs)])) for n in range(streams)]
            await asyncio.to_thread(stopping.wait)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


class Bench:
    """The phases, against one stack."""

    def __init__(self, stack: Stack, plan: Plan, progress: Progress) -> None:
        self.s, self.plan, self.progress = stack.settings, plan, progress
        gateway = stack.processes["gateway"].popen
        self.gateway_pid = gateway.pid if gateway else 0
        # Few connections: with many, httpx's pool burns the load generator's CPU, not the stack's.
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        self.ingress = httpx.AsyncClient(base_url=self.s.ingress_url, timeout=30, limits=limits)
        self.api = httpx.AsyncClient(base_url=self.s.gateway_url, timeout=30, limits=limits)
        self.admin = httpx.AsyncClient(base_url=self.s.admin_url, timeout=30)
        self.results: dict[str, Any] = {}

    async def close(self) -> None:
        for client in (self.ingress, self.api, self.admin):
            await client.aclose()

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

    async def invocations(self) -> dict[str, int]:
        rows = await self.sql("SELECT target_service_name AS s, count(*) AS n FROM sys_invocation GROUP BY 1")
        return {row["s"]: int(row["n"]) for row in rows}

    async def submit(self, ref: str, delay_ms: int = 0) -> bool:
        body = {"id": ref, **ORDER, "deliveryDelay": delay_ms}
        headers = {"Authorization": f"Bearer {DEV_PROVIDER_KEY}"}
        response = await self.api.post("/api/v1/orders", json=body, headers=headers)
        return response.status_code == 202

    # 1. The engine's ceiling --------------------------------------------------------------

    async def engine(self) -> None:
        async def noop(_: int) -> bool:
            return (await self.ingress.post("/engine-probe/noop")).is_success

        best = Run()
        for concurrency in (8, 32):
            done = self.phase(f"engine ceiling, no-op handler, {concurrency} concurrent", self.plan.seconds)
            run = await closed_loop(noop, concurrency, self.plan.seconds)
            done()
            best = max(best, run, key=lambda r: r.per_s)
        self.results["engine_noop_invocations_per_s"] = round(best.per_s, 1)
        self.results["engine_noop_p99_ms"] = round(best.p(99), 1)

    # 2. Intake ------------------------------------------------------------------------------

    async def intake(self) -> None:
        levels, before = [], await self.invocations()
        for concurrency in self.plan.concurrency_levels:
            done = self.phase(f"intake, {concurrency} concurrent providers", self.plan.seconds)
            # Due in a week: these orders are accepted and charged, then wait, out of the other phases' way.
            run = await closed_loop(self.intake_request(concurrency), concurrency, self.plan.seconds)
            done()
            levels.append(
                {
                    "concurrency": concurrency,
                    "orders_per_s": round(run.per_s, 1),
                    "p50_ms": round(run.p(50), 1),
                    "p99_ms": round(run.p(99), 1),
                    "failed": run.failed,
                }
            )
        best = max(levels, key=lambda level: level["orders_per_s"])
        accepted = sum(level["orders_per_s"] * self.plan.seconds for level in levels)
        spent = sum((await self.invocations()).values()) - sum(before.values())
        self.results["intake_invocations_per_order"] = round(spent / accepted, 1)
        self.results["intake"] = levels
        self.results["intake_orders_per_s"] = best["orders_per_s"]
        self.results["intake_p99_ms"] = best["p99_ms"]
        self.results["intake_best_concurrency"] = best["concurrency"]

    def intake_request(self, concurrency: int) -> Callable[[int], Awaitable[bool]]:
        async def request(n: int) -> bool:
            return await self.submit(f"intake-{concurrency}-{n}", MAX_DELAY_MS)

        return request

    # 2b. Intake beside watchers ----------------------------------------------------------------

    async def watchers(self) -> None:
        """Intake p99 without and with many open event streams on active orders, and their engine cost.

        The watched orders: some with a driver reporting a location every second (each report is
        a change to stream), the rest scheduled for later (quiet).
        """
        drivers = [f"watched-driver-{i}" for i in range(self.plan.watched_moving)]
        headers = {"Authorization": f"Bearer {DEV_DRIVER_KEY}"}
        for driver in drivers:
            await self.api.post(f"/api/v1/drivers/{driver}/availability", headers=headers)
        moving = [f"watched-moving-{i}" for i in range(len(drivers))]
        quiet = [f"watched-quiet-{i}" for i in range(self.plan.watched_orders - len(moving))]
        for ref in moving:
            await self.submit(ref)
        for ref in quiet:
            await self.submit(ref, MAX_DELAY_MS)
        await self.until_status(moving, "WAITING_FOR_DRIVER", timeout_s=120)
        carried = await self.assignments(drivers, moving)
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

        async def intake(label: str) -> tuple[Run, float]:
            """Intake at 16 concurrent, and the gateway's CPU (cores) meanwhile."""
            seconds = self.plan.seconds * 2  # twice the intake phase's: a p99 of more samples
            done = self.phase(f"intake at 16 concurrent, {label}", seconds)
            cpu = sum(gateway.cpu_times()[:2])
            run = await closed_loop(lambda n: self.submit(f"watchers-{label}-{n}", MAX_DELAY_MS), 16, seconds)
            done()
            return run, (sum(gateway.cpu_times()[:2]) - cpu) / run.elapsed_s

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
        without_p99 = (before_streams.p(99) + after_streams.p(99)) / 2
        elapsed = with_watchers.elapsed_s
        self.results["watchers"] = self.plan.watchers
        self.results["watched_orders"] = len(refs)
        self.results["intake_p99_ms_without_watchers"] = round(without_p99, 1)
        self.results["intake_p99_ms_without_watchers_before_after"] = [
            round(before_streams.p(99), 1),
            round(after_streams.p(99), 1),
        ]
        self.results["intake_p99_ms_with_watchers"] = round(with_watchers.p(99), 1)
        self.results["intake_p99_ratio_with_watchers"] = round(with_watchers.p(99) / without_p99, 2)
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
        """order-status invocations made for event streams, by handler."""
        rows = await self.sql(
            "SELECT target_handler_name AS h, count(*) AS n FROM sys_invocation"
            " WHERE target_service_name = 'order-status'"
            " AND target_handler_name IN ('waitForEvents', 'addWatcher', 'getEvents') GROUP BY 1"
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
        for driver in drivers:
            await self.api.post(f"/api/v1/drivers/{driver}/availability", headers=headers)
        refs = [f"locations-{transport}-{i}" for i in range(len(drivers))]
        for ref in refs:
            await self.submit(ref)
        await self.until_status(refs, "WAITING_FOR_DRIVER", timeout_s=120)
        order_of = await self.assignments(drivers, refs)
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

    # 4. End to end ----------------------------------------------------------------------------

    async def end_to_end(self, stack: Stack) -> None:
        stack.start_drivers(self.plan.e2e_drivers)
        await asyncio.sleep(2)
        before = await self.invocations()
        window = self.plan.seconds * 4
        done = self.phase(f"end to end, {self.plan.e2e_orders_per_s:g} orders/s", window)
        refs, submissions, interval = [], [], 1 / self.plan.e2e_orders_per_s
        started = time.monotonic()
        for n in itertools.count():
            if time.monotonic() - started >= window:
                break
            refs.append(f"e2e-{n}")
            submissions.append(asyncio.ensure_future(self.submit(refs[-1])))
            await asyncio.sleep(max(0.0, started + (n + 1) * interval - time.monotonic()))
        await asyncio.gather(*submissions)
        done()
        drain = self.phase("end to end, waiting for the last deliveries", 120)
        await self.until_status(refs, "DELIVERED", timeout_s=300)
        drain()
        after = await self.invocations()
        durations, first, last = [], float("inf"), 0
        for row in await self.sql(
            introspection.ORDER_HISTORIES + " AND service_key LIKE 'dev-provider:e2e-%'"
        ):
            history = json.loads(row["value_utf8"])
            durations.append((history[-1]["at"] - history[0]["at"]) / 1000)
            first, last = min(first, history[0]["at"]), max(last, history[-1]["at"])
        spent = {name: after.get(name, 0) - before.get(name, 0) for name in after}
        self.results["e2e_orders"] = len(refs)
        self.results["e2e_orders_per_s"] = round(len(refs) / ((last - first) / 1000), 2)
        self.results["e2e_p50_s"] = round(percentile(durations, 50), 2)
        self.results["e2e_p99_s"] = round(percentile(durations, 99), 2)
        self.results["invocations_per_order"] = round(sum(spent.values()) / len(refs), 1)
        self.results["invocations_per_order_by_service"] = {
            name: round(n / len(refs), 1) for name, n in sorted(spent.items()) if n
        }
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
        by_service = {row["service_name"]: row["bytes"] / len(refs) for row in stored}
        self.results["state_bytes_per_order"] = round(sum(by_service.values()))
        self.results["state_bytes_per_order_by_service"] = {
            k: round(v) for k, v in sorted(by_service.items())
        }
        self.results["e2e_time_scale"] = self.s.time_scale
        self.results["e2e_drivers"] = self.plan.e2e_drivers


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
            driver_search_timeout_s=3600,
            # One load generator, one key: the public limits would stop the bench, not measure it.
            api_rate_limit="1000000/second",
            streams_per_address=100_000,
            streams_per_key=100_000,
            streams_total=100_000,
            location_transport="kafka",  # the location phase compares it with the ingress
        )
    )


async def run_phases(stack: Stack, plan: Plan, progress: Progress) -> dict[str, Any]:
    bench = Bench(stack, plan, progress)
    try:
        await bench.engine()
        await bench.intake()
        await bench.watchers()
        await bench.locations(stack)
        await bench.end_to_end(stack)
    finally:
        await bench.close()
    return bench.results


Phases = Callable[[Stack, Plan, Progress], Coroutine[Any, Any, dict[str, Any]]]


def on_fresh_stack(phases: Phases, plan: Plan, console: Console, restate_nodes: int = 1) -> dict[str, Any]:
    """Run `phases` on a stack of its own; their results, with each process's peak memory."""
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
                results = asyncio.run(phases(stack, plan, progress))
        finally:
            stack.stop()
    peaks = {name: round(mb, 1) for name, mb in memory.peaks_mb.items()}
    results["peak_rss_mb"] = {**peaks, "total": round(sum(peaks.values()), 1)}
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
    """Run every phase on a fresh stack; write and print the results."""
    results = on_fresh_stack(run_phases, QUICK if quick else FULL, console)
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


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """The CPU time (user and system) each process of the stack has used so far."""
    used = {}
    for name, process in stack.processes.items():
        if process.popen is not None:
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(process.popen.pid).cpu_times()
                used[name] = times.user + times.system
    return used


async def replication_phases(stack: Stack, plan: Plan, progress: Progress) -> dict[str, Any]:
    """The phases that show what replication costs: the engine's ceiling, intake, end to end.

    Also the CPU each process spent per delivered order during the end-to-end phase. An end-to-end
    phase whose orders are not all delivered in time is reported as such, beside the other figures.
    """
    bench = Bench(stack, plan, progress)
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
        orders = bench.results["e2e_orders"]
        cpu_ms = {name: round((after[name] - before.get(name, 0.0)) * 1000 / orders) for name in after}
        figures["e2e_cpu_ms_per_order"] = cpu_ms | {"total": sum(cpu_ms.values())}
    return figures


def run_replication(quick: bool, console: Console) -> dict[str, Any]:
    """The same phases on one node and on a cluster of three, back to back; write and print both.

    End to end runs at half the main bench's rate, so that a loaded machine still delivers every order.
    """
    base = QUICK if quick else FULL
    plan = replace(base, concurrency_levels=[16], e2e_orders_per_s=base.e2e_orders_per_s / 2)
    results: dict[str, Any] = {
        f"nodes_{nodes}": on_fresh_stack(replication_phases, plan, console, nodes)
        for nodes in REPLICATION_NODES
    }
    for figures in results.values():
        peaks = figures.pop("peak_rss_mb")
        figures["restate_rss_mb"] = round(sum(mb for name, mb in peaks.items() if name.startswith("restate")))
        figures["total_rss_mb"] = round(peaks["total"])
    stamp(results, quick)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "replication.json").write_text(json.dumps(results, indent=2) + "\n")
    out = Table(title=f"foodorder bench --replication ({results['mode']}, {results['machine']['cpus']} CPUs)")
    out.add_column("measure")
    for nodes in REPLICATION_NODES:
        out.add_column(f"{nodes} node{'s' if nodes > 1 else ''}")
    for key in (
        "load_average",
        *REPLICATION_FIGURES,
        "restate_rss_mb",
        "total_rss_mb",
        "e2e_cpu_ms_per_order",
        "e2e_unfinished",
    ):
        out.add_row(key, *(str(results[f"nodes_{nodes}"].get(key, "-")) for nodes in REPLICATION_NODES))
    console.print(out)
    return results


def table(results: dict[str, Any]) -> Table:
    """The headline figures, each beside its target where it has one."""
    rows = [
        ("engine ceiling: no-op invocations/s", results["engine_noop_invocations_per_s"], ""),
        ("intake: orders/s (best level)", results["intake_orders_per_s"], TARGETS["intake_orders_per_s"]),
        ("intake: p99 ms at that level", results["intake_p99_ms"], TARGETS["intake_p99_ms"]),
        ("end to end: delivered orders/s", results["e2e_orders_per_s"], ""),
        ("end to end: p50 / p99 s", f"{results['e2e_p50_s']} / {results['e2e_p99_s']}", ""),
        (
            "Restate invocations per delivered order",
            results["invocations_per_order"],
            f"<= {results['seed_design_invocations_per_order'] / 2:.0f} (half the seed's)",
        ),
        (
            "Restate state bytes per delivered order",
            results["state_bytes_per_order"],
            TARGETS["state_bytes_per_order"],
        ),
        (
            f"intake p99 ms without / with {results['watchers']} watchers",
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
        ("peak RSS MB, whole stack", results["peak_rss_mb"]["total"], TARGETS["peak_rss_mb.total"]),
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
        if key in ("intake", "machine"):
            continue
        lines.append(f"| {key} | {json.dumps(value) if isinstance(value, dict) else value} |")
    lines += ["", "| intake concurrency | orders/s | p50 ms | p99 ms | failed |", "|---|---|---|---|---|"]
    for level in results["intake"]:
        lines.append(
            f"| {level['concurrency']} | {level['orders_per_s']} | {level['p50_ms']} | {level['p99_ms']} |"
            f" {level['failed']} |"
        )
    (RESULTS / "latest.md").write_text("\n".join(lines) + "\n")
