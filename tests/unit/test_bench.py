"""The benchmark's arithmetic: percentiles and closed-loop counting."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from foodorder.bench import closed_loop, percentile


def test_percentiles_of_a_known_distribution() -> None:
    samples = [float(n) for n in range(1, 101)]

    assert percentile(samples, 50) == 50.5
    assert percentile(samples, 99) == 99.01
    assert percentile([], 99) == 0.0
    assert percentile([7.0], 99) == 7.0


def test_a_closed_loop_counts_what_its_workers_did() -> None:
    async def request(n: int) -> bool:
        await asyncio.sleep(0.01)
        return n % 2 == 0

    # In a thread of its own: another test's browser may own this thread's event loop.
    with ThreadPoolExecutor(1) as thread:
        run = thread.submit(asyncio.run, closed_loop(request, concurrency=4, seconds=0.2)).result()

    assert run.done + run.failed == len(run.latencies_s) > 20
    assert abs(run.done - run.failed) <= 4
    assert 0.2 <= run.elapsed_s < 0.5
    assert all(latency >= 0.01 for latency in run.latencies_s)
