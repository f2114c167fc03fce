"""ops-board (key = shard, or `fleet`): what operations look at, kept as it happens.

Each order's workflow sends its ending here, and its start unless a gateway took the order: the
gateway sends the starts of the orders it took in batches, each second's to one shard, which it names
in the header of the orders' `run` so that their endings go there too (so an accepted order costs no
invocation here until it ends). The shard keeps the orders in flight and counts the
ones that ended. Each driver's twin sends its first turn
on duty to the `fleet` key. So `/ops` and the gateway's `/metrics` read a few records by key, never
every order or driver ever stored. Orders are spread over SHARDS keys so that no one key serializes
every start and ending.
"""

import zlib

from pydantic import Field
from restate import ObjectContext, VirtualObject

from foodorder import introspection
from foodorder.clients.restate import RestateApi
from foodorder.models import Model, Status, StatusChange
from foodorder.state import StateKey, required

ops_board = VirtualObject("ops-board")

SHARDS = 16
SHARD_KEYS = [str(i) for i in range(SHARDS)]
# Upper bounds (seconds) of the buckets of time from submission to a status, as Prometheus counts them.
BUCKETS_S = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
RECENT_PROBLEMS = 10
# The header of an order's `run` that says a gateway lists the order's start (in a batch), and in
# which shard. An earlier gateway's value, `gateway`, meant the order's own shard (`shard`): such a
# gateway, beside a newer one, lists an order that it is sent again there, whichever shard its run
# named.
LISTED_HEADER = "x-foodorder-listed"
# A batch of starts may come after the order ended (a rejection takes milliseconds): the latest
# endings that came before their order was listed are remembered (per shard, as many as a gateway's
# batches of a few seconds at full intake may hold), so that such a start is dropped, not listed
# forever. (A start sent again for an order submitted again as it ends can still come late.)
RECENT_ENDINGS = 1024


class OrderEnded(Model):
    """An order's ending: its final status and reason, and when it reached each status."""

    order_id: str
    history: list[StatusChange]
    region: str | None = Field(None, description="the region of the order's restaurant")

    @property
    def final(self) -> StatusChange:
        return self.history[-1]


class Durations(Model):
    """A histogram of seconds from submission to one status: counts per bucket (not cumulative)."""

    buckets: list[int]
    sum_s: float = 0.0
    count: int = 0

    def add(self, seconds: float) -> None:
        index = next((i for i, bound in enumerate(BUCKETS_S) if seconds <= bound), len(BUCKETS_S))
        self.buckets[index] += 1
        self.sum_s += seconds
        self.count += 1


class Problem(Model):
    """An order that ended without delivery, and why."""

    order_id: str
    status: Status
    at: int
    reason: str | None
    region: str | None = None


class OrderStarted(Model):
    """An order's workflow started (epoch ms)."""

    order_id: str
    at: int


class Tally(Model):
    """One shard's orders in flight (id -> epoch ms of their start), and of those that ended: how many
    per final status (in all and per region), the seconds to each status, the latest problems."""

    in_flight: dict[str, int] = Field(default_factory=dict)
    ended: dict[Status, int] = Field(default_factory=dict)
    ended_by_region: dict[str, dict[Status, int]] = Field(default_factory=dict)
    durations: dict[Status, Durations] = Field(default_factory=dict)
    problems: list[Problem] = Field(default_factory=list)


TALLY: StateKey[Tally] = StateKey("tally", Tally)
# The latest endings of the shard's orders (ids, oldest first): a key of its own, beside the tally,
# which a gateway of an earlier release reads with the fields it knows.
RECENTLY_ENDED: StateKey[list[str]] = StateKey("recently-ended", list[str])
FLEET = "fleet"  # the key that lists the drivers
DRIVERS: StateKey[list[str]] = StateKey("drivers", list[str])
BOARD_QUERY = (
    "SELECT service_key, key, value_utf8 FROM state WHERE service_name = 'ops-board'"
    f" AND {introspection.keyed([*SHARD_KEYS, FLEET])}"
)


def shard(order_id: str) -> str:
    """The board key of `order_id` when no gateway named one (stable across processes and releases)."""
    return str(zlib.crc32(order_id.encode()) % SHARDS)


def listed_in(headers: dict[str, str], order_id: str) -> str | None:
    """The shard that a gateway lists the order in, as the headers of its `run` say; None when no
    gateway does (the workflow lists the order itself, in its own shard)."""
    named = next((value for name, value in headers.items() if name.lower() == LISTED_HEADER), None)
    if named is None:
        return None
    return named if named in SHARD_KEYS else shard(order_id)


def listed(tally: Tally, started: list[OrderStarted], recently_ended: list[str]) -> Tally:
    """`tally` with the orders `started` in flight, but for those that ended already."""
    ended = set(recently_ended)
    tally.in_flight.update((s.order_id, s.at) for s in started if s.order_id not in ended)
    return tally


def remembered(recently_ended: list[str], order_id: str) -> list[str]:
    """The latest RECENT_ENDINGS endings, `order_id`'s the newest."""
    return [*recently_ended, order_id][-RECENT_ENDINGS:]


def tallied(tally: Tally, ended: OrderEnded) -> Tally:
    """`tally` with `ended` counted."""
    final = ended.final
    tally.in_flight.pop(ended.order_id, None)
    tally.ended[final.status] = tally.ended.get(final.status, 0) + 1
    if ended.region is not None:
        regional = tally.ended_by_region.setdefault(ended.region, {})
        regional[final.status] = regional.get(final.status, 0) + 1
    submitted = ended.history[0].at
    for change in {c.status: c for c in reversed(ended.history)}.values():  # the first time of each
        durations = tally.durations.setdefault(change.status, Durations(buckets=[0] * (len(BUCKETS_S) + 1)))
        durations.add((change.at - submitted) / 1000)
    if final.status != Status.DELIVERED:
        problem = Problem(
            order_id=ended.order_id,
            status=final.status,
            at=final.at,
            reason=final.reason,
            region=ended.region,
        )
        tally.problems = [*tally.problems, problem][-RECENT_PROBLEMS:]
    return tally


@ops_board.handler(name="orderStarted", input_serde=required(OrderStarted), ingress_private=True)
async def order_started(ctx: ObjectContext, started: OrderStarted) -> None:
    """Count an order in flight (sent once by its workflow as it starts)."""
    tally = await TALLY.get(ctx) or Tally()
    tally.in_flight[started.order_id] = started.at
    TALLY.set(ctx, tally)


@ops_board.handler(name="ordersStarted", input_serde=required(list[OrderStarted]))
async def orders_started(ctx: ObjectContext, started: list[OrderStarted]) -> None:
    """Count orders in flight (sent by a gateway, in a batch, for the orders it took); an order that
    ended already is not counted again."""
    recently_ended = await RECENTLY_ENDED.get(ctx) or []
    TALLY.set(ctx, listed(await TALLY.get(ctx) or Tally(), started, recently_ended))


@ops_board.handler(name="orderEnded", input_serde=required(OrderEnded), ingress_private=True)
async def order_ended(ctx: ObjectContext, ended: OrderEnded) -> None:
    """Count an order that ended (sent once by its workflow); remember it if it was not listed yet."""
    tally = await TALLY.get(ctx) or Tally()
    listed_already = ended.order_id in tally.in_flight
    TALLY.set(ctx, tallied(tally, ended))
    if not listed_already:  # its start may come yet, in a gateway's batch
        RECENTLY_ENDED.set(ctx, remembered(await RECENTLY_ENDED.get(ctx) or [], ended.order_id))


@ops_board.handler(name="driverOnDuty", ingress_private=True)
async def driver_on_duty(ctx: ObjectContext, driver_id: str) -> None:
    """List a driver (sent by its twin the first time it goes on duty)."""
    drivers = await DRIVERS.get(ctx) or []
    if driver_id not in drivers:
        DRIVERS.set(ctx, [*drivers, driver_id])


class Board(Model):
    """Every shard's tally and the drivers, as /ops and /metrics read them."""

    tallies: list[Tally]
    drivers: list[str]

    @property
    def in_flight(self) -> dict[str, int]:
        """Every order in flight, with the epoch ms of its start."""
        return {order: at for tally in self.tallies for order, at in tally.in_flight.items()}


async def read(admin: RestateApi) -> Board:
    """The board, through Restate's SQL introspection (`admin`: the admin API)."""
    board = Board(tallies=[], drivers=[])
    for row in await introspection.query(admin, BOARD_QUERY):
        if row["key"] == "tally":
            board.tallies.append(TALLY.serde.deserialize(row["value_utf8"].encode()) or Tally())
        elif row["key"] == "drivers":
            board.drivers = DRIVERS.serde.deserialize(row["value_utf8"].encode()) or []
    return board
