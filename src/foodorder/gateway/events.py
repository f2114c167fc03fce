"""An order's events (status, ETA, driver position) as Server-Sent Events, read from order-status.

Every watcher of an order in this gateway shares one reader, which order-status tells of each
change (`waitForEvents`), so the engine's work grows with the order's changes, not with its
watchers or with time; each event is encoded once for all of them.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any

import httpx
from fastapi import Depends, Header, HTTPException, Request
from fastapi.responses import StreamingResponse
from fastapi.sse import format_sse_event

from foodorder.config import Settings
from foodorder.gateway.limits import StreamSlot
from foodorder.gateway.restate import Ingress
from foodorder.models import OrderEvent

# A wait answers empty after order-status' WATCH_S (50 s); give it that and some more.
WAIT_TIMEOUT_S = 65.0
KEEP_ALIVE = format_sse_event(comment="keep-alive")


class EventStream(StreamingResponse):
    """Server-Sent Events already encoded (FastAPI's EventStream would encode each one per stream)."""

    media_type = "text/event-stream"


class Frame:
    """An event and its bytes on the wire."""

    def __init__(self, event: OrderEvent) -> None:
        self.event = event
        self.bytes = format_sse_event(id=str(event.seq), event=event.type, data_str=event.model_dump_json())


Watcher = asyncio.Queue[Frame | None]


class OrderFeed:
    """One reader of an order's events, the events a new watcher needs, and the queues of its watchers.

    A watcher gets every event from the first (None when the reader stopped), so a stream's
    backlog costs the engine nothing once the order is watched.
    """

    def __init__(self, feeds: "OrderFeeds", key: str) -> None:
        self.feeds, self.key = feeds, key
        self.watchers: set[Watcher] = set()
        self.frames: list[Frame] = []
        self.task = asyncio.create_task(self._read())

    def add(self, watcher: Watcher) -> None:
        self.watchers.add(watcher)
        for frame in self.frames:
            watcher.put_nowait(frame)

    def keep(self, frame: Frame) -> None:
        """Keep every status, and of the ETA and driver updates only the latest (as order-status does)."""
        if frame.event.type != "status":
            self.frames = [kept for kept in self.frames if kept.event.type == "status"]
        self.frames.append(frame)

    async def _read(self) -> None:
        try:
            while not (self.frames and self.frames[-1].event.final):
                last = self.frames[-1].event.seq if self.frames else 0
                batch: list[Any] = await self.feeds.ingress.call(
                    "order-status", self.key, "waitForEvents", last, timeout_s=WAIT_TIMEOUT_S
                )
                for raw in batch:
                    frame = Frame(OrderEvent.model_validate(raw))
                    self.keep(frame)
                    for watcher in self.watchers:
                        watcher.put_nowait(frame)
                # Changes that come within this pause are read together: a busy order (a driver
                # reporting every second) costs one read per pause, not two invocations a change.
                await asyncio.sleep(self.feeds.batch_s)
        except (HTTPException, httpx.HTTPError):
            pass  # the streams end; their clients resume with Last-Event-ID
        finally:
            self.feeds.drop(self)
            for watcher in self.watchers:
                watcher.put_nowait(None)


class OrderFeeds:
    """The gateway's readers of order events, one per watched order."""

    def __init__(self, ingress: Ingress, batch_s: float) -> None:
        self.ingress, self.batch_s = ingress, batch_s
        self.feeds: dict[str, OrderFeed] = {}

    @contextlib.contextmanager
    def watch(self, key: str) -> Iterator[Watcher]:
        """A queue of the order's events from now on, while the context lasts."""
        watcher: Watcher = asyncio.Queue()
        feed = self.feeds.get(key)
        if feed is None:
            feed = self.feeds[key] = OrderFeed(self, key)
        feed.add(watcher)
        try:
            yield watcher
        finally:
            feed.watchers.discard(watcher)
            if not feed.watchers:
                feed.task.cancel()
                self.drop(feed)

    def drop(self, feed: OrderFeed) -> None:
        if self.feeds.get(feed.key) is feed:
            del self.feeds[feed.key]

    async def close(self) -> None:
        for feed in list(self.feeds.values()):
            feed.task.cancel()
        await self.ingress.close()


async def order_event_stream(
    feeds: OrderFeeds, order_key: str, after: int, max_s: float, keepalive_s: float
) -> AsyncIterator[bytes]:
    """Every event of the order after number `after`, as it happens, for at most `max_s` seconds.

    It ends after a final status: for a final order at once, with the final status again when the
    client has seen every event. A quiet stream sends a comment every `keepalive_s`.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_s
    with feeds.watch(order_key) as watcher:
        while (left := deadline - loop.time()) > 0:
            try:
                frame: Frame | None = await asyncio.wait_for(watcher.get(), min(keepalive_s, left))
            except TimeoutError:
                yield KEEP_ALIVE
                continue
            if frame is None:
                return  # Restate did not answer: the client resumes with Last-Event-ID
            if frame.event.seq > after or frame.event.final:
                after = max(after, frame.event.seq)
                yield frame.bytes
                if frame.event.final:
                    return


def resume_after(last_event_id: str | None) -> int:
    """The event number a reconnecting client saw last; anything but a number starts from 0."""
    value = (last_event_id or "").strip()
    return int(value) if value.isdigit() and len(value) <= 18 else 0


def event_stream(
    request: Request,
    _slot: Annotated[None, StreamSlot],
    last_event_id: Annotated[
        str | None, Header(description="resume after this event number (anything else: from the start)")
    ] = None,
) -> Callable[[str], EventStream]:
    """The stream of an order (by workflow key) for this request, in its place among the open streams."""
    settings: Settings = request.app.state.settings

    def respond(order_key: str) -> EventStream:
        events = order_event_stream(
            request.app.state.feeds,
            order_key,
            after=resume_after(last_event_id),
            max_s=settings.stream_max_s,
            keepalive_s=settings.stream_keepalive_s,
        )
        # Proxies must pass each event on at once (nginx buffers unless told not to).
        return EventStream(events, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return respond


StreamDep = Annotated[Callable[[str], EventStream], Depends(event_stream)]
