"""`foodorder chaos`: orders under crashes and injected faults, then an audit of every order.

It starts a stack of its own on free ports, has the payment provider and the POS disturb a share of
their answers, submits orders through the public API while it kills (SIGKILL) the services endpoint
every few seconds and restate-server, the POS, the payment provider and the Kafka broker (which
carries the drivers' locations) and the webhook receiver once each, restarting each.
Then every order must end in a final status with its money right: one capture and the price for a
delivered order, nothing for any other, no order prepared twice; and the provider's webhook must have
received the order's every status once, in order, ending in its final status.

With `--restate-nodes n` (n > 1) the stack runs a replicated Restate cluster, and the chaos kills its
nodes instead, one at a time: each stays down for a while (the orders must keep moving meanwhile)
and comes back before the next one goes down. It reports the longest time no order changed status.
"""

import asyncio
import contextlib
import itertools
import json
import secrets
import signal
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from foodorder import cluster, introspection
from foodorder.config import DEV_PROVIDER_KEY, ProviderWebhook, Settings
from foodorder.models import Status
from foodorder.stack import Stack, on_free_ports

ORDER = {"restaurantId": "bites_n_bytes", "products": [{"productId": "1000", "quantity": 1}]}
PRICE = 1090
STUBS = ("payment", "pos", "receiver")
PROVIDER = "dev-provider"


@dataclass
class Plan:
    """How much load and how much trouble."""

    orders: int = 200
    fault_rate: float = 0.3
    kill_every_s: float = 4.0
    orders_per_s: float = 5.0
    drivers: int = 20
    settle_timeout_s: float = 600.0
    restate_nodes: int = 1
    node_down_s: float = 10.0  # how long a killed Restate node of a cluster stays down


@dataclass
class Report:
    """What happened, and what the audit found."""

    orders: int
    kills: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    duplicated_charges: list[str] = field(default_factory=list)
    wrong_money: list[str] = field(default_factory=list)
    duplicated_preparations: list[str] = field(default_factory=list)
    wrong_webhooks: list[str] = field(default_factory=list)
    # Each time a Restate node of a cluster was down: its name, and from when until when (epoch ms).
    outages: list[tuple[str, int, int]] = field(default_factory=list)
    moves_during_outages: list[int] = field(default_factory=list)  # status changes in each outage
    longest_pause_ms: int = 0  # the longest time while the nodes were killed that no order moved
    endings: Counter[str] = field(default_factory=Counter)  # why orders ended other than DELIVERED

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated_charges
            or self.wrong_money
            or self.duplicated_preparations
            or self.wrong_webhooks
        )

    def table(self) -> Table:
        out = Table(title="foodorder chaos: " + ("no loss, no duplicate" if self.ok else "FAILED"))
        out.add_column("measure")
        out.add_column("figure")
        rows = [
            ("orders", str(self.orders)),
            ("kills per process", ", ".join(f"{k} {n}" for k, n in sorted(self.kills.items()))),
            ("faults injected", ", ".join(f"{k} {n}" for k, n in sorted(self.faults.items())) or "0"),
            ("terminal per status", ", ".join(f"{k} {n}" for k, n in sorted(self.statuses.items()))),
            ("why not delivered", "; ".join(f"{k}: {n}" for k, n in self.endings.most_common(5)) or "-"),
            ("lost (not in a final status)", str(len(self.lost))),
            ("duplicated charges", str(len(self.duplicated_charges))),
            ("money not right", str(len(self.wrong_money))),
            ("duplicated preparations", str(len(self.duplicated_preparations))),
            ("status webhooks not every status once, in order", str(len(self.wrong_webhooks))),
        ]
        if self.outages:
            rows += [
                (
                    "status changes while a node was down",
                    ", ".join(
                        f"{name} {(end - start) / 1000:.1f} s: {moves}"
                        for (name, start, end), moves in zip(
                            self.outages, self.moves_during_outages, strict=True
                        )
                    ),
                ),
                ("longest time no order changed status", f"{self.longest_pause_ms / 1000:.1f} s"),
            ]
        for name, figure in rows:
            out.add_row(name, figure)
        return out


def chaos_settings(data_dir: Path, plan: Plan) -> Settings:
    """Free ports, the stubs disturbing answers, short HTTP timeouts so that timeouts cost little.

    The provider's status webhook goes to the receiver stub, which is disturbed like the others.
    """
    settings = on_free_ports(
        Settings(
            data_dir=data_dir,
            restate_nodes=plan.restate_nodes,
            drivers=plan.drivers,
            time_scale=20,
            driver_speed_mps=60,
            fault_rate=plan.fault_rate,
            http_timeout_s=2,
        )
    )
    webhook = ProviderWebhook(url=settings.receiver_endpoint(PROVIDER), secret=secrets.token_hex(16))
    return settings.model_copy(update={"provider_webhooks": {PROVIDER: webhook}})


def collect_faults(stack: Stack, report: Report) -> None:
    """Add up the faults a stub injected (its counters start again at zero when it restarts)."""
    for name in STUBS:
        port = stack.python_ports()[name]
        with contextlib.suppress(httpx.HTTPError):
            report.faults.update(httpx.get(f"http://{stack.settings.host}:{port}/faults", timeout=5).json())


def crash(stack: Stack, plan: Plan, report: Report, submitting: threading.Thread) -> None:
    """Kill the services endpoint every few seconds, and each other process once, restarting each.

    The broker forgets the locations it held: phones that keep driving report again within seconds.

    This runs on the main thread: a child gets SIGTERM when the thread that started it ends.
    """
    once = [
        "restate-server",
        "pos",
        "payment",
        "receiver",
        *(["broker"] if "broker" in stack.processes else []),
    ]
    while submitting.is_alive() or once:
        time.sleep(plan.kill_every_s)
        for name in ["services", once.pop(0)] if once else ["services"]:
            if name in STUBS:
                collect_faults(stack, report)
            stack.kill(name)
            report.kills[name] += 1


def crash_nodes(stack: Stack, plan: Plan, report: Report, submitting: threading.Thread) -> None:
    """Kill one Restate node at a time, keep it down a while, restart it and wait until the cluster is whole.

    Every node goes down at least once, and the kills go on while orders are submitted. This runs on the
    main thread, like `crash`.
    """
    nodes = cluster.node_names(stack.settings)
    for turn in itertools.count():
        if turn >= len(nodes) and not submitting.is_alive():
            return
        time.sleep(plan.kill_every_s)
        name = nodes[turn % len(nodes)]
        killed = time.time_ns() // 1_000_000
        stack.processes[name].stop(signal.SIGKILL)
        report.kills[name] += 1
        time.sleep(plan.node_down_s)  # down on purpose: the other nodes must carry the orders meanwhile
        started = time.time_ns() // 1_000_000
        stack.start_again(name)
        report.outages.append((name, killed, started))


def read_histories(rows: introspection.Rows, keys: list[str], report: Report) -> None:
    """From the orders' histories: why orders ended other than DELIVERED, the status changes during
    each outage, and the longest time during the outages that no order moved."""
    histories = [json.loads(row["value_utf8"]) for row in rows if row["service_key"] in keys]
    report.endings.update(
        f"{history[-1]['status']}, {history[-1].get('reason') or 'no reason'}"
        for history in histories
        if history[-1]["status"] != Status.DELIVERED
    )
    moments = sorted(change["at"] for history in histories for change in history)
    report.moves_during_outages = [
        sum(start <= at <= end for at in moments) for _, start, end in report.outages
    ]
    if report.outages:
        first, last = report.outages[0][1], report.outages[-1][2]
        during = [first, *(at for at in moments if first < at < last), last]
        report.longest_pause_ms = max(b - a for a, b in itertools.pairwise(during))


async def submit_all(settings: Settings, plan: Plan, progress: Progress) -> list[str]:
    """Submit the orders at a steady rate; a submission that fails (a crash) is retried, same id."""
    refs = [f"chaos-{n}" for n in range(plan.orders)]
    task = progress.add_task("submitting orders", total=plan.orders)
    headers = {"Authorization": f"Bearer {DEV_PROVIDER_KEY}"}
    async with httpx.AsyncClient(base_url=settings.gateway_url, headers=headers, timeout=30) as api:

        async def submit(ref: str) -> None:
            for _ in range(600):
                try:
                    response = await api.post("/api/v1/orders", json={"id": ref, **ORDER})
                    if response.status_code in (200, 202):
                        progress.advance(task)
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)
            raise RuntimeError(f"order {ref} could not be submitted")

        pending = []
        for ref in refs:
            pending.append(asyncio.ensure_future(submit(ref)))
            await asyncio.sleep(1 / plan.orders_per_s)
        await asyncio.gather(*pending)
    return refs


def histories(settings: Settings, timeout_s: float = 60) -> introspection.Rows:
    """Every order's history of statuses (rows of ORDER_HISTORIES).

    A cluster's query fails (500) while one of its partitions changes leader, and a node that is
    being killed refuses it or cuts its answer off: it is asked again, of the next node.
    """
    deadline = time.monotonic() + timeout_s
    nodes = itertools.cycle(settings.admin_urls)
    while True:
        try:
            return introspection.query_blocking(next(nodes), introspection.ORDER_HISTORIES)
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def settle(settings: Settings, keys: list[str], plan: Plan, progress: Progress) -> dict[str, Status]:
    """Wait until every order is in a final status (or the time is up); the statuses seen last."""
    task = progress.add_task("waiting for every order to end", total=len(keys))
    deadline = time.monotonic() + plan.settle_timeout_s
    while True:
        seen = introspection.latest_statuses(histories(settings))
        done = sum(1 for key in keys if key in seen and seen[key].terminal)
        progress.update(task, completed=done)
        if done == len(keys) or time.monotonic() > deadline:
            return seen
        time.sleep(1)


def statuses(settings: Settings) -> dict[str, list[str]]:
    """Every order's statuses in the order they happened, by its workflow key."""
    return {
        row["service_key"]: [e["status"] for e in json.loads(row["value_utf8"])]
        for row in histories(settings)
    }


def received(settings: Settings) -> dict[str, list[str]]:
    """The statuses the provider's webhook received for each order (each event once), by workflow key."""
    events = httpx.get(f"{settings.receiver_url}/events", params={"provider": PROVIDER}, timeout=30).json()
    by_order: dict[str, list[str]] = {}
    for event in events["events"]:
        if event["type"] == "order.status":
            by_order.setdefault(f"{PROVIDER}:{event['orderId']}", []).append(event["status"])
    return by_order


def settle_webhooks(
    settings: Settings, keys: list[str], plan: Plan, progress: Progress
) -> dict[str, list[str]]:
    """Wait until the webhook received every order's history (or the time is up); what it received."""
    task = progress.add_task("waiting for the status webhooks", total=len(keys))
    deadline = time.monotonic() + plan.settle_timeout_s
    while True:
        wanted, got = statuses(settings), received(settings)
        done = sum(1 for key in keys if got.get(key) == wanted.get(key))
        progress.update(task, completed=done)
        if done == len(keys) or time.monotonic() > deadline:
            return got
        time.sleep(1)


def audit(settings: Settings, keys: list[str], seen: dict[str, Status], report: Report) -> None:
    """Every order ended, its money and preparations are right, its webhook heard every status in order."""
    ledger = httpx.get(f"{settings.payment_url}/ledger", timeout=30).json()["entries"]
    preparations = httpx.get(f"{settings.pos_url}/preparations", timeout=30).json()["preparations"]
    operations: dict[str, Counter[str]] = {key: Counter() for key in keys}
    net: Counter[str] = Counter()
    for entry in ledger:
        if entry["orderId"] in operations and entry["outcome"] == "ok":
            operations[entry["orderId"]][entry["operation"]] += 1
            net[entry["orderId"]] += {"capture": 1, "refund": -1}.get(entry["operation"], 0) * entry["amount"]
    prepared = Counter(p["orderId"] for p in preparations)
    for key in keys:
        status = seen.get(key)
        report.statuses[status.value if status else "missing"] += 1
        if status is None or not status.terminal:
            report.lost.append(key)
        if operations[key]["authorize"] > 1 or operations[key]["capture"] > 1:
            report.duplicated_charges.append(key)
        if net[key] != (PRICE if status == Status.DELIVERED else 0):
            report.wrong_money.append(key)
        if prepared[key] > 1:
            report.duplicated_preparations.append(key)
    wanted, got = statuses(settings), received(settings)
    for key in keys:
        if not got.get(key) or got.get(key) != wanted.get(key) or Status(got[key][-1]) != seen.get(key):
            report.wrong_webhooks.append(key)


def run(plan: Plan, console: Console) -> Report:
    """Run the chaos on a fresh stack and audit every order."""
    report = Report(orders=plan.orders)
    logs = Path(tempfile.mkdtemp(prefix="foodorder-chaos-logs-"))
    console.print(f"process logs: {logs}")
    with tempfile.TemporaryDirectory(prefix="foodorder-chaos-") as tmp:
        stack = Stack(chaos_settings(Path(tmp), plan), log_dir=logs)
        try:
            console.print("starting a stack on free ports…")
            stack.start_all()
            stack.start_drivers(plan.drivers)
            settings = stack.settings
            refs: list[str] = []
            with Progress(console=console) as progress:
                submitting = threading.Thread(
                    target=lambda: refs.extend(asyncio.run(submit_all(settings, plan, progress)))
                )
                submitting.start()
                (crash_nodes if plan.restate_nodes > 1 else crash)(stack, plan, report, submitting)
                submitting.join()
                keys = [f"dev-provider:{ref}" for ref in refs]
                seen = settle(settings, keys, plan, progress)
                settle_webhooks(settings, keys, plan, progress)
            collect_faults(stack, report)
            audit(settings, keys, seen, report)
            read_histories(histories(settings), keys, report)
        finally:
            stack.stop()
    console.print(report.table())
    for name, keys in (
        ("lost", report.lost),
        ("duplicated charges", report.duplicated_charges),
        ("money not right", report.wrong_money),
        ("duplicated preparations", report.duplicated_preparations),
        ("status webhooks", report.wrong_webhooks),
    ):
        if keys:
            console.print(f"[red]{name}:[/] {', '.join(keys[:20])}")
    return report
