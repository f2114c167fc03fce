"""Restate's Kafka subscription delivering driver-updates to driver-digital-twin (through the admin API).

Restate remembers, per subscription, the offsets it has delivered, and skips a record at an offset
it has seen. A broker that starts again empty (the embedded one keeps records in memory) numbers its
records from 0 again, and the old subscription would skip them all. So a subscription is created
for each start of the broker, under a consumer group of its own, and deleted before the broker stops.
"""

import httpx

from foodorder.clients.kafka import TOPIC
from foodorder.config import Settings

CLUSTER = "foodorder"
SOURCE = f"kafka://{CLUSTER}/{TOPIC}"
SINK = "service://driver-digital-twin/handleDriverLocationUpdateEvent"
GROUP = "foodorder-driver-updates"
# librdkafka's default session timeout (45 s) holds the first delivery for about half of it; with 2 s
# Tansu delivers within 1.5 s. Apache Kafka refuses less than its group.min.session.timeout.ms (6 s).
SESSION_TIMEOUT_MS = 2000
EXTERNAL_SESSION_TIMEOUT_MS = 6000


def _check(response: httpx.Response, what: str) -> None:
    if not response.is_success:
        raise RuntimeError(f"restate admin: {what} answered {response.status_code}: {response.text[:300]}")


def unsubscribe(admin_url: str) -> None:
    """Delete every subscription of the twins to driver-updates (Restate then stops consuming it)."""
    with httpx.Client(base_url=admin_url, timeout=30) as admin:
        listed = admin.get("/subscriptions", params={"sink": SINK})
        _check(listed, "listing subscriptions")
        for subscription in listed.json()["subscriptions"]:
            _check(admin.delete(f"/subscriptions/{subscription['id']}"), "deleting a subscription")


def subscribe(admin_url: str, settings: Settings, broker_run: str | None) -> None:
    """Point the cluster (its admin API: `admin_url`) at the configured servers, and replace the
    subscription with a new one.

    `broker_run` names this start of the embedded broker, whose consumer group is new and so starts at
    the earliest record; an external cluster (None) keeps one group, which resumes where it committed.
    """
    unsubscribe(admin_url)
    with httpx.Client(base_url=admin_url, timeout=30) as admin:
        properties = {"bootstrap.servers": settings.kafka_servers}
        created = admin.post("/kafka-clusters", json={"name": CLUSTER, "properties": properties})
        if created.status_code == httpx.codes.CONFLICT:
            created = admin.patch(f"/kafka-clusters/{CLUSTER}", json={"properties": properties})
        _check(created, "registering the Kafka cluster")
        options = {
            "group.id": f"{GROUP}-{broker_run}" if broker_run else GROUP,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": str(SESSION_TIMEOUT_MS if broker_run else EXTERNAL_SESSION_TIMEOUT_MS),
            "heartbeat.interval.ms": "1000",
        }
        subscribed = admin.post("/subscriptions", json={"source": SOURCE, "sink": SINK, "options": options})
        _check(subscribed, "creating the subscription")
