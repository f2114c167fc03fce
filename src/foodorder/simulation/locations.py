"""How a phone's location events reach the driver's digital twin (Kafka can slot in behind it)."""

from functools import lru_cache
from typing import Protocol
from urllib.parse import quote

from foodorder.clients import ingress
from foodorder.clients.http import http_client
from foodorder.config import get_settings
from foodorder.models import Location

LOCATION_HANDLER = "driver-digital-twin/{driver_id}/handleDriverLocationUpdateEvent"


class LocationPublisher(Protocol):
    """Publishes one location event of a driver; the same key is delivered at most once."""

    async def publish(self, driver_id: str, location: Location, idempotency_key: str) -> None: ...


class IngressLocationPublisher:
    """Durable one-way sends on the Restate ingress, deduplicated by Restate through the key."""

    def __init__(self, ingress_url: str) -> None:
        self.ingress_url = ingress_url

    async def publish(self, driver_id: str, location: Location, idempotency_key: str) -> None:
        """Enqueue driver-digital-twin/{driver_id}/handleDriverLocationUpdateEvent."""
        await ingress.send(
            http_client(),
            self.ingress_url,
            LOCATION_HANDLER.format(driver_id=quote(driver_id, safe="")),
            location.model_dump(mode="json"),
            idempotency_key,
        )


@lru_cache
def location_publisher() -> LocationPublisher:
    """The publisher this process uses."""
    return IngressLocationPublisher(get_settings().ingress_url)
