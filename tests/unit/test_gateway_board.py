"""The gateway's batches of order starts for the ops board."""

import asyncio
from typing import Any, cast

import httpx
import pytest

from foodorder.gateway import board as gateway_board
from foodorder.gateway.board import BoardStarts
from foodorder.gateway.restate import Ingress
from foodorder.ordering.board import SHARDS


class OpsBoard:
    """The ingress as BoardStarts uses it: takes (or, when down, refuses) the batches of starts."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[str]]] = []
        self.down = False

    async def send(self, service: str, key: str, handler: str, body: list[dict[str, Any]]) -> dict[str, str]:
        assert (service, handler) == ("ops-board", "ordersStarted")
        if self.down:
            raise httpx.ConnectError("the ingress is down")
        self.batches.append((key, [started["orderId"] for started in body]))
        return {"status": "Accepted"}


def test_a_second_s_starts_go_in_one_batch_to_the_shard_their_runs_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gateway_board, "SEND_EVERY_S", 3600)  # the test sends the batches itself

    async def batches() -> tuple[str, str, list[tuple[str, list[str]]]]:
        ops_board = OpsBoard()
        starts = BoardStarts(cast(Ingress, ops_board))
        first = starts.next_shard
        starts.add("a", first)
        starts.add("b", first)
        await starts.send()
        second = starts.next_shard
        starts.add("c", first)  # its run named the shard before the batch went
        starts.add("d", second)
        ops_board.down = True
        await starts.send()  # not taken: kept for the next try
        ops_board.down = False
        await starts.close()
        return first, second, ops_board.batches

    first, second, sent = asyncio.run(batches())

    assert second == str((int(first) + 1) % SHARDS)
    assert sent == [(first, ["a", "b"]), (first, ["c"]), (second, ["d"])]
