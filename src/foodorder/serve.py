"""Run an ASGI app under hypercorn (or granian, for the services endpoint) until SIGINT or SIGTERM."""

import asyncio
import gc
import logging
import os
import signal
import sys
import threading
from typing import Any

import h2.events
import uvloop
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from hypercorn.protocol.h2 import H2Protocol
from restate.server import install_shutdown_hook

GRACEFUL_TIMEOUT_S = 3
SHUTDOWN_MARGIN_S = 2.0  # beyond hypercorn's graceful timeout, for the app's own cleanup


def _drop_data_for_closed_streams() -> None:
    """Work around hypercorn 0.18 dropping the whole HTTP/2 connection on a late DATA frame.

    restate-server may still send DATA on an invocation's stream after the SDK finished the
    response; hypercorn then raises KeyError for the unknown stream and closes the connection,
    failing every other invocation on it (restatedev/sdk-python#205). Such frames only need
    their flow-control credit returned.
    """
    original = H2Protocol._handle_events
    if getattr(original, "foodorder_patched", False):
        return

    async def handle_events(self: H2Protocol, events: list[h2.events.Event]) -> None:
        live, opened = [], set()
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                opened.add(event.stream_id)
            if (
                isinstance(event, h2.events.DataReceived)
                and event.stream_id not in self.streams
                and event.stream_id not in opened
            ):
                self.connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            else:
                live.append(event)
        await original(self, live)

    handle_events.foodorder_patched = True  # type: ignore[attr-defined]
    H2Protocol._handle_events = handle_events  # type: ignore[method-assign]


def _exit_after(seconds: float) -> None:
    """End the process `seconds` from now, however far its shutdown got.

    hypercorn cancels the requests still open after its graceful timeout, but the Restate SDK
    swallows that cancellation (`ServerInvocationContext.enter`) and then waits, forever, for
    hypercorn to flush the invocation's last frames on a connection that is being torn down: the
    process closed its port and never exited. Restate retries whatever was cut off.
    """

    def exit_now() -> None:
        logging.getLogger(__name__).warning("shutdown still waiting after %.0fs: exiting", seconds)
        sys.stderr.flush()
        os._exit(0)

    timer = threading.Timer(seconds, exit_now)
    timer.daemon = True
    timer.start()


def freeze_startup_heap() -> None:
    """Keep what the process built to start (modules, the app, its models) out of garbage collections.

    Those objects live as long as the process, and every full collection walked them again: in the
    services endpoint under intake's load (restate-server's inactivity timeout already at 5 s),
    freezing its 110,000 startup objects took its full collections from 150 to 200 ms down to 70 to
    140 ms, each a pause of every invocation it serves. The startup's garbage is collected first.
    """
    gc.collect()
    gc.freeze()


# A full collection at most once per this many collections of the middle generation (Python's
# default: 10). See `spare_long_lived_heap`.
FULL_COLLECTION_EVERY = 1000


def spare_long_lived_heap() -> None:
    """Hold full collections back (at most one per 1,000 collections of the middle generation, not
    10), for a process whose heap is mostly connections held open (the gateway's event streams) and
    whose garbage dies young.

    Each full collection walks every object the process holds, and pauses every request meanwhile: with
    1,000 open event streams the gateway held about 300,000 objects, its full collections took 90 to
    250 ms every few seconds, and intake's p99 at 8 connections was 60 to 156 ms without the streams
    and 216 to 231 ms with them (`foodorder bench`'s streams' phase alone, three runs). Held back, none
    came while the streams were open: 63 to 84 ms without and 76 to 99 ms with them, at the same CPU
    and peak memory. A full collection still comes after 1,000 of the middle generation once the
    survivors grew by a quarter, so memory stays bounded. Not for the services endpoint: a suspended
    invocation leaves garbage that only a full collection frees.
    """
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


def serve(app: Any, host: str, port: int, client_timeout_s: float | None = None) -> None:
    """Serve `app` on host:port (HTTP/1.1 and HTTP/2 cleartext) in the foreground.

    With `client_timeout_s` (a public server), a connection that has not sent a request's head
    that long after it opened or after its last answer is closed.
    """
    _drop_data_for_closed_streams()
    freeze_startup_heap()
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.graceful_timeout = GRACEFUL_TIMEOUT_S
    # hypercorn's own messages go through the process's logging setup (JSON lines off a terminal).
    config.errorlog = logging.getLogger("hypercorn.error")
    # restate-server multiplexes every invocation over a few long-lived HTTP/2 connections;
    # hypercorn's default of closing a connection after 1000 requests breaks the ones in flight.
    config.keep_alive_max_requests = 2**62
    # Keep idle connections open longer than clients keep them in their pools (httpx: 5 s), so that
    # a client never sends on a connection the server is closing at that moment.
    config.keep_alive_timeout = 30
    if client_timeout_s is not None:
        # hypercorn's idle timer runs from the connection's start (or the last answer) until a
        # request's head is complete: it is also the header timeout that stops slow-header clients.
        config.keep_alive_timeout = client_timeout_s

    async def main() -> None:
        stop = asyncio.Event()

        def shut_down() -> None:
            if not stop.is_set():
                stop.set()
                _exit_after(config.graceful_timeout + SHUTDOWN_MARGIN_S)

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, shut_down)
        # The Restate app installs its own SIGTERM handler on first use; this registry chains ours to it.
        install_shutdown_hook(loop, shut_down, signal.SIGTERM)
        await hypercorn_serve(app, config, shutdown_trigger=stop.wait)

    # uvloop's event loop (libuv) costs the gateway and the stubs less CPU per request than asyncio's.
    uvloop.run(main())


def serve_granian(factory: str, host: str, port: int, workers: int) -> None:
    """Serve the app that `factory` ("module:function") makes with granian over HTTP/2 cleartext.

    granian handles SIGINT and SIGTERM itself; each worker process imports the app anew. Workers still
    serving restate-server's long-lived connections are killed after the same graceful timeout as
    hypercorn's (granian would otherwise wait for those connections forever).
    """
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops

    server = Granian(
        factory,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        loop=Loops.uvloop,  # named, so that a missing uvloop fails instead of falling back to asyncio
        http=HTTPModes.http2,
        workers=workers,
        factory=True,
        log_access=False,
        workers_kill_timeout=GRACEFUL_TIMEOUT_S,
    )
    server.serve()
