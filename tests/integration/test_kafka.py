"""The seed's location path: phones publish to the Kafka topic driver-updates (key = driver id), and
Restate's subscription delivers each record to the driver's twin, which moves the order's driver and ETA.

On a stack of its own with the embedded broker and no simulated drivers: the tests play the phones,
publishing to the topic as the seed's phones do ({lat, long}, no stamp) or through the driver API.
"""

import asyncio
import contextlib
import functools
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from foodorder import geo
from foodorder.catalog import load_catalog
from foodorder.clients.kafka import PARTITIONS, TOPIC
from foodorder.config import DEV_PROVIDER_KEY, Settings
from foodorder.external import broker
from foodorder.models import Location, Status
from foodorder.stack import Stack, wait_until
from tests.integration.conftest import Client, new_order, running_stack, stack_settings
from tests.integration.test_unhappy_paths import Party

RESTAURANT = "bites_n_bytes"


class Phones:
    """Drivers on orders of one stack, their phones publishing straight to driver-updates.

    Each order is watched, as a customer's open order page watches it: only then does every location
    reach the order's events (otherwise the twin passes on only a changed ETA).
    """

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.party = Party(stack)
        self.client = Client(stack.settings)
        self.drivers = 0
        self.stopping = threading.Event()
        self.watchers: list[threading.Thread] = []
        self.before: dict[str, int] = {}

    def on_an_order(self) -> tuple[str, str]:
        """A new driver on duty, given a new order that a customer watches: (driver id, order reference)."""
        self.drivers += 1
        driver = f"kafka-driver-{self.drivers}"
        self.party.driver(driver, "availability")
        ref = self.party.order(restaurantId=RESTAURANT)
        self.party.take_offer(driver)
        self.party.api.wait_for(ref, Status.WAITING_FOR_DRIVER)
        assert self.party.driver(driver, "assignment")["delivery"]["orderId"] == f"dev-provider:{ref}"
        self.watch(ref)
        # The twin is told the order is watched, and the order hears of a first location of the test's.
        # The order knows its driver from the assignment (at the shift's start position), so the watch
        # may come before that location: the count starts once the order was told of it.
        location = seed_record(north_of_the_restaurant(3_000))
        start = {**location, "at": 1}
        self.party.driver(driver, "locations", json={"points": [start]})
        self.client.eventually(
            lambda: self.client.state("driver-digital-twin", driver, "watched-until") is not None, True, 30
        )
        self.client.eventually(lambda: self.told_at(ref, location), True, 30)
        self.before[ref] = self.changes(ref)
        return driver, ref

    def watch(self, ref: str) -> None:
        """Keep the order's event stream open until the end, resuming it like a browser does."""

        def follow() -> None:
            headers = {"Authorization": f"Bearer {DEV_PROVIDER_KEY}"}
            with httpx.Client(base_url=self.stack.settings.gateway_url, timeout=None) as http:
                while not self.stopping.is_set():
                    with (
                        contextlib.suppress(httpx.HTTPError),
                        http.stream("GET", f"/api/v1/orders/{ref}/events", headers=headers) as stream,
                    ):
                        for _ in stream.iter_lines():
                            if self.stopping.is_set():
                                return
                    self.stopping.wait(0.2)

        self.watchers.append(threading.Thread(target=follow, daemon=True))
        self.watchers[-1].start()

    def view(self, ref: str) -> dict[str, Any]:
        """The order as its provider sees it (GET /api/v1/orders/{ref})."""
        response = self.party.api.request("GET", f"/api/v1/orders/{ref}")
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        return view

    def driver_shown(self, ref: str) -> Any:
        return self.view(ref)["driver"]

    def told_at(self, ref: str, location: dict[str, float]) -> bool:
        """Whether the order heard of its driver at `location`."""
        events = self.client.call(f"order-status/dev-provider:{ref}/getEvents", 0).json()
        return any(e["type"] == "driver" and e["driver"]["location"] == location for e in events)

    def changes(self, ref: str) -> int:
        """How many locations changed the order: order-status numbers one tracking update per applied
        location, besides the first ETA (set as the restaurant accepted the order)."""
        events = self.client.call(f"order-status/dev-provider:{ref}/getEvents", 0).json()
        return int(events[-1]["seq"]) - 1

    def applied(self, ref: str) -> int:
        """How many of the test's own locations changed the order (after the first, `on_an_order`'s)."""
        return self.changes(ref) - self.before[ref]

    def close(self) -> None:
        self.stopping.set()
        self.party.close()
        self.client.http.close()


@pytest.fixture(scope="module")
def phones(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phones]:
    settings = stack_settings(tmp_path_factory.mktemp("kafka")).model_copy(
        update={"drivers": 0, "driver_silence_timeout_s": 100_000, "driver_search_timeout_s": 100_000}
    )
    with running_stack(settings, "kafka") as stack:
        phones = Phones(stack)
        yield phones
        phones.close()


def north_of_the_restaurant(metres: float) -> Location:
    shop = load_catalog().restaurant(RESTAURANT)
    assert shop is not None
    return geo.offset(shop.location, metres, 0)


def route(n: int) -> list[Location]:
    """`n` points due north of the restaurant, each 5 m closer to it than the one before."""
    return [north_of_the_restaurant(2_000 - 5 * i) for i in range(n)]


def seed_record(location: Location) -> dict[str, float]:
    """What the seed's phone publishes: {lat, long}, no stamp."""
    return {"lat": location.lat, "long": location.long}


def publish(servers: str, records: list[tuple[str, dict[str, Any]]], per_s: float | None = None) -> None:
    """Publish records (driver id, value) to driver-updates as a phone does, each acknowledged."""

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
        await producer.start()
        try:
            for key, value in records:
                await producer.send_and_wait(TOPIC, json.dumps(value).encode(), key=key.encode())
                if per_s:
                    await asyncio.sleep(1 / per_s)
        finally:
            await producer.stop()

    asyncio.run(run())


def on_the_topic(servers: str, record: tuple[str, dict[str, Any]], timeout_s: float = 10) -> bool:
    """Whether driver-updates holds `record` (key, value), read from the start of every partition.

    It reads until it finds the record rather than up to the end offsets: Tansu answers the first
    offset of the last batch as the end.
    """

    async def run() -> bool:
        consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    if record in [(r.key.decode(), json.loads(r.value)) for r in batch]:
                        return True
            return False
        finally:
            await consumer.stop()

    return asyncio.run(run())


def test_locations_published_to_kafka_move_the_driver_and_the_eta_of_the_order(phones: Phones) -> None:
    driver, ref = phones.on_an_order()
    far, near = north_of_the_restaurant(30_200), north_of_the_restaurant(200)

    publish(phones.stack.settings.kafka_servers, [(driver, seed_record(far))])
    phones.client.eventually(lambda: phones.driver_shown(ref), {"id": driver, "location": seed_record(far)})
    eta_far = datetime.fromisoformat(phones.view(ref)["eta"])

    publish(phones.stack.settings.kafka_servers, [(driver, seed_record(near))])
    phones.client.eventually(lambda: phones.driver_shown(ref), {"id": driver, "location": seed_record(near)})
    eta_near = datetime.fromisoformat(phones.view(ref)["eta"])

    # 30 km less to drive at 60 m/s: 500 s, 25 s at the tests' time scale, less the time between reads
    assert (eta_far - eta_near).total_seconds() > 15
    assert phones.view(ref)["status"] == Status.WAITING_FOR_DRIVER
    assert phones.applied(ref) == 2


def test_the_driver_api_answers_once_the_location_is_on_the_topic(phones: Phones) -> None:
    driver, ref = phones.on_an_order()
    location = route(1)[0]
    point = {**seed_record(location), "at": int(time.time() * 1000)}

    phones.party.driver(driver, "locations", json={"points": [point]})

    assert on_the_topic(phones.stack.settings.kafka_servers, (driver, point))
    phones.client.eventually(
        lambda: phones.driver_shown(ref), {"id": driver, "location": seed_record(location)}
    )


def test_a_repeated_or_older_location_changes_nothing(phones: Phones) -> None:
    driver, ref = phones.on_an_order()
    first, second, third = route(3)
    now = int(time.time() * 1000)
    stamped = [
        (driver, {**seed_record(first), "at": now}),
        (driver, {**seed_record(second), "at": now + 1000}),
        (driver, {**seed_record(second), "at": now + 1000}),  # a retried publish
        (driver, {**seed_record(first), "at": now}),  # a replayed, older record
        (driver, {**seed_record(third), "at": now + 2000}),
    ]

    publish(phones.stack.settings.kafka_servers, stamped)

    phones.client.eventually(lambda: phones.driver_shown(ref), {"id": driver, "location": seed_record(third)})
    assert phones.applied(ref) == 3


def test_every_location_is_applied_once_and_in_order_across_a_kill_of_restate_server(phones: Phones) -> None:
    on_orders = [phones.on_an_order() for _ in range(3)]
    points = route(150)
    records = [(driver, seed_record(point)) for point in points for driver, _ in on_orders]
    publishing = threading.Thread(target=publish, args=(phones.stack.settings.kafka_servers, records, 150))
    publishing.start()
    try:
        phones.client.eventually(lambda: phones.applied(on_orders[0][1]) >= 10, True, timeout_s=30)
        phones.stack.kill("restate-server")  # SIGKILL mid-stream, then started again
    finally:
        publishing.join()

    for driver, ref in on_orders:
        phones.client.eventually(functools.partial(phones.applied, ref), len(points), timeout_s=90)
        assert phones.driver_shown(ref) == {"id": driver, "location": seed_record(points[-1])}


def test_after_a_broker_restart_new_locations_are_processed_again(phones: Phones) -> None:
    driver, ref = phones.on_an_order()
    before, after = route(40)[:20], route(40)[20:]
    servers = phones.stack.settings.kafka_servers
    publish(servers, [(driver, seed_record(point)) for point in before])
    phones.client.eventually(lambda: phones.applied(ref), len(before), timeout_s=30)

    phones.stack.kill("broker")  # its records and offsets are gone: offsets start again at 0

    stamp = int(time.time() * 1000)
    for n, point in enumerate(after):  # through the driver API, whose producer reconnects
        phones.party.driver(driver, "locations", json={"points": [{**seed_record(point), "at": stamp + n}]})
    phones.client.eventually(lambda: phones.applied(ref), len(before) + len(after), timeout_s=60)
    assert phones.driver_shown(ref) == {"id": driver, "location": seed_record(after[-1])}


def test_the_embedded_broker_listens_on_loopback_only(phones: Phones) -> None:
    port = phones.stack.settings.kafka_port
    listening = {
        c.laddr.ip
        for c in psutil.net_connections("inet")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
    }

    assert listening == {"127.0.0.1"}


def deliver_with_a_live_eta(settings: Settings, name: str) -> tuple[set[str], list[dict[str, Any]]]:
    """Deliver an order with one simulated driver, its ETA shown on the way; the stack's processes
    and Restate's Kafka subscriptions."""
    with running_stack(settings, name) as stack, Client(settings) as client:
        # The phone's first location reaching its twin shows the consumer has joined (an external
        # cluster's group takes seconds): from then on the driver's moves show as ETAs.
        client.eventually(
            lambda: client.state("driver-digital-twin", "driver-1", "driver-location") is not None, True, 60
        )
        order_id = f"{name}-{time.time_ns()}"
        client.submit(new_order(id=order_id))
        seen = client.wait_for(order_id, Status.DELIVERED, timeout_s=120)
        assert any(answer["eta"] for answer in seen if answer["status"] == Status.IN_DELIVERY)
        subscriptions = client.http.get(f"{settings.admin_url}/subscriptions").json()["subscriptions"]
        return set(stack.processes), subscriptions


def test_the_ingress_fallback_delivers_without_a_broker(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path).model_copy(update={"location_transport": "ingress", "drivers": 1})

    processes, subscriptions = deliver_with_a_live_eta(settings, "ingress-transport")

    assert "broker" not in processes
    assert subscriptions == []


def accepts_connections(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def test_an_external_cluster_carries_the_locations_and_no_broker_is_started(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path).model_copy(update={"drivers": 1})
    settings = settings.model_copy(update={"kafka_bootstrap": settings.kafka_servers})
    # A Kafka-compatible cluster the stack does not run: a Tansu of the test's own.
    cluster = subprocess.Popen(broker.argv(settings), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_until(functools.partial(accepts_connections, settings.kafka_port), "the external cluster")

        processes, subscriptions = deliver_with_a_live_eta(settings, "external-cluster")

        assert "broker" not in processes
        assert [s["options"]["group.id"] for s in subscriptions] == ["foodorder-driver-updates"]
    finally:
        cluster.kill()
        cluster.wait()
