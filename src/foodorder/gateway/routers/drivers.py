"""Drivers' phones: availability, assignment, pickup, delivery and locations."""

from fastapi import APIRouter, status
from pydantic import Field

from foodorder import geo
from foodorder.gateway.auth import DriverDep
from foodorder.gateway.deps import IngressDep, LocationsDep
from foodorder.gateway.schemas import (
    FORBIDDEN,
    TOO_MANY,
    UNAUTHENTICATED,
    UNAVAILABLE,
    UNREADABLE_BODY,
    Body,
    problems,
)
from foodorder.models import DeliveryRequest, Location, LocationEvent, Model

router = APIRouter(
    prefix="/api/v1/drivers",
    tags=["drivers (driver key)"],
    responses=UNAUTHENTICATED | TOO_MANY | FORBIDDEN | UNAVAILABLE,
)
TWIN = "driver-digital-twin"
WRONG_STATE = problems({409: "the driver is not in a state for this"})


class Assignment(Model):
    """The delivery the driver is on, if any."""

    delivery: DeliveryRequest | None


class LocationPoint(Body, Location):
    """Where the phone was, and when (epoch milliseconds)."""

    at: int = Field(ge=0)


class LocationBatch(Body):
    """Points collected by the phone since its last report."""

    points: list[LocationPoint] = Field(min_length=1, max_length=500)


class BatchAccepted(Model):
    """How many points arrived, and which one the twin gets (the newest)."""

    received: int
    forwarded_at: int


class Availability(Body):
    """Whether the driver takes work: true starts a shift, false ends it."""

    available: bool = True


@router.post(
    "/{driver_id}/availability", status_code=status.HTTP_202_ACCEPTED, responses=WRONG_STATE | UNREADABLE_BODY
)
async def set_availability(
    driver_id: DriverDep, ingress: IngressDep, availability: Availability | None = None
) -> None:
    """Start a shift, or take new work after a delivery; `{"available": false}` ends the shift."""
    if availability is None or availability.available:
        await ingress.call(TWIN, driver_id, "setDriverAvailable", geo.DEMO_REGION)
    else:
        await ingress.call(TWIN, driver_id, "setDriverUnavailable")


@router.get("/{driver_id}/assignment")
async def assignment(driver_id: DriverDep, ingress: IngressDep) -> Assignment:
    """The delivery assigned to the driver, or null."""
    return Assignment(delivery=await ingress.call(TWIN, driver_id, "getAssignedDelivery"))


@router.post("/{driver_id}/pickup", status_code=status.HTTP_202_ACCEPTED, responses=WRONG_STATE)
async def pickup(driver_id: DriverDep, ingress: IngressDep) -> None:
    """The driver picked the order up at the restaurant."""
    await ingress.call(TWIN, driver_id, "notifyDeliveryPickUp")


@router.post("/{driver_id}/delivered", status_code=status.HTTP_202_ACCEPTED, responses=WRONG_STATE)
async def delivered(driver_id: DriverDep, ingress: IngressDep) -> None:
    """The order reached the customer."""
    await ingress.call(TWIN, driver_id, "notifyDeliveryDelivered")


@router.post("/{driver_id}/locations", status_code=status.HTTP_202_ACCEPTED, responses=UNREADABLE_BODY)
async def locations(driver_id: DriverDep, batch: LocationBatch, publisher: LocationsDep) -> BatchAccepted:
    """A batch of points: only the newest matters to the ETA, so only it is published (202 once stored)."""
    newest = max(batch.points, key=lambda p: p.at)
    await publisher.publish(
        driver_id,
        LocationEvent(lat=newest.lat, long=newest.long, at=newest.at),
        idempotency_key=f"location-{driver_id}-{newest.at}",
    )
    return BatchAccepted(received=len(batch.points), forwarded_at=newest.at)
