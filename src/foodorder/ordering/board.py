"""ops-board (key = shard): what operations count of the orders that ended, kept as they end.

The workflow sends each order's ending here once (one invocation per order), so `/ops` and the
gateway's `/metrics` read a few small records instead of every order ever stored. Orders are spread
over SHARDS keys so that no one key serializes every ending. Orders still running are not counted
here: Restate's own tables list them (`sys_invocation`).
"""

import zlib

import httpx
from pydantic import Field
from restate import ObjectContext, VirtualObject

from foodorder import introspection
from foodorder.models import Model, Status, StatusChange
from foodorder.state import StateKey, required

ops_board = VirtualObject("ops-board")

SHARDS = 16
# Upper bounds (seconds) of the buckets of time from submission to a status, as Prometheus counts them.
BUCKETS_S = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
RECENT_PROBLEMS = 10
TALLIES_QUERY = "SELECT value_utf8 FROM state WHERE service_name = 'ops-board' AND key = 'tally'"


class OrderEnded(Model):
    """An order's ending: its final status and reason, and when it reached each status."""

    order_id: str
    history: list[StatusChange]

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


class Tally(Model):
    """One shard's counts: ended orders per final status, durations per status, the latest problems."""

    ended: dict[Status, int] = Field(default_factory=dict)
    durations: dict[Status, Durations] = Field(default_factory=dict)
    problems: list[Problem] = Field(default_factory=list)


TALLY: StateKey[Tally] = StateKey("tally", Tally)


def shard(order_id: str) -> str:
    """The board key that counts `order_id` (stable across processes and releases)."""
    return str(zlib.crc32(order_id.encode()) % SHARDS)


def tallied(tally: Tally, ended: OrderEnded) -> Tally:
    """`tally` with `ended` counted."""
    final = ended.final
    tally.ended[final.status] = tally.ended.get(final.status, 0) + 1
    submitted = ended.history[0].at
    for change in {c.status: c for c in reversed(ended.history)}.values():  # the first time of each
        durations = tally.durations.setdefault(change.status, Durations(buckets=[0] * (len(BUCKETS_S) + 1)))
        durations.add((change.at - submitted) / 1000)
    if final.status != Status.DELIVERED:
        problem = Problem(order_id=ended.order_id, status=final.status, at=final.at, reason=final.reason)
        tally.problems = [*tally.problems, problem][-RECENT_PROBLEMS:]
    return tally


@ops_board.handler(name="orderEnded", input_serde=required(OrderEnded), ingress_private=True)
async def order_ended(ctx: ObjectContext, ended: OrderEnded) -> None:
    """Count an order that ended (sent once by its workflow)."""
    TALLY.set(ctx, tallied(await TALLY.get(ctx) or Tally(), ended))


async def read_tallies(admin: httpx.AsyncClient) -> list[Tally]:
    """Every shard's tally, through Restate's SQL introspection (`admin`: a client of the admin API)."""
    rows = await introspection.query(admin, TALLIES_QUERY)
    return [Tally.model_validate_json(row["value_utf8"]) for row in rows]
