"""Drivers' phones: availability, delivery offers, assignment, pickup, delivery and locations."""

from fastapi import APIRouter, status
from pydantic import Field

from foodorder.gateway.auth import DriverDep
from foodorder.gateway.deps import IngressDep, LocationsDep
from foodorder.gateway.schemas import (
    FORBIDDEN,
    TOO_MANY,
    UNAUTHENTICATED,
    UNAVAILABLE,
    UNREADABLE_BODY,
    Body,
    PathId,
    problems,
)
from foodorder.models import DeliveryRequest, Location, LocationEvent, Model, Offer, ShiftStart

router = APIRouter(
    prefix="/api/v1/drivers",
    tags=["drivers (driver key)"],
    responses=UNAUTHENTICATED | TOO_MANY | FORBIDDEN | UNAVAILABLE,
)
TWIN = "driver-digital-twin"
WRONG_STATE = problems({409: "the driver is not in a state for this"})
CLOSED_OFFER = problems({409: "the offer is not open to the driver (it lapsed, was withdrawn or answered)"})


class Assignment(Model):
    """The delivery the driver is on, if any."""

    delivery: DeliveryRequest | None


class Point(Body, Location):
    """A point on Earth in degrees, numbers only."""


class LocationPoint(Point):
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
    """Whether the driver takes work (true starts a shift, false ends it), and where they are."""

    available: bool = True
    location: Point | None = Field(
        None, description="where the driver is; default: their last reported location"
    )


class Shift(Model):
    """The region whose deliveries the driver is offered (null once the shift ended)."""

    region: str | None


class CurrentOffer(Model):
    """The delivery offered to the driver and waiting for their answer, if any."""

    offer: Offer | None


@router.post(
    "/{driver_id}/availability",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems({409: "the driver is on a delivery, or no location of theirs is known"})
    | UNREADABLE_BODY,
)
async def set_availability(
    driver_id: DriverDep, ingress: IngressDep, availability: Availability | None = None
) -> Shift:
    """Start a shift (in the region nearest to the driver) or take work; `{"available": false}` ends it."""
    if availability is None or availability.available:
        start = ShiftStart(location=availability.location if availability else None)
        region = await ingress.call(TWIN, driver_id, "setDriverAvailable", start.model_dump(mode="json"))
        return Shift(region=region)
    await ingress.call(TWIN, driver_id, "setDriverUnavailable")
    return Shift(region=None)


@router.get("/{driver_id}/offers/current")
async def current_offer(driver_id: DriverDep, ingress: IngressDep) -> CurrentOffer:
    """The delivery offered to the driver: accept or decline it before `expires` (epoch ms)."""
    return CurrentOffer(offer=await ingress.call(TWIN, driver_id, "getOffer"))


@router.post("/{driver_id}/offers/{offer_id}/accept", responses=CLOSED_OFFER)
async def accept_offer(driver_id: DriverDep, offer_id: PathId, ingress: IngressDep) -> Offer:
    """Take the offered delivery: it is the driver's assignment a moment later."""
    offer: Offer = await ingress.call(TWIN, driver_id, "acceptOffer", offer_id)
    return offer


@router.post("/{driver_id}/offers/{offer_id}/decline", responses=CLOSED_OFFER)
async def decline_offer(driver_id: DriverDep, offer_id: PathId, ingress: IngressDep) -> Offer:
    """Turn the offered delivery down: the next-nearest driver is offered it."""
    offer: Offer = await ingress.call(TWIN, driver_id, "declineOffer", offer_id)
    return offer


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
    """The order reached the customer. The shift goes on: the driver waits for their next offer
    (`availability` with `{"available": false}` ends it)."""
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
