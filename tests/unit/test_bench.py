"""The benchmark's arithmetic (percentiles, closed-loop counting) and its load generator, wrk."""

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from foodorder.bench import closed_loop, parse_wrk, percentile, wrk


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


def test_wrk_figures_are_read_from_the_scripts_last_line() -> None:
    output = (
        "Running 5s test @ http://127.0.0.1:3000\n"
        '{"requests": 1200, "duration_us": 4000000, "status_errors": 200, "socket_errors": 3,'
        ' "p50_us": 12500, "p99_us": 80250}\n'
    )

    load = parse_wrk(output)

    assert (load.done, load.failed, load.elapsed_s) == (1000, 203, 4.0)
    assert (load.per_s, load.p50_ms, load.p99_ms) == (250.0, 12.5, 80.25)


class Recorder(BaseHTTPRequestHandler):
    """Answers 202 to every POST and keeps each request's path, Authorization and body."""

    seen: ClassVar[list[tuple[str, str | None, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((self.path, self.headers["Authorization"], body))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def test_wrk_posts_a_body_with_an_id_of_its_own_in_every_request() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        with ThreadPoolExecutor(1) as thread:
            load = thread.submit(
                asyncio.run, wrk(url, "/api/v1/orders", 4, 1, "Bearer k", {"id": "run-{id}", "n": 1})
            ).result()
    finally:
        server.shutdown()
        server.server_close()

    ids = [body["id"] for _, _, body in Recorder.seen]
    # wrk counts the answers it read before its time was up; the last requests may still be on the way.
    assert load.done <= len(Recorder.seen) <= load.done + 4 and load.done > 10 and load.failed == 0
    assert len(set(ids)) == len(ids) and all(i.startswith("run-1-") for i in ids)
    assert {(path, auth, body["n"]) for path, auth, body in Recorder.seen} == {
        ("/api/v1/orders", "Bearer k", 1)
    }
