"""Start and stop the whole system: restate-server, the Kafka broker, the services endpoint and the stubs.

`foodorder up`, the test fixtures, and later the chaos and bench runs all use this one place.
"""

import contextlib
import ctypes
import functools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO

import httpx

from foodorder import cluster, identity, releases, subscription, telemetry
from foodorder.catalog import load_catalog
from foodorder.clients import kafka
from foodorder.config import Settings, env_name
from foodorder.external import broker
from foodorder.releases import Deployment

PR_SET_PDEATHSIG = 1
RUN_PORTS = range(20000, 32768)  # where runs of ports for a cluster's nodes are picked (see on_free_ports)
STOP_TIMEOUT_S = 15.0


def die_with(parent: int, sig: int = signal.SIGTERM) -> None:
    """In a child (before exec, or a server's worker): get `sig` when the parent dies; none is left behind."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent:  # the parent died before the line above could take effect
        os._exit(1)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def on_free_ports(settings: Settings) -> Settings:
    """The same settings with every port moved to one nobody listens on (beside a running `make up`)."""
    ports = ("ingress", "admin", "node", "services", "pos", "payment", "gateway", "kafka", "receiver")
    # Each Restate node takes the port after the previous node's, so those ports come in runs.
    runs = {
        "ingress": settings.restate_nodes,
        "admin": settings.restate_nodes,
        "node": settings.restate_nodes,
    }
    # All held at once while they are picked: one after the other, the kernel may hand out a port twice.
    with contextlib.ExitStack() as held:
        chosen = {f"{name}_port": _hold_free_run(held, runs.get(name, 1)) for name in ports}
    return settings.model_copy(update=chosen)


def _hold_free_run(held: contextlib.ExitStack, length: int) -> int:
    """The first of `length` consecutive free ports, each bound by a socket in `held` until it closes.

    A single port is the kernel's choice. A run (a cluster's nodes) comes from below the kernel's
    ephemeral range (32768 and up by default), where no client connection can take one of its ports
    as its own end between the moment they are picked and the moment each node binds its own.
    """
    if length == 1:
        single = held.enter_context(socket.socket())
        single.bind(("127.0.0.1", 0))
        return int(single.getsockname()[1])
    while True:
        start = random.randrange(RUN_PORTS.start, RUN_PORTS.stop - length)
        with contextlib.ExitStack() as attempt:
            try:
                for port in range(start, start + length):
                    attempt.enter_context(socket.socket()).bind(("127.0.0.1", port))
            except OSError:
                continue  # one of them is taken: try another run
            held.enter_context(attempt.pop_all())
            return start


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as FOODORDER_* variables, so that child processes see the same configuration."""
    return {
        env_name(name): value if isinstance(value, str) else json.dumps(value)
        for name, value in settings.model_dump(mode="json").items()
        if value is not None
    }


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    """Poll `check` until it returns True; raise naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout_s:.0f}s")


@dataclass
class Process:
    """One child process of the stack."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: IO[bytes] | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # The kernel sends the death signal when the *thread* that forked the child ends, not the
        # process: a child started from a short-lived thread would be stopped with that thread.
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError(f"start {self.name} from the main thread, or it dies with its thread")
        self.popen = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT if self.log else None,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=functools.partial(die_with, os.getpid()),
        )

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def send(self, sig: int = signal.SIGTERM) -> None:
        """Send `sig` if the process runs."""
        if self.alive:
            assert self.popen is not None
            self.popen.send_signal(sig)

    def wait(self, deadline: float) -> None:
        """Wait for the process to exit until `deadline` (monotonic), then kill it."""
        if self.popen is None:
            return
        try:
            self.popen.wait(max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Ask the process to stop, and kill it if it does not within `timeout_s`."""
        self.send(sig)
        self.wait(time.monotonic() + timeout_s)

    def log_tail(self, lines: int = 20) -> str:
        """The last `lines` of the process's log (what it said before it exited), or where it went."""
        if self.log is None:
            return "(its output went to the terminal)"
        text = Path(self.log.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Stack:
    """The processes of one foodorder system, all on `settings`' ports and data directory."""

    settings: Settings
    node_modules: Path = Path("node_modules")
    log_dir: Path | None = None
    extra_restate_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)
    release: str = ""  # the release served on the services port, set by start_all
    release_processes: dict[str, str] = field(default_factory=dict)  # deployment id -> process name
    broker_run: str | None = None  # names the embedded broker's current start (its consumer group)
    subscribed_run: str | None = None  # the broker_run Restate's subscription was made for

    def _log(self, name: str) -> IO[bytes] | None:
        if self.log_dir is None:
            return None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return open(self.log_dir / f"{name}.log", "ab")

    def _add(self, name: str, argv: list[str], env: dict[str, str]) -> Process:
        # Our settings reach a child only through `env`, so that it inherits no secret it does not use.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("FOODORDER_")}
        process = Process(name, argv, {**inherited, **env}, self._log(name))
        self.processes[name] = process
        process.start()
        return process

    @property
    def admin_url(self) -> str:
        """The admin API of the first Restate node the stack runs: it talks to its own nodes directly,
        whatever address the other processes are given for them (FOODORDER_RESTATE_ADMIN_URLS)."""
        return self.settings.local_admin_urls[0]

    def _restate_env(self, index: int) -> dict[str, str]:
        s = self.settings
        config = resources.files("foodorder").joinpath("data/restate.toml")
        return {
            "RESTATE_CONFIG": str(config),
            **cluster.node_env(s, index),
            "RESTATE_LISTEN_MODE": "tcp",
            "RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE": str(
                s.identity_key_file.resolve()
            ),
            **self.tracing_env(),
            **self.extra_restate_env,
        }

    def tracing_env(self) -> dict[str, str]:
        """restate-server's invocation traces go where ours go (FOODORDER_OTLP_ENDPOINT), over OTLP/HTTP."""
        endpoint = self.settings.otlp_endpoint
        if not endpoint:
            return {}
        # Its invocation traces ("services" in its terms), not the engine's own internals ("runtime").
        return {"RESTATE_TRACING_SERVICES_ENDPOINT": telemetry.restate_tracing_endpoint(endpoint)}

    def restate_server_binary(self) -> Path:
        """The platform binary that npm installed (not the node shim, so signals reach the server)."""
        found = sorted(self.node_modules.glob("@restatedev/restate-server-*/bin/restate-server"))
        if not found:
            raise FileNotFoundError(f"no restate-server under {self.node_modules}: run `make setup` first")
        return found[0]

    def restatectl(self) -> cluster.Restatectl:
        """restatectl from node_modules, pointed at every node."""
        found = sorted(self.node_modules.glob("@restatedev/restatectl-*/bin/restatectl"))
        if not found:
            raise FileNotFoundError(f"no restatectl under {self.node_modules}: run `make setup` first")
        return cluster.Restatectl(found[0], self.settings.node_urls)

    def describe_cluster(self) -> list[str]:
        """A line per Restate node (name, address, state, partitions); none for the single node."""
        if self.settings.restate_nodes == 1:
            return []
        ctl = self.restatectl()
        return cluster.describe(ctl.nodes(), ctl.partitions())

    def start_restate(self) -> None:
        """Start restate-server (every node of the cluster at once) and wait until it takes invocations."""
        names = cluster.node_names(self.settings)
        for index, name in enumerate(names):
            self._add(name, [str(self.restate_server_binary()), "--no-logo"], self._restate_env(index))
        self._wait_restate(names)

    def _wait_restate(self, names: list[str]) -> None:
        """Wait until the nodes `names` answer, and the cluster is whole again (a node may fail next)."""
        s = self.settings
        # A cluster comes up in steps (the metadata group forms, then the logs, then the partitions'
        # leaders): on a loaded machine that takes far longer than one node's start.
        timeout_s = 60.0 if s.restate_nodes == 1 else 240.0
        for name in names:
            index = cluster.node_names(s).index(name)
            process = self.processes[name]
            for url, what in (
                (f"{s.local_admin_urls[index]}/health", "admin"),
                (f"{s.local_ingress_urls[index]}/restate/health", "ingress"),
            ):
                wait_until(functools.partial(_answers, url, process), f"{name} {what}", timeout_s)
        if s.restate_nodes > 1:
            ctl = self.restatectl()
            wait_until(
                functools.partial(ctl.whole, s.restate_nodes),
                "restate cluster (every node a metadata member, every partition led and replicated)",
                timeout_s,
            )
        # The releases are planned from what the partitions know of the invocations.
        wait_until(
            lambda: releases.Admin(self.admin_url).pinned() is not None, "restate partitions", timeout_s
        )

    def python_ports(self) -> dict[str, int]:
        """Our own processes (`foodorder <command>`) and the port each one answers on."""
        s = self.settings
        # The webhook receiver stub runs only where a provider's webhook points at it.
        receiver = {"receiver": s.receiver_port} if s.receiver_wanted else {}
        # A payment provider or POS with a URL of its own (FOODORDER_PAYMENT_URL …) runs elsewhere.
        stubs = {
            name: port for name, port in (("payment", s.payment_port), ("pos", s.pos_port)) if name in s.stubs
        }
        return {"services": s.services_port, **stubs, **receiver, "gateway": s.gateway_port}

    def kill(self, name: str) -> None:
        """Kill the process `name` at once (SIGKILL, no goodbye), start it again, wait until it answers."""
        self.processes[name].stop(signal.SIGKILL)
        self.start_again(name)

    def start_again(self, name: str) -> None:
        """Start the stopped process `name` again and wait until it answers."""
        process = self.processes[name]
        if name == "broker":  # a broker that starts empty needs a new subscription (subscription.py)
            self.start_broker()
            self.subscribe_locations()
            return
        process.start()
        if name in cluster.node_names(self.settings):
            self._wait_restate([name])
        else:
            wait_until(functools.partial(_listening, self.bind_host(name), self.python_ports()[name]), name)

    def restart(self, name: str, env: dict[str, str]) -> None:
        """Stop one of our own processes gently, start it again with `env` added, wait until it answers."""
        process = self.processes[name]
        process.stop()
        process.env.update(env)
        self.start_again(name)

    def start_python(self, command: str) -> None:
        """Start one of our own processes (`foodorder <command>`)."""
        argv = [sys.executable, "-m", "foodorder.cli", command]
        self._add(command, argv, settings_env(self.settings.without_secrets(command)))

    def bind_host(self, name: str) -> str:
        """The address the process `name` listens on: only the gateway is public."""
        return self.settings.public_host if name == "gateway" else self.settings.host

    def start_all(self) -> None:
        """Start every process, wait until each answers, and register the services with Restate."""
        s = self.settings
        broker_port = [s.kafka_port] if s.embedded_broker else []
        taken = [
            port
            for name, port in (*(("restate", p) for p in s.restate_ports), *self.python_ports().items())
            if _listening(self.bind_host(name), port)
        ]
        taken += [port for port in broker_port if _listening(s.host, port)]
        if taken:
            raise RuntimeError(f"ports {taken} are in use: is another foodorder running?")
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        identity.ensure_private_key(self.settings.identity_key_file)
        self.settings = self.settings.model_copy(
            update={
                "request_identity_keys": list(
                    dict.fromkeys(
                        [identity.public_key(self.settings.identity_key_file), *s.request_identity_keys]
                    )
                )
            }
        )
        self.start_restate()
        self.start_broker()
        # On a restart the twins are known already: subscribing now lets the consumer join while the
        # services start, so that the phones are heard again as soon as the timers fire.
        if httpx.get(f"{self.admin_url}/services/driver-digital-twin").is_success:
            self.subscribe_locations()
        self.start_releases()
        for command in self.python_ports():
            if command not in ("services", "gateway"):
                self.start_python(command)
        wait_until(functools.partial(_listening, self.settings.host, self.settings.services_port), "services")
        self.register()
        self.subscribe_locations()
        # The public door opens last: once it answers, new orders run on this code.
        self.start_python("gateway")
        for name, port in self.python_ports().items():
            wait_until(functools.partial(_listening, self.bind_host(name), port), name)

    def start_releases(self) -> None:
        """Serve this code on the services port, and each older release still needed on a port of its own."""
        s = self.settings
        self.release = releases.snapshot(s.data_dir)
        admin = releases.Admin(self.admin_url)
        for deployment in admin.drained():  # superseded in an earlier run and finished since
            self._retire(admin, deployment)
        deployments = admin.deployments()
        releases.prune(s.data_dir, self.release, deployments)
        taken = {d.address[1] for d in deployments} | set(s.restate_ports)
        taken |= set(self.python_ports().values())
        for deployment in deployments:
            if deployment.release is None:
                continue  # not ours, or from before releases (see register)
            port = deployment.address[1]
            if port == s.services_port and deployment.release == self.release:
                continue  # this code again: served as the current release below
            if port == s.services_port:  # the previous release: it moves, the current one takes its port
                port = releases.spare_port(s.services_port, lambda p: p not in taken and _bindable(s.host, p))
                taken.add(port)
            self.release_processes[deployment.id] = self._serve_release(deployment.release, port)
            if port != deployment.address[1]:
                wait_until(functools.partial(_listening, s.host, port), f"release {deployment.release}")
                admin.move(deployment.id, f"http://{s.host}:{port}")
        self._serve_release(self.release, s.services_port, "services")

    def _serve_release(self, release: str, port: int, name: str = "") -> str:
        """Start `foodorder services` on `port` from the release's own copy of the code; its process name."""
        s = self.settings
        code = releases.code_path(s.data_dir, release)
        if not code.exists():
            raise RuntimeError(f"invocations in flight need release {release}, but its code {code} is gone")
        if not _bindable(s.host, port):
            raise RuntimeError(f"port {port} of release {release} is in use: is another foodorder running?")
        name = name or f"services-{release}"
        if name in self.processes:  # the same code served twice (it came back while it was draining)
            name = f"{name}-{port}"
        env = settings_env(s.without_secrets("services").model_copy(update={"services_port": port}))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code.resolve()), os.environ.get("PYTHONPATH")]))
        # -P: never import foodorder from the current directory instead of the release.
        self._add(name, [sys.executable, "-P", "-m", "foodorder.cli", "services"], env)
        return name

    def register(self) -> None:
        """Register the current release beside older ones (again: a no-op); new invocations go to it."""
        s = self.settings
        admin = releases.Admin(self.admin_url)
        # A deployment on the services port without a release was registered before releases
        # existed: it is replaced, as every start did then.
        legacy = any(
            d.release is None and d.address == (s.host, s.services_port) for d in admin.deployments()
        )
        self.release_processes[admin.register(s.services_url, self.release, replace=legacy)] = "services"

    def retire_drained(self) -> list[Deployment]:
        """Retire every older release that nothing needs any more; the ones retired."""
        admin = releases.Admin(self.admin_url)
        drained = admin.drained()
        for deployment in drained:
            self._retire(admin, deployment)
        return drained

    def _retire(self, admin: releases.Admin, deployment: Deployment) -> None:
        """Delete the deployment, stop its process, and remove its code unless another deployment runs it."""
        admin.delete(deployment.id)
        if name := self.release_processes.pop(deployment.id, None):
            self._stop([self.processes.pop(name)])
        releases.prune(self.settings.data_dir, self.release, admin.deployments())

    def start_broker(self) -> None:
        """Start the embedded Kafka broker if locations go through it, and create driver-updates there.

        Restate's subscription to the broker's previous run is deleted first: it must never read this
        run, whose offsets start again at 0 (see subscription.py).
        """
        s = self.settings
        subscription.unsubscribe(self.admin_url)
        if s.location_transport != "kafka":
            return
        if s.embedded_broker:
            self.broker_run = str(time.time_ns())
            if "broker" in self.processes:
                self.processes["broker"].start()
            else:
                self._add("broker", broker.argv(s), {})
            wait_until(functools.partial(_listening, s.host, s.kafka_port), "kafka broker")
        kafka.create_topic_blocking(s.kafka_servers)

    def subscribe_locations(self) -> None:
        """Have Restate deliver driver-updates to the twins (once per start of the broker)."""
        if self.settings.location_transport == "kafka" and self.subscribed_run != (self.broker_run or ""):
            subscription.subscribe(self.admin_url, self.settings, self.broker_run)
            self.subscribed_run = self.broker_run or ""

    def start_drivers(self, count: int) -> list[str]:
        """Start `count` simulated drivers (driver-1 …) spread over the catalog's regions in turn, or
        put them back on duty after a restart."""
        regions = [r.id for r in load_catalog().regions]
        drivers = [f"driver-{i}" for i in range(1, count + 1)]
        for i, driver in enumerate(drivers):
            # No idempotency key: every start must reach the phone, which makes a repeat harmless.
            response = httpx.post(
                f"{self.settings.local_ingress_urls[0]}/driver-mobile-app/{driver}/startDriver/send",
                json=regions[i % len(regions)],
            )
            response.raise_for_status()
        return drivers

    def failed(self) -> list[str]:
        """Names of processes that exited."""
        return [name for name, p in self.processes.items() if not p.alive]

    def stop(self) -> None:
        """Stop every process: restate-server first, so that it stops invoking the others, then the rest."""
        engine = [p for p in self.processes.values() if p.name in cluster.node_names(self.settings)]
        self._stop(engine)
        self._stop([p for p in self.processes.values() if p not in engine])
        self.processes.clear()
        self.release_processes.clear()

    @staticmethod
    def _stop(processes: list[Process]) -> None:
        """Stop `processes` side by side: ask each, then kill any still running after STOP_TIMEOUT_S."""
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in processes:
            process.send()
        for process in processes:
            process.wait(deadline)
            if process.log:
                process.log.close()


def _answers(url: str, process: Process) -> bool:
    """Whether `url` answers; an error at once if `process`, which should answer there, has exited."""
    if not process.alive:
        raise RuntimeError(f"{process.name} exited before it answered; its log ends:\n{process.log_tail()}")
    return httpx.get(url).is_success


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _bindable(host: str, port: int) -> bool:
    """Whether a server could listen on the port now (no listener, and no connection's end on it)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True
