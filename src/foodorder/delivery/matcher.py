"""driver-delivery-matcher (key = region): offers each delivery to the nearest available driver.

A delivery is offered to one driver at a time: the nearest by great-circle distance to the
restaurant (whole metres; the longest idle wins a tie). The driver accepts or declines through
their twin within the offer's timeout; a decline or a lapse hands it to the next-nearest driver
who has not turned it down, and a driver who lets `misses_off_duty` offers in a row lapse is taken
off duty. Every offer lives in this object's state, so a restart neither loses an offer nor lets two
deliveries hold the same driver. One durable timer serves all of a region's open offers: it fires
when the earliest expires (`expireOffers`), and is set again for the earliest left; an offer
answered in time costs no timer of its own.

Drivers are scanned rather than indexed (no H3 cells): a region's pool of waiting drivers is read
from state whole on every call anyway, and measuring the scan (`foodorder bench`) shows it costs a
small part of a match at the pool sizes one region holds.
"""

import contextlib
from collections.abc import Iterable
from datetime import timedelta

from restate import ObjectContext, TerminalError, VirtualObject

from foodorder import geo, telemetry
from foodorder.delivery import manager, twin
from foodorder.models import (
    AvailableDriver,
    DeliveryRequest,
    FoundDriver,
    Location,
    Offer,
    OfferAnswer,
    OpenOffer,
    PendingDelivery,
    TakenDelivery,
)
from foodorder.state import PydanticSerde, StateKey, came_late, now_ms, required

driver_delivery_matcher = VirtualObject("driver-delivery-matcher", ingress_private=True)

AVAILABLE_DRIVERS: StateKey[dict[str, AvailableDriver]] = StateKey(
    "available-drivers", dict[str, AvailableDriver]
)
PENDING_DELIVERIES: StateKey[list[PendingDelivery]] = StateKey("pending-deliveries", list[PendingDelivery])
OPEN_OFFERS: StateKey[dict[str, OpenOffer]] = StateKey("open-offers", dict[str, OpenOffer])
EXPIRY_DUE: StateKey[int] = StateKey("expiry-due", int)  # when the timer for open offers fires (epoch ms)


def nearest(
    drivers: Iterable[AvailableDriver], to: Location, excluding: Iterable[str] = ()
) -> AvailableDriver | None:
    """The driver nearest to `to` (whole metres), the longest idle first among equals; None if none."""
    skip = set(excluding)
    candidates = [d for d in drivers if d.driver_id not in skip]
    return min(
        candidates,
        key=lambda d: (round(geo.distance_m(d.location, to)), d.since, d.driver_id),
        default=None,
    )


class Pool:
    """The region's drivers, waiting deliveries and open offers, read once and written back once."""

    def __init__(self, ctx: ObjectContext) -> None:
        self.ctx = ctx
        self.drivers: dict[str, AvailableDriver] = {}
        self.pending: list[PendingDelivery] = []
        self.offers: dict[str, OpenOffer] = {}

    async def load(self) -> "Pool":
        self.drivers = await AVAILABLE_DRIVERS.get(self.ctx) or {}
        self.pending = await PENDING_DELIVERIES.get(self.ctx) or []
        self.offers = await OPEN_OFFERS.get(self.ctx) or {}
        return self

    def save(self) -> None:
        AVAILABLE_DRIVERS.set(self.ctx, self.drivers)
        PENDING_DELIVERIES.set(self.ctx, self.pending)
        OPEN_OFFERS.set(self.ctx, self.offers)

    def offer_of(self, delivery_id: str) -> OpenOffer | None:
        return next((o for o in self.offers.values() if o.pending.delivery.delivery_id == delivery_id), None)

    def offer_to(self, driver_id: str) -> OpenOffer | None:
        return next((o for o in self.offers.values() if o.offer.driver_id == driver_id), None)

    def holds(self, delivery_id: str) -> bool:
        """Whether the delivery waits here for a driver: queued, or offered to one."""
        return self.offer_of(delivery_id) is not None or any(
            p.delivery.delivery_id == delivery_id for p in self.pending
        )

    async def dispatch(self, pending: PendingDelivery) -> None:
        """Offer the delivery to the nearest driver who has not turned it down, or queue it."""
        restaurant = pending.delivery.restaurant_location
        driver = nearest(self.drivers.values(), restaurant, excluding=pending.declined_by)
        if driver is None:
            self.pending.append(pending)
            return
        await self.make_offer(pending, driver)

    async def driver_free(self, driver: AvailableDriver) -> None:
        """A driver joins the pool: offer them the longest-waiting delivery they have not turned down."""
        self.drivers[driver.driver_id] = driver
        waiting = next((p for p in self.pending if driver.driver_id not in p.declined_by), None)
        if waiting is not None:
            self.pending.remove(waiting)
            await self.make_offer(waiting, driver)

    async def make_offer(self, pending: PendingDelivery, driver: AvailableDriver) -> None:
        del self.drivers[driver.driver_id]
        pending.offers += 1
        now = await now_ms(self.ctx)
        offer = Offer(
            offer_id=f"{pending.delivery.delivery_id}.{pending.offers}",
            driver_id=driver.driver_id,
            region=self.ctx.key(),
            delivery=pending.delivery,
            distance_m=round(geo.distance_m(driver.location, pending.delivery.restaurant_location), 1),
            expires=now + pending.policy.timeout_ms,
        )
        self.offers[offer.offer_id] = OpenOffer(offer=offer, driver=driver, pending=pending)
        self.ctx.object_send(twin.offer_delivery, key=driver.driver_id, arg=offer)
        await self.expire_by(offer.expires, now)

    async def expire_by(self, due: int, now: int) -> None:
        """Have the open offers looked at by `due` (epoch ms): the timer is set earlier if it must be.

        A timer overdue by more than an outage's margin may have been lost (cancelled by hand, say):
        one that fires at once takes its place, so that no offer is left without an expiry.
        """
        planned = await EXPIRY_DUE.get(self.ctx)
        if planned is not None and planned <= due:
            if not came_late(now, planned):
                return
            due = now
        EXPIRY_DUE.set(self.ctx, due)
        delay = timedelta(milliseconds=max(0, due - now))
        self.ctx.object_send(expire_offers, key=self.ctx.key(), arg=due, send_delay=delay)

    async def expire(self, open_offer: OpenOffer, now: int) -> None:
        """The offer's time is up: the next-nearest driver gets the delivery; too many lapses end a shift.

        A timer that came late was due while the system was down or stalled: the driver could not
        answer meanwhile, so they get the whole timeout again from now.
        """
        offer = open_offer.offer
        if came_late(now, offer.expires):
            offer.expires = now + open_offer.pending.policy.timeout_ms
            await self.expire_by(offer.expires, now)
            return
        del self.offers[offer.offer_id]
        self.ctx.object_send(twin.offer_withdrawn, key=offer.driver_id, arg=offer.offer_id)
        open_offer.pending.declined_by.append(offer.driver_id)
        await self.dispatch(open_offer.pending)
        driver = open_offer.driver
        driver.missed += 1
        if driver.missed >= open_offer.pending.policy.misses_off_duty:
            self.ctx.object_send(
                twin.end_shift, key=driver.driver_id, arg=f"let {driver.missed} offers lapse"
            )
        else:
            await self.driver_free(driver)


def non_empty(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TerminalError(f"{name}: expected a non-empty string, got {value!r}", 400)
    return value


@driver_delivery_matcher.handler(name="setDriverAvailable", input_serde=required(AvailableDriver))
async def set_driver_available(ctx: ObjectContext, driver: AvailableDriver) -> None:
    """A driver waits for work here (or moved while waiting): offer them a waiting delivery, or keep them."""
    pool = await Pool(ctx).load()
    if pool.offer_to(driver.driver_id) is not None:
        return  # they hold an offer: its answer puts them back
    known = pool.drivers.get(driver.driver_id)
    if known is not None:
        known.location = driver.location  # keeps their place in the queue
    else:
        await pool.driver_free(driver)
    pool.save()


@driver_delivery_matcher.handler(name="requestDriverForDelivery", input_serde=required(PendingDelivery))
async def request_driver_for_delivery(ctx: ObjectContext, request: PendingDelivery) -> None:
    """A delivery needs a driver: offer it to the nearest available one, or queue it until one comes.
    (The order's workflow waits for this call: its span belongs to the order's trace.)"""
    order_id = request.delivery.order_id
    with telemetry.about_order(order_id) if order_id else contextlib.nullcontext():
        pool = await Pool(ctx).load()
        if pool.holds(request.delivery.delivery_id):
            return  # a repeated request
        await pool.dispatch(request)
        pool.save()


@driver_delivery_matcher.handler(
    name="answerOffer",
    input_serde=required(OfferAnswer),
    output_serde=PydanticSerde(TakenDelivery | DeliveryRequest | None),
)
async def answer_offer(ctx: ObjectContext, answer: OfferAnswer) -> TakenDelivery | DeliveryRequest | None:
    """The driver's twin passes on an accept or a decline; 409 if the offer is no longer open.

    An accept answers the delivery, which the twin takes at once, with how it tells the order's
    workflow of the delivery; the workflow hears of its driver here. An earlier release's order has
    its delivery manager told instead (which hands the delivery to an earlier release's twin).
    """
    pool = await Pool(ctx).load()
    open_offer = pool.offers.get(answer.offer_id)
    if open_offer is None or open_offer.offer.driver_id != answer.driver_id:
        raise TerminalError(f"offer {answer.offer_id} is no longer open to driver {answer.driver_id}", 409)
    pending = open_offer.pending
    if answer.accepted and pending.link is not None and not answer.takes_delivery:
        # A twin of a release before the one that took deliveries on accept could not keep the link:
        # its answer is refused, and the offer lapses to the next driver. (Its accept would have to
        # be running since before this release came up, so this is a guard, not a path.)
        raise TerminalError(f"offer {answer.offer_id}: this twin cannot take the delivery", 409)
    del pool.offers[answer.offer_id]
    delivery = pending.delivery
    takes = answer.accepted and answer.takes_delivery and pending.taken_on_accept
    if answer.accepted and pending.link is not None:
        ctx.resolve_awakeable(pending.link.found_awakeable, answer.driver_id)
    elif answer.accepted:
        found = FoundDriver(driver_id=answer.driver_id, took_delivery=takes)
        ctx.object_send(manager.driver_found, key=delivery.delivery_id, arg=found)
    else:
        pending.declined_by.append(answer.driver_id)
        await pool.dispatch(pending)
        open_offer.driver.missed = 0
        await pool.driver_free(open_offer.driver)
    pool.save()
    if not takes:
        return None
    return TakenDelivery(delivery=delivery, link=pending.link) if pending.link else delivery


@driver_delivery_matcher.handler(name="expireOffers")
async def expire_offers(ctx: ObjectContext, due: int) -> None:
    """The region's timer for open offers (`due`, epoch ms): every offer whose time is up expires,
    and the timer is set for the earliest left."""
    if await EXPIRY_DUE.get(ctx) != due:
        return  # a timer set earlier took this one's place
    EXPIRY_DUE.clear(ctx)
    pool = await Pool(ctx).load()
    now = await now_ms(ctx)
    for open_offer in [o for o in pool.offers.values() if o.offer.expires <= now]:
        await pool.expire(open_offer, now)
    if pool.offers:
        await pool.expire_by(min(o.offer.expires for o in pool.offers.values()), now)
    pool.save()


@driver_delivery_matcher.handler(name="expireOffer")
async def expire_offer(ctx: ObjectContext, offer_id: str) -> None:
    """One offer's own timer, as a release before this one set a timer per offer."""
    non_empty("offerId", offer_id)
    pool = await Pool(ctx).load()
    open_offer, now = pool.offers.get(offer_id), await now_ms(ctx)
    if open_offer is None or now < open_offer.offer.expires:
        return  # answered in time, withdrawn, or given more time (the region's timer has it)
    await pool.expire(open_offer, now)
    pool.save()


@driver_delivery_matcher.handler()
async def withdraw(ctx: ObjectContext, delivery_id: str) -> bool:
    """A delivery no longer needs a driver (its order was cancelled, or its search ran out): its offer,
    if any, is withdrawn.
    Whether it was still waiting here (false: a driver accepted it already, or it never came)."""
    non_empty("deliveryId", delivery_id)
    pool = await Pool(ctx).load()
    withdrawn = pool.holds(delivery_id)
    pool.pending = [p for p in pool.pending if p.delivery.delivery_id != delivery_id]
    open_offer = pool.offer_of(delivery_id)
    if open_offer is not None:
        del pool.offers[open_offer.offer.offer_id]
        ctx.object_send(twin.offer_withdrawn, key=open_offer.offer.driver_id, arg=open_offer.offer.offer_id)
        await pool.driver_free(open_offer.driver)
    pool.save()
    return withdrawn


@driver_delivery_matcher.handler(name="removeDriver")
async def remove_driver(ctx: ObjectContext, driver_id: str) -> None:
    """A driver stopped waiting for work (end of shift): an offer they held goes to the next-nearest."""
    non_empty("driverId", driver_id)
    pool = await Pool(ctx).load()
    pool.drivers.pop(driver_id, None)
    open_offer = pool.offer_to(driver_id)
    if open_offer is not None:
        del pool.offers[open_offer.offer.offer_id]
        open_offer.pending.declined_by.append(driver_id)
        await pool.dispatch(open_offer.pending)
    pool.save()
