"""Safe to run in public: streams that end and share one reader, caps that answer 429, proxies
believed only when trusted, slow clients cut off, and each process holding only its secrets."""

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from foodorder import introspection
from foodorder.config import DEV_PROVIDER_KEY, DEV_STOREFRONT_KEY
from foodorder.models import MAX_DELAY_MS, Status
from foodorder.stack import Stack
from tests.integration.conftest import Api, Client, api_order, running_stack, stack_settings

GATEWAY = "127.0.0.2"  # the public address in these tests (still loopback: nothing leaves the machine)
PROXY = "127.0.0.3"  # a trusted reverse proxy
STRANGER = "127.0.0.4"  # anyone else
RATE_KEY = "rate-test-key"
RATE_WINDOW_S = 60  # the limits below are per minute
CART = {"restaurantId": "bites_n_bytes", "products": [{"productId": "1000", "quantity": 1}]}


@pytest.fixture(scope="module")
def public(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack with its gateway on its own address, low limits and short timeouts."""
    settings = stack_settings(tmp_path_factory.mktemp("public")).model_copy(
        update={
            "public_host": GATEWAY,
            "trusted_proxies": [PROXY],
            "streams_per_address": 2,
            "streams_per_key": 3,
            "streams_total": 10,
            "stream_max_s": 10,
            "stream_keepalive_s": 0.5,
            "storefront_rate_limit": "4/minute",
            "api_rate_limit": "30/minute",
            "client_timeout_s": 2,
            "drivers": 0,
        }
    )
    settings.provider_keys[RATE_KEY] = "rate-tester"
    with running_stack(settings, "public") as stack:
        yield stack


def client(stack: Stack, source: str) -> httpx.Client:
    """An HTTP client of the gateway whose connections come from `source`, without keep-alive."""
    transport = httpx.HTTPTransport(local_address=source, limits=httpx.Limits(max_keepalive_connections=0))
    return httpx.Client(base_url=stack.settings.gateway_url, transport=transport, timeout=30)


def via_proxy(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": f"198.51.100.99, {address}"}


def scheduled_order(stack: Stack) -> str:
    """An order that stays SCHEDULED for the whole test (its delivery is due in a week)."""
    order = api_order(deliveryDelay=MAX_DELAY_MS)
    with client(stack, PROXY) as http:
        response = http.post(
            "/api/v1/orders", json=order, headers={"Authorization": f"Bearer {DEV_PROVIDER_KEY}"}
        )
    assert response.status_code == 202, response.text
    return str(order["id"])


@contextmanager
def open_stream(
    http: httpx.Client, path: str, headers: dict[str, str] | None = None
) -> Iterator[httpx.Response]:
    with http.stream("GET", path, headers=headers or {}) as response:
        yield response


def clear_of_window_edge(margin_s: float = 10) -> None:
    """Wait, if need be, until a burst of calls ends before the rate limits' window changes.

    The gateway counts over sliding windows of a minute aligned to the clock (`limits`' sliding-window
    counters): a burst that straddled a minute's edge would be weighted partly as the minute before.
    """
    while RATE_WINDOW_S - time.time() % RATE_WINDOW_S < margin_s:
        time.sleep(0.1)


def assert_too_many(response: httpx.Response, words: str) -> None:
    response.read()
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["content-type"] == "application/json"
    assert words in response.json()["detail"]


# 1. Streams that end and cost little ----------------------------------------------------------


def test_a_stream_of_a_delivered_order_sends_the_final_status_and_ends(api: Api) -> None:
    order = api_order()
    assert api.request("POST", "/api/v1/orders", json=order).status_code == 202
    api.wait_for(order["id"], Status.DELIVERED)
    everything = api.events(order["id"])

    past_the_end = api.events(order["id"], last_event_id="999999.999999")
    at_the_end = api.events(order["id"], last_event_id=everything[-1]["id"])

    assert at_the_end == [everything[-1]]
    # The client's own position comes back as the id: resuming from it again gives the same answer.
    assert past_the_end == [{**everything[-1], "id": "999999.999999"}]
    assert everything[-1]["data"]["status"] == "DELIVERED"


def test_a_garbage_last_event_id_starts_from_the_first_event(api: Api) -> None:
    order = api_order()
    assert api.request("POST", "/api/v1/orders", json=order).status_code == 202
    api.wait_for(order["id"], Status.DELIVERED)

    with api.http.stream(
        "GET",
        f"/api/v1/orders/{order['id']}/events",
        headers={"Authorization": f"Bearer {DEV_PROVIDER_KEY}", "Last-Event-ID": "not-a-number"},
    ) as response:
        ids = [line.removeprefix("id: ") for line in response.iter_lines() if line.startswith("id: ")]

    assert response.status_code == 200
    assert ids[0] == "1.0"  # the first status (CREATED), before any ETA


def test_a_quiet_stream_sends_keep_alives_and_ends_after_its_lifetime(public: Stack) -> None:
    ref = scheduled_order(public)
    with (
        client(public, PROXY) as http,
        open_stream(
            http,
            f"/api/v1/orders/{ref}/events",
            {"Authorization": f"Bearer {DEV_PROVIDER_KEY}", **via_proxy("203.0.113.1")},
        ) as response,
    ):
        lines = list(response.iter_lines())  # returns once the gateway ends the stream

    assert response.status_code == 200
    assert any(line.startswith("id: ") for line in lines)  # the order's events so far came first
    assert ": keep-alive" in lines
    assert not any("DELIVERED" in line for line in lines)


def test_many_watchers_of_an_order_share_one_reader(public: Stack) -> None:
    with client(public, PROXY) as http:
        checkout = http.post(
            "/store/checkout", json={**CART, "deliveryDelay": MAX_DELAY_MS}, headers=via_proxy("203.0.113.9")
        )
    assert checkout.status_code == 201, checkout.text
    ref = checkout.json()["id"]
    with Client(public.settings) as auditor:
        auditor.wait_for(f"storefront:{ref}", Status.SCHEDULED)  # no change comes while it is watched
    readers = []
    with ExitStack() as streams:
        for i in range(4):  # two per address, within the caps
            http = streams.enter_context(client(public, PROXY))
            path = f"/store/orders/{ref}/events"
            response = streams.enter_context(open_stream(http, path, via_proxy(f"203.0.113.{10 + i // 2}")))
            assert response.status_code == 200
            readers.append(response.iter_lines())  # kept: a dropped reader closes its stream
            next(readers[-1])  # the stream is open and has been served
        reads = introspection.query_blocking(
            public.settings.admin_url,
            "SELECT target_handler_name AS handler FROM sys_invocation WHERE target IN"
            f" ('order-workflow/storefront:{ref}/waitForStatus',"
            f" 'order-status/storefront:{ref}/waitForEvents')",
        )

    # One reader of the statuses and one of the tracking, each waiting once (or twice, as one wait
    # answered and the next began).
    waits = Counter(read["handler"] for read in reads)
    assert set(waits) == {"waitForStatus", "waitForEvents"} and max(waits.values()) <= 2, reads


# 2. Limits --------------------------------------------------------------------------------------


def test_open_streams_are_capped_per_address_and_per_key(public: Stack) -> None:
    ref = scheduled_order(public)
    path = f"/api/v1/orders/{ref}/events"
    auth = {"Authorization": f"Bearer {DEV_PROVIDER_KEY}"}
    with ExitStack() as streams:
        http = streams.enter_context(client(public, PROXY))
        for _ in range(2):
            assert streams.enter_context(open_stream(http, path, auth | via_proxy("203.0.113.30"))).is_success
        third = streams.enter_context(open_stream(http, path, auth | via_proxy("203.0.113.30")))
        assert_too_many(third, "from your address")

        assert streams.enter_context(open_stream(http, path, auth | via_proxy("203.0.113.31"))).is_success
        fourth = streams.enter_context(open_stream(http, path, auth | via_proxy("203.0.113.32")))
        assert_too_many(fourth, "for this API key")


def test_open_streams_are_capped_in_total(public: Stack) -> None:
    with client(public, PROXY) as http:
        checkout = http.post(
            "/store/checkout", json={**CART, "deliveryDelay": MAX_DELAY_MS}, headers=via_proxy("203.0.113.99")
        )
    assert checkout.status_code == 201, checkout.text
    path = f"/store/orders/{checkout.json()['id']}/events"
    answers = []
    with ExitStack() as streams:
        for i in range(public.settings.streams_total + 1):  # from addresses within their own cap
            http = streams.enter_context(client(public, PROXY))
            answers.append(
                streams.enter_context(open_stream(http, path, via_proxy(f"203.0.113.{100 + i // 2}")))
            )
            if answers[-1].status_code == 429:
                break
        assert_too_many(answers[-1], "in this gateway")

    assert all(a.status_code == 200 for a in answers[:-1])


def test_anonymous_storefront_calls_are_limited_per_client_address(public: Stack) -> None:
    clear_of_window_edge()
    with client(public, PROXY) as http:
        answers = [http.post("/store/quote", json=CART, headers=via_proxy("203.0.113.40")) for _ in range(5)]
        other = http.post("/store/quote", json=CART, headers=via_proxy("203.0.113.41"))

    assert [a.status_code for a in answers] == [200, 200, 200, 200, 429]
    assert_too_many(answers[-1], "storefront requests")
    assert other.status_code == 200


def test_forwarded_addresses_count_only_from_trusted_proxies(public: Stack) -> None:
    clear_of_window_edge()
    with client(public, STRANGER) as http:
        # A stranger's X-Forwarded-For is not believed: all of these are the stranger's own calls.
        answers = [
            http.post("/store/quote", json=CART, headers=via_proxy(f"203.0.113.{50 + i}")) for i in range(5)
        ]

    assert [a.status_code for a in answers] == [200, 200, 200, 200, 429]


def test_api_calls_are_limited_per_key(public: Stack) -> None:
    clear_of_window_edge()
    with client(public, PROXY) as http:
        answers = [
            http.get("/api/v1/orders/nothing-here", headers={"Authorization": f"Bearer {RATE_KEY}"})
            for _ in range(31)
        ]
        with_another_key = http.get(
            "/api/v1/orders/nothing-here", headers={"Authorization": f"Bearer {DEV_STOREFRONT_KEY}"}
        )

    assert {a.status_code for a in answers[:30]} == {404}
    assert_too_many(answers[30], "API calls for this key")
    assert with_another_key.status_code == 404


# 3. Exposure ------------------------------------------------------------------------------------


def test_only_the_gateway_listens_on_the_public_address(public: Stack) -> None:
    s = public.settings
    ports = {s.ingress_port, s.admin_port, s.node_port, s.services_port, s.pos_port, s.payment_port}
    listening = {
        c.laddr.port: c.laddr.ip
        for c in psutil.net_connections("inet")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in {*ports, s.gateway_port}
    }

    assert listening == {**dict.fromkeys(ports, "127.0.0.1"), s.gateway_port: GATEWAY}


def refusal(command: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FOODORDER_")}
    return subprocess.run(
        [sys.executable, "-m", "foodorder.cli", command],
        env=clean | {f"FOODORDER_{k.upper()}": v for k, v in env.items()},
        capture_output=True,
        text=True,
        timeout=60,
    )


REAL_KEYS = {
    "provider_keys": json.dumps({"p-key-0123456789": "p", "s-key-0123456789": "storefront"}),
    "storefront_key": "s-key-0123456789",
    "restaurant_keys": json.dumps({"r-key-0123456789": ["*"]}),
    "driver_keys": json.dumps({"d-key-0123456789": ["*"]}),
    "pos_restaurant_key": "r-key-0123456789",
    "ops_password": "a-real-password-0123456789",
}


@pytest.mark.parametrize("command", ["up", "services", "payment", "pos", "gateway"])
def test_every_process_refuses_a_public_gateway_with_dev_keys(command: str) -> None:
    result = refusal(command, public_host="0.0.0.0")

    assert result.returncode != 0
    assert "refusing to start" in result.stderr and "dev key" in result.stderr


def test_a_public_gateway_with_the_dev_ops_password_is_refused() -> None:
    result = refusal("gateway", public_host="0.0.0.0", **{**REAL_KEYS, "ops_password": "dev-ops-password"})

    assert result.returncode != 0
    assert "FOODORDER_PUBLIC_HOST=0.0.0.0" in result.stderr


@pytest.mark.parametrize("command", ["up", "services"])
def test_internal_processes_on_a_public_address_need_request_identity(command: str) -> None:
    result = refusal(command, host="0.0.0.0", **REAL_KEYS)

    assert result.returncode != 0
    assert "FOODORDER_REQUEST_IDENTITY_KEYS" in result.stderr


# 4. Slow clients --------------------------------------------------------------------------------


def test_connections_that_trickle_their_headers_are_closed_and_others_are_served(public: Stack) -> None:
    port = public.settings.gateway_port
    trickling = []
    for _ in range(300):
        s = socket.create_connection((GATEWAY, port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        s.setblocking(False)
        trickling.append(s)
    with client(public, STRANGER) as http:
        assert http.get("/healthz").status_code == 200

    deadline = time.monotonic() + 60
    while trickling and time.monotonic() < deadline:
        for s in list(trickling):
            try:
                s.sendall(b"X-Slow: 1\r\n")
                if s.recv(1024) == b"":
                    raise ConnectionResetError
            except BlockingIOError:
                continue
            except OSError:
                s.close()
                trickling.remove(s)
        time.sleep(0.5)
    for s in trickling:
        s.close()

    assert trickling == [], f"{len(trickling)} trickling connections still open"


def test_a_body_that_does_not_arrive_in_time_is_refused_as_json(public: Stack) -> None:
    with socket.create_connection((GATEWAY, public.settings.gateway_port), timeout=30) as s:
        s.sendall(
            b"POST /store/quote HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert "did not arrive" in json.loads(body)["detail"]


# 5. Secrets -------------------------------------------------------------------------------------


def environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().partition("=")[::2] for item in raw if item)


def test_each_process_gets_only_the_secrets_it_uses(stack: Stack) -> None:
    secrets = {
        "FOODORDER_PROVIDER_KEYS",
        "FOODORDER_RESTAURANT_KEYS",
        "FOODORDER_DRIVER_KEYS",
        "FOODORDER_STOREFRONT_KEY",
        "FOODORDER_OPS_PASSWORD",
        "FOODORDER_POS_RESTAURANT_KEY",
    }
    held: dict[str, set[str]] = {}
    for name, process in stack.processes.items():
        assert process.popen is not None
        env = environment(process.popen.pid)
        held[name] = {k for k in secrets if env.get(k, "") not in ("", "{}")}

    assert held == {
        "restate-server": set(),
        "services": set(),
        "payment": set(),
        "pos": {"FOODORDER_POS_RESTAURANT_KEY"},
        "gateway": secrets - {"FOODORDER_POS_RESTAURANT_KEY"},
        "broker": set(),
    }


def test_a_body_over_the_limit_is_refused_as_json(api: Api) -> None:
    response = api.request("POST", "/store/quote", key=None, content=b"x" * 70_000)

    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]
