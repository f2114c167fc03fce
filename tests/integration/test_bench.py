"""A small version of `foodorder bench`: the engine's ceiling and intake, measured with wrk on a stack
of the bench's own, as `foodorder bench --partitions` runs them."""

import io
from dataclasses import replace

from rich.console import Console

from foodorder.bench import QUICK, engine_phases, on_fresh_stack


def test_the_bench_measures_the_engine_and_intake_on_a_stack_of_its_own() -> None:
    plan = replace(QUICK, seconds=2, concurrency_levels=[4])

    results = on_fresh_stack(engine_phases, plan, Console(file=io.StringIO()))

    assert results["engine_noop_invocations_per_s"] > 0
    (level,) = results["intake"]
    # Every order wrk sent was accepted (202) and then scheduled: the phase waits for that.
    assert level["failed"] == 0 and results["intake_orders_per_s"] > 0, level
    # Each accepted order ran its workflow at least: the invocation count comes from Restate.
    assert results["invocations_per_accepted_order"] >= 1
    # The CPU each process spent per order: the engine and the workflows' endpoint worked for each.
    cpu = results["intake_cpu_ms_per_order"]
    assert cpu["restate-server"] > 0 and cpu["services"] > 0 and cpu["gateway"] > 0, cpu
    # The stack's CPU in units of the payment stub's: the stub is one of its processes.
    assert results["intake_cpu_per_payment_stub_cpu"] > 1, cpu
    # The stack's memory: each process's peak, and the sum; a page shared counts once in the PSS.
    rss, pss = results["peak_rss_mb"], results["peak_pss_mb"]
    assert 0 < pss["gateway"] <= rss["gateway"] and 0 < pss["total"] <= rss["total"], (pss, rss)
