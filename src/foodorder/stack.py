"""Start and stop the whole system: restate-server, the Kafka broker, the services endpoint and the stubs.

`foodorder up`, the test fixtures, and later the chaos and bench runs all use this one place.
"""

import ctypes
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO

import httpx

from foodorder import identity, subscription
from foodorder.clients import kafka
from foodorder.config import Settings
from foodorder.external import broker

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In a child, before exec: get SIGTERM when the parent dies, so no process is left behind."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def on_free_ports(settings: Settings) -> Settings:
    """The same settings with every port moved to one nobody listens on (beside a running `make up`)."""
    ports = ("ingress", "admin", "node", "services", "pos", "payment", "gateway", "kafka")
    return settings.model_copy(update={f"{name}_port": free_port() for name in ports})


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as FOODORDER_* variables, so that child processes see the same configuration."""
    return {
        f"FOODORDER_{name.upper()}": value if isinstance(value, str) else json.dumps(value)
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
        self.popen = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT if self.log else None,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
        """Ask the process to stop, and kill it if it does not within `timeout_s`."""
        if not self.alive:
            return
        assert self.popen is not None
        self.popen.send_signal(sig)
        try:
            self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


@dataclass
class Stack:
    """The processes of one foodorder system, all on `settings`' ports and data directory."""

    settings: Settings
    node_modules: Path = Path("node_modules")
    log_dir: Path | None = None
    extra_restate_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)
    broker_run: str | None = None  # names the embedded broker's current start (its consumer group)
    subscribed_run: str | None = None  # the broker_run Restate's subscription was made for

    def _log(self, name: str) -> IO[bytes] | None:
        if self.log_dir is None:
            return None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return open(self.log_dir / f"{name}.log", "ab")

    def _add(self, name: str, argv: list[str], env: dict[str, str]) -> Process:
        process = Process(name, argv, {**os.environ, **env}, self._log(name))
        self.processes[name] = process
        process.start()
        return process

    def _restate_env(self) -> dict[str, str]:
        s = self.settings
        config = resources.files("foodorder").joinpath("data/restate.toml")
        return {
            "RESTATE_CONFIG": str(config),
            "RESTATE_BASE_DIR": str((s.data_dir / "restate").resolve()),
            "RESTATE_INGRESS__BIND_ADDRESS": f"{s.host}:{s.ingress_port}",
            "RESTATE_ADMIN__BIND_ADDRESS": f"{s.host}:{s.admin_port}",
            "RESTATE_BIND_ADDRESS": f"{s.host}:{s.node_port}",
            "RESTATE_ADVERTISED_ADDRESS": f"http://{s.host}:{s.node_port}",
            "RESTATE_LISTEN_MODE": "tcp",
            "RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE": str(
                s.identity_key_file.resolve()
            ),
            **self.extra_restate_env,
        }

    def restate_server_binary(self) -> Path:
        """The platform binary that npm installed (not the node shim, so signals reach the server)."""
        found = sorted(self.node_modules.glob("@restatedev/restate-server-*/bin/restate-server"))
        if not found:
            raise FileNotFoundError(f"no restate-server under {self.node_modules}: run `make setup` first")
        return found[0]

    def start_restate(self) -> None:
        """Start restate-server and wait until its admin API answers."""
        self._add("restate-server", [str(self.restate_server_binary()), "--no-logo"], self._restate_env())
        self._wait_restate()

    def _wait_restate(self) -> None:
        wait_until(lambda: httpx.get(f"{self.settings.admin_url}/health").is_success, "restate-server admin")
        wait_until(
            lambda: httpx.get(f"{self.settings.ingress_url}/restate/health").is_success, "restate ingress"
        )

    def python_ports(self) -> dict[str, int]:
        """Our own processes (`foodorder <command>`) and the port each one answers on."""
        s = self.settings
        return {
            "services": s.services_port,
            "payment": s.payment_port,
            "pos": s.pos_port,
            "gateway": s.gateway_port,
        }

    def kill(self, name: str) -> None:
        """Kill the process `name` at once (SIGKILL, no goodbye), start it again, wait until it answers."""
        process = self.processes[name]
        process.stop(signal.SIGKILL)
        if name == "broker":  # a broker that starts empty needs a new subscription (subscription.py)
            self.start_broker()
            self.subscribe_locations()
            return
        process.start()
        if name == "restate-server":
            self._wait_restate()
        else:
            wait_until(functools.partial(_listening, self.settings.host, self.python_ports()[name]), name)

    def start_python(self, command: str) -> None:
        """Start one of our own processes (`foodorder <command>`)."""
        argv = [sys.executable, "-m", "foodorder.cli", command]
        self._add(command, argv, settings_env(self.settings))

    def start_all(self) -> None:
        """Start every process, wait until each answers, and register the services with Restate."""
        s = self.settings
        every_port = (s.ingress_port, s.admin_port, s.node_port, s.services_port, s.payment_port, s.pos_port)
        broker_port = [s.kafka_port] if s.embedded_broker else []
        if taken := [
            port for port in (*every_port, s.gateway_port, *broker_port) if _listening(s.host, port)
        ]:
            raise RuntimeError(f"ports {taken} on {s.host} are in use: is another foodorder running?")
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        identity.ensure_private_key(self.settings.identity_key_file)
        self.settings = self.settings.model_copy(
            update={"request_identity_keys": [identity.public_key(self.settings.identity_key_file)]}
        )
        self.start_restate()
        self.start_broker()
        # On a restart the twins are known already: subscribing now lets the consumer join while the
        # services start, so that the phones are heard again as soon as the timers fire.
        if httpx.get(f"{s.admin_url}/services/driver-digital-twin").is_success:
            self.subscribe_locations()
        for command in self.python_ports():
            self.start_python(command)
        for name, port in self.python_ports().items():
            wait_until(functools.partial(_listening, self.settings.host, port), name)
        self.register()
        self.subscribe_locations()

    def register(self) -> None:
        """Register (again) the services endpoint, so Restate picks up code changes."""
        response = httpx.post(
            f"{self.settings.admin_url}/deployments",
            json={"uri": self.settings.services_url, "force": True},
            timeout=30,
        )
        response.raise_for_status()

    def start_broker(self) -> None:
        """Start the embedded Kafka broker if locations go through it, and create driver-updates there.

        Restate's subscription to the broker's previous run is deleted first: it must never read this
        run, whose offsets start again at 0 (see subscription.py).
        """
        s = self.settings
        subscription.unsubscribe(s.admin_url)
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
            subscription.subscribe(self.settings, self.broker_run)
            self.subscribed_run = self.broker_run or ""

    def start_drivers(self, count: int) -> list[str]:
        """Start `count` simulated drivers (driver-1 …), or put them back on duty after a restart."""
        drivers = [f"driver-{i}" for i in range(1, count + 1)]
        for driver in drivers:
            # No idempotency key: every start must reach the phone, which makes a repeat harmless.
            response = httpx.post(f"{self.settings.ingress_url}/driver-mobile-app/{driver}/startDriver/send")
            response.raise_for_status()
        return drivers

    def failed(self) -> list[str]:
        """Names of processes that exited."""
        return [name for name, p in self.processes.items() if not p.alive]

    def stop(self) -> None:
        """Stop every process: restate-server first, so that it stops invoking the others."""
        for process in self.processes.values():
            process.stop()
            if process.log:
                process.log.close()
        self.processes.clear()


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0
