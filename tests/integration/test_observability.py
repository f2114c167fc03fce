"""Observability on a stack of its own: one trace per order, /metrics, and the /ops view."""

import json
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from foodorder import introspection
from foodorder.config import DEV_OPS_PASSWORD, OPS_USER
from foodorder.models import Status
from foodorder.ordering import board
from foodorder.otlp import Receiver, Span, receiving
from foodorder.stack import Stack, wait_until
from tests.integration.conftest import (
    Api,
    Client,
    api_of,
    api_order,
    listening,
    new_order,
    running_stack,
    stack_settings,
)

pytestmark = pytest.mark.integration
T = TypeVar("T")
ORDER_ID = "foodorder.order.id"
STALE_AFTER_S = 3.0


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with receiving() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def traced(receiver: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = stack_settings(tmp_path_factory.mktemp("observed")).model_copy(
        update={"otlp_endpoint": receiver.endpoint, "stale_after_s": STALE_AFTER_S}
    )
    with running_stack(settings, "observability") as stack:
        yield stack


@pytest.fixture(scope="module")
def api(traced: Stack) -> Iterator[Api]:
    with api_of(traced.settings) as api:
        yield api


def eventually(read: Callable[[], T], done: Callable[[T], bool], what: str, timeout_s: float = 60) -> T:
    """`read()` once `done` holds for it (tried until `timeout_s`); fails naming `what` and the last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"{what}: last {value!r}"
        time.sleep(0.2)


def submit(api: Api, **overrides: Any) -> str:
    """Submit an order through the API; its key in the engine."""
    order = api_order(**overrides)
    response = api.request("POST", "/api/v1/orders", json=order)
    assert response.status_code == 202, response.text
    return f"dev-provider:{order['id']}"


def test_one_order_is_one_trace_across_every_process(api: Api, receiver: Receiver) -> None:
    key = submit(api)
    api.wait_for(key.split(":", 1)[1], Status.DELIVERED)

    def intake() -> list[Span]:
        return [
            s
            for s in receiver.received()
            if s.name == "POST /api/v1/orders" and s.attributes.get(ORDER_ID) == key
        ]

    (submission,) = eventually(intake, bool, "the gateway's span of the submission")

    def journey() -> list[Span]:
        return [s for s in receiver.received() if s.trace_id == submission.trace_id]

    def complete(spans: list[Span]) -> bool:
        names = {(s.service, s.name) for s in spans}
        return {
            ("foodorder-services", "order-workflow/run"),
            ("Restate", "invocation-end order-workflow/{key}/run"),
            ("foodorder-payment", "POST /authorizations/{authorization_id}/capture"),
            ("foodorder-pos", "POST /prepare"),
        } <= names

    spans = eventually(journey, complete, "the order's trace through Restate, the services and the stubs")
    assert {s.service for s in spans} >= {
        "foodorder-gateway",
        "Restate",
        "foodorder-services",
        "foodorder-payment",
        "foodorder-pos",
    }
    for span in spans:
        if "store-state" in span.name:  # the workflow reads the restaurant's state: keyed by the restaurant
            continue
        if span.service == "Restate":  # restate-server names the invocation's target, with its key
            target = str(span.attributes["restate.invocation.target"])
            # the order's own, or the region's matcher that the workflow asks for a driver
            assert key in target or target.startswith("driver-delivery-matcher/"), span
        else:  # ours carry the order, the matcher's request too
            assert span.attributes.get(ORDER_ID) == key, span


def metrics(api: Api) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of GET /metrics by name and labels."""
    response = api.http.get("/metrics", auth=(OPS_USER, DEV_OPS_PASSWORD))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_move_with_an_order(api: Api) -> None:
    submitted: tuple[str, frozenset[tuple[str, str]]] = ("foodorder_orders_submitted_total", frozenset())
    delivered = ("foodorder_orders_ended_total", frozenset({("status", "DELIVERED")}))
    intake = (
        "foodorder_http_requests_total",
        frozenset({("method", "POST"), ("route", "/api/v1/orders"), ("status", "202")}),
    )
    to_delivered = ("foodorder_order_status_seconds_count", frozenset({("status", "DELIVERED")}))
    before = metrics(api)
    key = submit(api)
    api.wait_for(key.split(":", 1)[1], Status.DELIVERED)
    after = eventually(
        lambda: metrics(api),
        lambda m: m.get(delivered, 0) > before.get(delivered, 0),
        "foodorder_orders_ended_total{status=DELIVERED} after a delivery",
    )
    for sample in (submitted, intake, to_delivered):
        assert after.get(sample, 0) == before.get(sample, 0) + 1, sample
    assert after[("foodorder_open_streams", frozenset())] == 0
    assert all(name.startswith("foodorder_") for name, _ in after)


def ops(api: Api, **params: int) -> dict[str, Any]:
    response = api.http.get("/ops/snapshot", params=params, auth=(OPS_USER, DEV_OPS_PASSWORD))
    assert response.status_code == 200, response.text
    snapshot: dict[str, Any] = response.json()
    return snapshot


def listed(snapshot: dict[str, Any], key: str) -> dict[str, Any] | None:
    return next((o for o in snapshot["activeOrders"] if o["id"] == key), None)


def test_ops_pages_orders_in_flight_and_counts_ended_ones(api: Api, traced: Stack) -> None:
    before = ops(api)
    rejected = [new_order(restaurantId="nowhere")["id"] for _ in range(3)]
    with Client(traced.settings) as client:  # the seed's way, on the ingress: rejected by the workflow
        for key in rejected:
            client.submit(new_order(id=key, restaurantId="nowhere"))
    later = [submit(api, deliveryDelay=3_600_000) for _ in range(3)]  # SCHEDULED for an hour
    snapshot = eventually(
        lambda: ops(api, size=2),
        lambda s: (
            s["counts"].get("REJECTED", 0) >= before["counts"].get("REJECTED", 0) + 3
            and s["counts"].get("SCHEDULED", 0) >= 3
        ),
        "the rejected orders counted and the scheduled ones in flight",
    )
    assert snapshot["pages"] >= 2 and len(snapshot["activeOrders"]) == 2
    pages = [ops(api, size=2, page=n)["activeOrders"] for n in range(1, snapshot["pages"] + 1)]
    shown = [o["id"] for page in pages for o in page]
    assert set(later) <= set(shown) and len(shown) == len(set(shown))
    assert not set(rejected) & set(shown)  # ended orders are not in flight
    problems = {p["orderId"]: p for p in ops(api)["recentProblems"]}
    for key in rejected:
        assert problems[key]["status"] == "REJECTED" and "restaurantId" in problems[key]["reason"]
    for key in later:
        response = api.request("POST", f"/api/v1/orders/{key.split(':', 1)[1]}/cancel", json={})
        assert response.status_code == 200, response.text


def listing(traced: Stack, key: str) -> dict[str, int]:
    """The ops board shards that list order `key` in flight, with the time each lists it from."""
    rows = introspection.query_blocking(traced.settings.admin_url, board.BOARD_QUERY)
    tallies = {
        row["service_key"]: board.TALLY.serde.deserialize(row["value_utf8"].encode())
        for row in rows
        if row["key"] == "tally"
    }
    return {shard: t.in_flight[key] for shard, t in tallies.items() if t is not None and key in t.in_flight}


def test_an_order_submitted_twice_is_listed_once_until_it_ends(api: Api, traced: Stack) -> None:
    # An order that the gateway lists in a shard other than its id's (the gateway's shard moves on
    # every second), so that an ending or a second listing sent by the id would show.
    orders: list[dict[str, Any]] = []
    while True:
        order = api_order(deliveryDelay=3_600_000)  # SCHEDULED for an hour
        key = f"dev-provider:{order['id']}"
        assert api.request("POST", "/api/v1/orders", json=order).status_code == 202
        orders.append(order)
        first = eventually(partial(listing, traced, key), lambda shards: len(shards) == 1, "the order listed")
        if board.shard(key) not in first or len(orders) == 10:
            break
    assert board.shard(key) not in first, f"10 orders listed by their ids' shards: {orders}"

    # The gateway lists a resubmitted order again (the first answer may have been lost before its
    # batch went out): in the shard that the order's run named, where its ending goes too.
    assert api.request("POST", "/api/v1/orders", json=order).status_code == 200
    again = eventually(lambda: listing(traced, key), lambda shards: shards != first, "the order listed again")
    assert again.keys() == first.keys()
    for each in orders:
        response = api.request("POST", f"/api/v1/orders/{each['id']}/cancel", json={})
        assert response.status_code == 200, response.text

    eventually(
        lambda: listing(traced, key), lambda shards: shards == {}, "the ending in the shard listing it"
    )
    assert listed(ops(api), key) is None


def test_an_order_that_ends_before_its_batch_of_starts_comes_is_not_listed(api: Api, traced: Stack) -> None:
    declined = api_order(
        products=[{"productId": "1000", "quantity": 100}]
    )  # more than the payment stub holds
    scheduled = api_order(deliveryDelay=3_600_000)
    for order in (declined, scheduled):
        assert api.request("POST", "/api/v1/orders", json=order).status_code == 202
    api.wait_for(declined["id"], Status.REJECTED)  # in a few milliseconds: its start is still in a batch

    key = f"dev-provider:{scheduled['id']}"
    eventually(partial(listing, traced, key), bool, "the batch of both starts on the board")
    ended = f"dev-provider:{declined['id']}"
    eventually(
        partial(listing, traced, ended), lambda shards: shards == {}, "the declined order off the board"
    )
    response = api.request("POST", f"/api/v1/orders/{scheduled['id']}/cancel", json={})
    assert response.status_code == 200, response.text


def test_ops_shows_why_restate_retries_a_stuck_order(api: Api, traced: Stack) -> None:
    services = traced.processes["services"]
    services.stop()
    order = new_order()
    with Client(traced.settings) as client:
        try:
            client.submit(order)  # on the ingress: Restate takes it, and retries while the services are down
            stuck = eventually(
                lambda: listed(ops(api), order["id"]),
                lambda row: row is not None and row["stale"] and row["retrying"] is not None,
                f"order {order['id']} stuck for {STALE_AFTER_S} s with Restate's retry reason",
            )
        finally:
            services.start()
            s = traced.settings
            wait_until(lambda: listening(s.host, [s.services_port]) == [s.services_port], "services")
        assert stuck is not None and stuck["status"] == "NEW"
        assert "run" in stuck["retrying"]
        client.wait_for(order["id"], Status.DELIVERED)
    eventually(
        lambda: listed(ops(api), order["id"]), lambda row: row is None, "the delivered order off the list"
    )


def test_log_lines_are_json_with_the_order_and_its_trace(api: Api, traced: Stack, receiver: Receiver) -> None:
    key = submit(api)
    api.wait_until_reached(key.split(":", 1)[1], Status.IN_PREPARATION)
    assert traced.log_dir is not None
    log = traced.log_dir / "pos.log"

    def lines() -> list[dict[str, Any]]:
        parsed = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        return [line for line in parsed if line.get(ORDER_ID) == key]

    (taken,) = eventually(lines, bool, f"the POS's log line of order {key}")
    assert taken["message"] == f"order {key} taken" and taken["level"] == "INFO" and taken["process"] == "pos"
    prepare = eventually(  # spans are exported in batches, a few seconds after they end
        lambda: [
            s for s in receiver.received() if s.name == "POST /prepare" and s.attributes.get(ORDER_ID) == key
        ],
        bool,
        f"the POS's span of order {key}",
    )
    assert [s.trace_id for s in prepare] == [taken["trace_id"]]
