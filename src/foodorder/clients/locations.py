"""How a phone's location events reach the driver's twin: through Kafka (the seed's way) or the ingress."""

from functools import lru_cache
from typing import Protocol
from urllib.parse import quote

from foodorder.clients.http import check_response
from foodorder.clients.kafka import Producer
from foodorder.clients.restate import RestateApi
from foodorder.config import Settings, get_settings
from foodorder.models import LocationEvent

LOCATION_HANDLER = "driver-digital-twin/{driver_id}/handleDriverLocationUpdateEvent"


class LocationPublisher(Protocol):
    """Publishes one location event of a driver, and returns once it is stored on its way to the twin."""

    async def publish(self, driver_id: str, event: LocationEvent, idempotency_key: str) -> None: ...

    async def close(self) -> None: ...


class IngressLocationPublisher:
    """Durable one-way sends on the Restate ingress, deduplicated by Restate through the key."""

    def __init__(self, ingress: RestateApi) -> None:
        self.ingress = ingress

    async def publish(self, driver_id: str, event: LocationEvent, idempotency_key: str) -> None:
        """Enqueue driver-digital-twin/{driver_id}/handleDriverLocationUpdateEvent."""
        target = LOCATION_HANDLER.format(driver_id=quote(driver_id, safe=""))
        response = await self.ingress.request(
            "POST",
            f"/{target}/send",
            json=event.model_dump(mode="json", exclude_none=True),
            headers={"idempotency-key": idempotency_key},
        )
        check_response(response, f"restate ingress ({target})")

    async def close(self) -> None:
        """Nothing to release: the ingress client is its owner's."""


class KafkaLocationPublisher:
    """Records on driver-updates (key = driver id), which Restate's subscription delivers to the twin.

    Kafka has no idempotency key: a repeated publish is a second record, which the twin ignores
    because it is not newer (`at`) than the location it already applied.
    """

    def __init__(self, producer: Producer) -> None:
        self.producer = producer

    async def publish(self, driver_id: str, event: LocationEvent, idempotency_key: str) -> None:
        """Append {lat, long, at} under the driver's id; return once the broker acknowledged it."""
        await self.producer.publish(driver_id, event.model_dump_json(exclude_none=True).encode())

    async def close(self) -> None:
        """Disconnect from the broker."""
        await self.producer.close()


def publisher_for(settings: Settings, ingress: RestateApi | None = None) -> LocationPublisher:
    """The publisher of the configured location transport (sending through `ingress`, or a client of
    its own, to the ingress)."""
    if settings.location_transport == "kafka":
        return KafkaLocationPublisher(Producer(settings.kafka_servers, settings.http_timeout_s))
    return IngressLocationPublisher(ingress or RestateApi(settings.ingress_urls, settings.http_timeout_s))


@lru_cache
def location_publisher() -> LocationPublisher:
    """The publisher this process uses."""
    return publisher_for(get_settings())
