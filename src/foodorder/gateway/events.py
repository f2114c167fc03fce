"""An order's events (status, ETA, driver position) as Server-Sent Events.

The statuses come from the order's workflow (`waitForStatus`, a wait on the next status' promise),
the ETA and the driver from order-status (`waitForEvents`, told by the handler that changes them).
Every watcher of an order in this gateway shares one reader of each, so the engine's work grows with
the order's changes, not with its watchers or with time; each event is encoded once for all of them.

The two are numbered apart: an event's id is `<status>.<tracking>`, the last of each that the client
has with it, which it sends back as Last-Event-ID to resume.
"""

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any, NamedTuple

import httpx
from fastapi import Depends, Header, HTTPException, Request
from fastapi.responses import StreamingResponse
from fastapi.sse import format_sse_event

from foodorder.config import Settings
from foodorder.gateway.limits import StreamSlot
from foodorder.gateway.restate import Ingress
from foodorder.models import OrderEvent

# A wait answers empty after WATCH_S (50 s) of the workflow or order-status; give it that and more.
WAIT_TIMEOUT_S = 65.0
KEEP_ALIVE = format_sse_event(comment="keep-alive")
CURSOR = re.compile(r"(\d{1,18})\.(\d{1,18})")


class Cursor(NamedTuple):
    """Where a reader of an order's events stands: the numbers of the last status and the last
    tracking update (ETA, driver) it has."""

    status: int = 0
    tracking: int = 0

    @classmethod
    def parse(cls, text: str | None) -> "Cursor":
        """A Last-Event-ID (`<status>.<tracking>`); anything else starts from the first event."""
        found = CURSOR.fullmatch((text or "").strip())
        return cls(int(found[1]), int(found[2])) if found else cls()

    def has(self, event: OrderEvent) -> bool:
        """Whether the reader has `event` already."""
        return event.seq <= (self.status if event.type == "status" else self.tracking)

    def past(self, event: OrderEvent) -> "Cursor":
        """Where the reader stands once it has `event` too."""
        if self.has(event):
            return self
        if event.type == "status":
            return self._replace(status=event.seq)
        return self._replace(tracking=event.seq)

    def __str__(self) -> str:
        return f"{self.status}.{self.tracking}"


class EventStream(StreamingResponse):
    """Server-Sent Events already encoded (FastAPI's EventStream would encode each one per stream)."""

    media_type = "text/event-stream"


class Frame:
    """An event and its bytes on the wire but for its id (which depends on the stream's reader)."""

    def __init__(self, event: OrderEvent) -> None:
        self.event = event
        self.bytes = format_sse_event(event=event.type, data_str=event.model_dump_json())

    def sent_at(self, cursor: Cursor) -> bytes:
        """The event with the id of the reader that has it now."""
        return f"id: {cursor}\n".encode() + self.bytes


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
        self.cursor = Cursor()
        self.task = asyncio.create_task(self._read())

    @property
    def ended(self) -> bool:
        """Whether the order's final status came (a tracking update is never kept after it)."""
        return bool(self.frames) and self.frames[-1].event.final

    def add(self, watcher: Watcher) -> None:
        self.watchers.add(watcher)
        for frame in self.frames:
            watcher.put_nowait(frame)

    def publish(self, event: OrderEvent) -> None:
        """Pass a new event on to every watcher; keep every status, and only the latest tracking."""
        if self.cursor.has(event):
            return  # a final status, answered again
        self.cursor = self.cursor.past(event)
        if self.ended:
            return  # a tracking update that came after the end
        frame = Frame(event)
        if event.type != "status":
            self.frames = [kept for kept in self.frames if kept.event.type == "status"]
        self.frames.append(frame)
        for watcher in self.watchers:
            watcher.put_nowait(frame)

    async def _next(self, statuses: bool) -> None:
        """Wait for the order's next statuses (workflow) or tracking update (order-status)."""
        service, handler = (
            ("order-workflow", "waitForStatus") if statuses else ("order-status", "waitForEvents")
        )
        after = self.cursor.status if statuses else self.cursor.tracking
        batch: list[Any] = await self.feeds.ingress.call(
            service, self.key, handler, after, timeout_s=WAIT_TIMEOUT_S
        )
        for raw in batch:
            self.publish(OrderEvent.model_validate(raw))

    async def _follow(self, statuses: bool) -> None:
        while not self.ended:
            await self._next(statuses)
            if not statuses:
                # Changes that come within this pause are read together: a busy order (a driver
                # reporting every second) costs one read per pause, not two invocations a change.
                await asyncio.sleep(self.feeds.batch_s)

    async def _read(self) -> None:
        readers: list[asyncio.Task[None]] = []
        try:
            await self._next(statuses=True)  # the statuses so far come first: an ended order is its statuses
            readers = [asyncio.create_task(self._follow(statuses)) for statuses in (True, False)]
            # The statuses end with the order; a reader that fails ends the streams (see below).
            done, _ = await asyncio.wait(readers, return_when=asyncio.FIRST_COMPLETED)
            for reader in done:
                reader.result()
        except (HTTPException, httpx.HTTPError):
            pass  # the streams end; their clients resume with Last-Event-ID
        finally:
            for reader in readers:
                reader.cancel()
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
    feeds: OrderFeeds, order_key: str, after: Cursor, max_s: float, keepalive_s: float
) -> AsyncIterator[bytes]:
    """Every event of the order after `after`, as it happens, for at most `max_s` seconds.

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
            if not after.has(frame.event) or frame.event.final:
                after = after.past(frame.event)
                yield frame.sent_at(after)
                if frame.event.final:
                    return


async def event_stream(
    request: Request,
    _slot: Annotated[None, StreamSlot],
    last_event_id: Annotated[
        str | None,
        Header(
            description="resume after this event id, `<status>.<tracking>` (anything else: from the start)"
        ),
    ] = None,
) -> Callable[[str], EventStream]:
    """The stream of an order (by workflow key) for this request, in its place among the open streams."""
    settings: Settings = request.app.state.settings

    def respond(order_key: str) -> EventStream:
        events = order_event_stream(
            request.app.state.feeds,
            order_key,
            after=Cursor.parse(last_event_id),
            max_s=settings.stream_max_s,
            keepalive_s=settings.stream_keepalive_s,
        )
        # Proxies must pass each event on at once (nginx buffers unless told not to).
        return EventStream(events, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return respond


StreamDep = Annotated[Callable[[str], EventStream], Depends(event_stream)]
