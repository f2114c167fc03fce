"""The ops board's tallies and the metrics the gateway makes of them."""

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from foodorder.gateway.metrics import OrdersEnded
from foodorder.models import Status, StatusChange
from foodorder.ordering.board import (
    LISTED_HEADER,
    RECENT_ENDINGS,
    RECENT_PROBLEMS,
    SHARDS,
    OrderEnded,
    OrderStarted,
    Tally,
    listed,
    listed_in,
    remembered,
    shard,
    tallied,
)


def ended(order_id: str, *steps: tuple[Status, float], reason: str | None = None) -> OrderEnded:
    """An order that went through `steps` (status, seconds after submission at 1,000,000 ms)."""
    history = [StatusChange(status=status, at=1_000_000 + int(s * 1000)) for status, s in steps]
    history[-1] = history[-1].model_copy(update={"reason": reason})
    return OrderEnded(order_id=order_id, history=history)


DELIVERED = ended(
    "a",
    (Status.CREATED, 0),
    (Status.SCHEDULING_DELIVERY, 2),
    (Status.SCHEDULING_DELIVERY, 40),
    (Status.DELIVERED, 90),
)


def test_a_tally_counts_endings_and_the_first_time_each_status_was_reached() -> None:
    started = Tally(in_flight={"a": 1_000_000, "b": 1_000_000, "c": 1_000_000})
    tally = tallied(tallied(started, DELIVERED), ended("b", (Status.REJECTED, 0), reason="payment declined"))
    assert tally.in_flight == {"c": 1_000_000}
    assert tally.ended == {Status.DELIVERED: 1, Status.REJECTED: 1}
    assert tally.durations[Status.SCHEDULING_DELIVERY].sum_s == 2  # not the second time, at 40 s
    assert tally.durations[Status.DELIVERED].buckets == [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]  # <= 120 s
    assert [(p.order_id, p.reason) for p in tally.problems] == [("b", "payment declined")]


def test_a_batch_of_starts_lists_the_orders_in_flight_but_not_one_that_ended_before_it_came() -> None:
    # A gateway sends its starts a second late: an order rejected at once has ended by then.
    tally = tallied(Tally(), ended("rejected", (Status.REJECTED, 0)))
    starts = [OrderStarted(order_id=key, at=1_000_000) for key in ("rejected", "new")]
    tally = listed(tally, starts, recently_ended=remembered([], "rejected"))
    assert tally.in_flight == {"new": 1_000_000}
    assert tally.ended == {Status.REJECTED: 1}


def test_a_shard_remembers_only_the_latest_endings() -> None:
    recently_ended: list[str] = []
    for n in range(RECENT_ENDINGS + 3):
        recently_ended = remembered(recently_ended, f"o{n}")
    assert recently_ended == [f"o{n}" for n in range(3, RECENT_ENDINGS + 3)]


def test_a_tally_keeps_only_the_latest_problems() -> None:
    tally = Tally()
    for n in range(RECENT_PROBLEMS + 5):
        tally = tallied(tally, ended(f"o{n}", (Status.CANCELLED, n)))
    assert [p.order_id for p in tally.problems] == [f"o{n}" for n in range(5, RECENT_PROBLEMS + 5)]


def test_a_tally_counts_endings_and_keeps_problems_per_region_for_the_region_filter() -> None:
    tally = Tally()
    for order_id, region, status in [
        ("sj-1", "san-jose", Status.DELIVERED),
        ("sj-2", "san-jose", Status.CANCELLED),
        ("sf-1", "san-francisco", Status.CANCELLED),
    ]:
        tally = tallied(tally, ended(order_id, (status, 1)).model_copy(update={"region": region}))
    assert tally.ended == {Status.DELIVERED: 1, Status.CANCELLED: 2}
    assert tally.ended_by_region == {
        "san-jose": {Status.DELIVERED: 1, Status.CANCELLED: 1},
        "san-francisco": {Status.CANCELLED: 1},
    }
    assert [(p.order_id, p.region) for p in tally.problems] == [
        ("sj-2", "san-jose"),
        ("sf-1", "san-francisco"),
    ]


def test_orders_spread_over_every_shard_and_stay_on_theirs() -> None:
    keys = {shard(f"dev-provider:order-{n}") for n in range(1000)}
    assert keys == {str(n) for n in range(SHARDS)}
    assert shard("dev-provider:order-1") == shard("dev-provider:order-1")


def test_the_run_header_names_the_shard_a_gateway_lists_the_order_in() -> None:
    assert listed_in({}, "dev-provider:a") is None  # no gateway lists it: the workflow does
    assert listed_in({"X-Foodorder-Listed": "7"}, "dev-provider:a") == "7"
    # An earlier gateway said only that it lists the order, in the order's own shard.
    assert listed_in({LISTED_HEADER: "gateway"}, "dev-provider:a") == shard("dev-provider:a")
    assert listed_in({LISTED_HEADER: str(SHARDS)}, "dev-provider:a") == shard("dev-provider:a")


def test_the_metrics_add_up_every_shard_as_prometheus_histograms() -> None:
    collector = OrdersEnded()
    collector.tallies = [tallied(Tally(), DELIVERED), tallied(Tally(), DELIVERED)]
    registry = CollectorRegistry()
    registry.register(collector)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    assert samples[("foodorder_orders_ended_total", (("status", "DELIVERED"),))] == 2
    assert samples[("foodorder_order_status_seconds_count", (("status", "DELIVERED"),))] == 2
    assert samples[("foodorder_order_status_seconds_sum", (("status", "DELIVERED"),))] == 180
    assert samples[("foodorder_order_status_seconds_bucket", (("le", "60.0"), ("status", "DELIVERED")))] == 0
    assert samples[("foodorder_order_status_seconds_bucket", (("le", "120.0"), ("status", "DELIVERED")))] == 2
    assert samples[("foodorder_order_status_seconds_bucket", (("le", "+Inf"), ("status", "DELIVERED")))] == 2
