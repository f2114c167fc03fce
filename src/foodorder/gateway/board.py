"""The starts of the orders this gateway took, sent to the ops board in batches (one a second).

An order's workflow would otherwise tell the board of its start itself: one invocation per order on
the intake's path. The gateway names, in a header of the orders' `run`, the board shard that its
batch goes to (the next shard each second), so that their workflows do not list them and send their
endings there. If the gateway stops before a batch went out, those orders are not listed as in
flight until they end, when their workflows count them as usual (and `/ops` lists any that Restate
retries).
"""

import asyncio
import contextlib
import logging
import random
from typing import Annotated

import httpx
from fastapi import Depends, HTTPException, Request

from foodorder.gateway.restate import Ingress
from foodorder.models import epoch_ms
from foodorder.ordering import board
from foodorder.ordering.board import OrderStarted

log = logging.getLogger(__name__)
SEND_EVERY_S = 1.0
# Starts kept for a board that does not answer, at most; beyond that the oldest are dropped.
MAX_PENDING = 100_000


class BoardStarts:
    """Orders taken and not yet told to the ops board, by shard, and the task that sends them."""

    def __init__(self, ingress: Ingress) -> None:
        self.ingress = ingress
        self.pending: dict[str, list[OrderStarted]] = {}
        # The shard of the next batch: the next one each second, from a random one (several gateways).
        self.next_index = random.randrange(board.SHARDS)
        self.task = asyncio.create_task(self._send_every_second())

    @property
    def next_shard(self) -> str:
        """The shard that the next batch goes to: an order's `run` names it before the order is added."""
        return board.SHARD_KEYS[self.next_index]

    def add(self, order_id: str, shard: str) -> None:
        """An order this gateway took: listed in flight in `shard` (the one its `run` named) with the
        next batch."""
        self.pending.setdefault(shard, []).append(OrderStarted(order_id=order_id, at=epoch_ms()))

    async def send(self) -> None:
        """Send the pending starts, a batch per shard (one shard, or two when an order named the shard
        just before it moved on); a batch not sent (the board did not take it, or the sending was
        cancelled) is kept for the next try."""
        batches, self.pending = self.pending, {}
        self.next_index = (self.next_index + 1) % board.SHARDS
        try:
            while batches:
                shard, started = next(iter(batches.items()))
                body = [s.model_dump(mode="json") for s in started]
                try:
                    await self.ingress.send("ops-board", shard, "ordersStarted", body)
                except (HTTPException, httpx.HTTPError) as error:
                    log.warning(
                        "ops board did not take %d starts of shard %s: %s", len(started), shard, error
                    )
                    break
                del batches[shard]
        finally:
            for shard, started in batches.items():
                kept = self.pending.setdefault(shard, [])
                kept[:0] = started[-MAX_PENDING:]

    async def _send_every_second(self) -> None:
        while True:
            await asyncio.sleep(SEND_EVERY_S)
            await self.send()

    async def close(self) -> None:
        """Stop sending every second; send what is left."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.send()


async def board_starts(request: Request) -> BoardStarts:
    starts: BoardStarts = request.app.state.board_starts
    return starts


BoardStartsDep = Annotated[BoardStarts, Depends(board_starts)]
