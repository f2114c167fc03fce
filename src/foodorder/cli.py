"""The `foodorder` command: run the whole system, or one of its processes."""

import argparse
import signal
import sys
import time
from collections.abc import Callable

import httpx
from pydantic import ValidationError
from rich.console import Console

from foodorder import cluster, telemetry
from foodorder.config import (
    DEV_DRIVER_KEY,
    DEV_OPS_PASSWORD,
    DEV_PROVIDER_KEY,
    DEV_RESTAURANT_KEY,
    DEV_WEBHOOK_SECRET,
    ProviderWebhook,
    Settings,
    env_name,
    get_settings,
    problems,
)
from foodorder.releases import DRAIN_CHECK_INTERVAL_S, Admin
from foodorder.serve import serve, serve_granian, spare_long_lived_heap
from foodorder.stack import Stack

DEV_PROVIDER = "dev-provider"
console = Console(soft_wrap=True, highlight=False)
SAMPLE_API_ORDER = (
    '{"id":"order-1","restaurantId":"bites_n_bytes","products":[{"productId":"1000","quantity":2}]}'
)
SAMPLE_ORDER = (
    '{"id":"seed-1","restaurantId":"bites_n_bytes","products":[{"productId":"1000",'
    '"description":"Pepperoni pizza","quantity":1}],"totalCost":10.9,"deliveryDelay":0}'
)


def run_services(settings: Settings) -> None:
    """The Restate services endpoint (HTTP/2, :9080)."""
    from foodorder.services import create_app

    if settings.services_server == "granian":
        serve_granian(
            "foodorder.services:app_from_environment",
            settings.host,
            settings.services_port,
            settings.services_workers,
        )
    else:
        serve(create_app(settings), settings.host, settings.services_port)


def run_payment(settings: Settings) -> None:
    """The payment provider stub (:5060)."""
    from foodorder.external.payment import create_app

    serve(create_app(settings), settings.host, settings.payment_port)


def run_pos(settings: Settings) -> None:
    """The restaurant POS stub (:5050)."""
    from foodorder.external.pos import create_app

    serve(create_app(settings), settings.host, settings.pos_port)


def run_receiver(settings: Settings) -> None:
    """The webhook receiver stub (:5070)."""
    from foodorder.external.receiver import create_app

    serve(create_app(settings), settings.host, settings.receiver_port)


def run_gateway(settings: Settings) -> None:
    """The public API and web pages (:3000)."""
    from foodorder.gateway.app import create_app

    spare_long_lived_heap()
    serve(create_app(settings), settings.public_host, settings.gateway_port, settings.client_timeout_s)


def location_path(settings: Settings) -> str:
    """Where drivers' locations go, in words."""
    if settings.location_transport == "ingress":
        return "sent on the Restate ingress (FOODORDER_LOCATION_TRANSPORT=ingress)"
    where = "the embedded broker" if settings.embedded_broker else "an external cluster"
    return f"Kafka topic driver-updates on {settings.kafka_servers} ({where})"


def print_banner(settings: Settings, drivers: list[str], nodes: list[str]) -> None:
    """Tell the user where everything is and how to look inside (`nodes`: the Restate cluster, described)."""
    s = settings
    restate_nodes = (
        f"""
  Restate cluster      {len(nodes)} nodes, log and partitions on {cluster.REPLICATION} of them \
(any node's ingress takes orders):
    """
        + "\n    ".join(nodes)
        if nodes
        else ""
    )
    ledger = f"   (ledger: {s.payment_url}/ledger)" if "payment" in s.stubs else ""
    dev_keys = (
        f"""
Dev API keys (Authorization: Bearer <key>): provider {DEV_PROVIDER_KEY}, \
restaurant {DEV_RESTAURANT_KEY}, driver {DEV_DRIVER_KEY}; /ops password {DEV_OPS_PASSWORD}"""
        if s.dev_mode
        else ""
    )
    console.print(f"""
[bold green]foodorder is up[/] (time scale {s.time_scale:g}, {len(drivers)} simulated drivers)

  order food           {s.gateway_url}/   (operations: {s.gateway_url}/ops, user ops)
  public API           {s.gateway_url}/api/v1   (OpenAPI: {s.gateway_url}/docs)
  Restate ingress      {", ".join(s.ingress_urls)}
  Restate UI / admin   {", ".join(s.admin_urls)}{restate_nodes}
  services endpoint    {s.services_url}
  restaurant POS       {s.pos_url}{origin(s, "pos")}
  payment provider     {s.payment_url}{origin(s, "payment")}{ledger}{webhooks_banner(s)}
  driver locations     {location_path(s)}
  metrics              {s.gateway_url}/metrics (user ops), restate-server's: http://{s.host}:{s.node_port}/metrics
  traces               {s.otlp_endpoint or "off (FOODORDER_OTLP_ENDPOINT: an OTLP/HTTP receiver)"}{dev_keys}

Place an order through the public API:
  curl -X POST {s.gateway_url}/api/v1/orders -H 'authorization: Bearer {DEV_PROVIDER_KEY}' \\
    -H 'content-type: application/json' -d '{SAMPLE_API_ORDER}'
  curl -H 'authorization: Bearer {DEV_PROVIDER_KEY}' {s.gateway_url}/api/v1/orders/order-1
  curl -N -H 'authorization: Bearer {DEV_PROVIDER_KEY}' {s.gateway_url}/api/v1/orders/order-1/events
or the seed's way, on the Restate ingress:
  curl -X POST {s.ingress_url}/order-workflow/seed-1/run/send -H 'content-type: application/json' \\
    -d '{SAMPLE_ORDER}'
  curl -X POST {s.ingress_url}/order-status/seed-1/get
Inspect state:
  npx restate kv get order-workflow seed-1
  npx restate invocations list
  npx restate sql "select target, status from sys_invocation where status != 'completed'"

Process logs: {s.data_dir / "logs"}/<process>.log. Ctrl-C stops everything.""")


def origin(settings: Settings, system: str) -> str:
    """After an outside system's URL in the banner: whether it is our stub or the setting's URL."""
    return "   (stub)" if system in settings.stubs else f"   ({env_name(f'{system}_url_setting')})"


def webhooks_banner(settings: Settings) -> str:
    """Where the providers' status webhooks go, in lines of the banner."""
    lines = [
        f"\n  status webhooks      {provider} -> {w.url}"
        for provider, w in settings.provider_webhooks.items()
    ]
    if settings.receiver_wanted:
        lines.append(f"\n  webhook receiver     {settings.receiver_url}/events   (what it received)")
    if DEV_WEBHOOK_SECRET in {w.secret for w in settings.provider_webhooks.values()}:
        lines.append(f"\n  webhook secret       {DEV_WEBHOOK_SECRET} ({DEV_PROVIDER}, both directions)")
    return "".join(lines)


def retire_drained(stack: Stack) -> None:
    """Retire the older releases that no invocation needs any more, and say so."""
    try:
        retired = stack.retire_drained()
    except httpx.HTTPError as error:  # restate-server busy or restarting: try again next time
        console.print(f"[yellow]could not check for drained releases: {error}[/]")
        return
    for deployment in retired:
        console.print(f"release {deployment.release} drained: retired (deployment {deployment.id})")


def print_releases(settings: Settings) -> None:
    """List the live releases of the services: the current one, older ones still finishing invocations."""
    admin = Admin(settings.admin_url)
    newest, pinned = admin.newest(), admin.pinned()
    console.print("releases (version, address, Restate deployment, state):")
    for deployment in admin.deployments():
        if deployment.release is not None:
            in_flight = pinned.get(deployment.id, 0)
            state = "current" if deployment.id in newest else f"draining, {in_flight} invocations in flight"
            console.print(f"  {deployment.release}  {deployment.uri}  {deployment.id}  {state}")


def with_dev_webhook(settings: Settings) -> Settings:
    """Without webhooks of your own, in development: the dev provider's webhook is the receiver stub."""
    if (
        settings.provider_webhooks
        or not settings.dev_mode
        or DEV_PROVIDER not in settings.provider_keys.values()
    ):
        return settings
    webhook = ProviderWebhook(url=settings.receiver_endpoint(DEV_PROVIDER), secret=DEV_WEBHOOK_SECRET)
    return settings.model_copy(update={"provider_webhooks": {DEV_PROVIDER: webhook}})


def up(settings: Settings) -> None:
    """Start the whole system in the foreground until Ctrl-C or SIGTERM."""
    settings = with_dev_webhook(settings)
    stack = Stack(settings, log_dir=settings.data_dir / "logs")
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        console.print("starting restate-server, the services, the gateway and the stubs…")
        stack.start_all()
        drivers = stack.start_drivers(settings.drivers)
        print_banner(settings, drivers, stack.describe_cluster())
        print_releases(settings)
        next_drain_check = time.monotonic() + DRAIN_CHECK_INTERVAL_S
        while not stopping:
            if failed := stack.failed():
                console.print(f"[bold red]{', '.join(failed)} exited; stopping[/]")
                break
            if time.monotonic() > next_drain_check:
                retire_drained(stack)
                next_drain_check = time.monotonic() + DRAIN_CHECK_INTERVAL_S
            time.sleep(0.5)
    finally:
        console.print("stopping…")
        stack.stop()


COMMANDS: dict[str, Callable[[Settings], None]] = {
    "up": up,
    "releases": print_releases,
    "services": run_services,
    "payment": run_payment,
    "pos": run_pos,
    "receiver": run_receiver,
    "gateway": run_gateway,
}

# The commands that run one process of the system (the others talk to a person on a terminal).
PROCESSES = ("services", "payment", "pos", "gateway")


def bench(
    quick: bool, observability: bool = False, replication: bool = False, partitions: list[int] | None = None
) -> None:
    """Measure throughput, latency, cost per order and memory on a stack of its own."""
    from foodorder import bench as benchmark
    from foodorder import bench_observability

    if observability:
        bench_observability.standalone(quick, console)
    elif replication:
        benchmark.run_replication(quick, console)
    elif partitions:
        benchmark.run_partitions(quick, console, partitions)
    else:
        benchmark.run(quick, console)


def chaos(orders: int, fault_rate: float, kill_every_s: float, restate_nodes: int) -> None:
    """Crash every process and inject faults under load, then check every order and its money."""
    from foodorder import chaos as chaos_run

    plan = chaos_run.Plan(
        orders=orders, fault_rate=fault_rate, kill_every_s=kill_every_s, restate_nodes=restate_nodes
    )
    if not chaos_run.run(plan, console).ok:
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `foodorder` command."""
    parser = argparse.ArgumentParser(prog="foodorder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, fn in COMMANDS.items():
        sub.add_parser(name, help=(fn.__doc__ or "").strip())
    bench_parser = sub.add_parser("bench", help=(bench.__doc__ or "").strip())
    bench_parser.add_argument("--quick", action="store_true", help="short phases (about a minute and a half)")
    bench_parser.add_argument(
        "--observability", action="store_true", help="only the cost of tracing and of /ops at 10,000 orders"
    )
    bench_parser.add_argument(
        "--replication",
        action="store_true",
        help="engine ceiling, intake and end to end on 1 restate-server node, then on a cluster of 3",
    )
    bench_parser.add_argument(
        "--partitions",
        type=int,
        nargs="+",
        metavar="N",
        help="engine ceiling and intake on 1 node with each number of restate-server partitions",
    )
    chaos_parser = sub.add_parser("chaos", help=(chaos.__doc__ or "").strip())
    chaos_parser.add_argument("--orders", type=int, default=200, help="orders to submit (default 200)")
    chaos_parser.add_argument(
        "--fault-rate", type=float, default=0.3, help="share of the stubs' answers disturbed (default 0.3)"
    )
    chaos_parser.add_argument(
        "--kill-every", type=float, default=4.0, help="seconds between kills of the services (default 4)"
    )
    chaos_parser.add_argument(
        "--restate-nodes",
        type=int,
        default=1,
        help="run a replicated Restate cluster of this many nodes and kill one node at a time (default 1)",
    )
    args = parser.parse_args(argv)
    if args.command == "bench":
        bench(args.quick, args.observability, args.replication, args.partitions)
    elif args.command == "chaos":
        chaos(args.orders, args.fault_rate, args.kill_every, args.restate_nodes)
    else:
        try:
            settings = get_settings()
        except ValidationError as error:
            # A setting that is unsafe or wrong: say which, without a traceback.
            sys.exit(f"foodorder {args.command}: refusing to start: {problems(error)}")
        if args.command in PROCESSES:
            telemetry.setup(settings, args.command)
        COMMANDS[args.command](settings)


if __name__ == "__main__":
    main(sys.argv[1:])
