"""A request to Restate's ingress or admin API goes to the next node's URL when one refuses it, and
only then: a request a node took and cut off may have been carried out."""

import asyncio
import socket
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from foodorder.clients.restate import RestateApi
from foodorder.stack import free_port
from tests.unit.local_http import serve


class Healthy(BaseHTTPRequestHandler):
    answered = 0  # how many requests the nodes of this kind answered

    def do_GET(self) -> None:
        Healthy.answered += 1
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass  # no lines on the test's output


class Slow(Healthy):
    def do_GET(self) -> None:
        time.sleep(1)
        super().do_GET()


class HangsUp(Healthy):
    def do_GET(self) -> None:
        """Take the request, then close the connection without an answer."""
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True


@pytest.fixture
def node() -> Iterator[str]:
    yield from serve(Healthy)


@pytest.fixture
def hanging_up_node() -> Iterator[str]:
    yield from serve(HangsUp)


@pytest.fixture
def slow_node() -> Iterator[str]:
    yield from serve(Slow)


async def health(api: RestateApi) -> int:
    async with api:
        return (await api.request("GET", "/health")).status_code


def test_a_request_moves_to_the_next_node_and_stays_there(node: str) -> None:
    api = RestateApi([f"http://127.0.0.1:{free_port()}", node], timeout_s=5)
    assert asyncio.run(health(api)) == 200
    assert api.current == 1


def test_a_request_fails_once_every_node_refused() -> None:
    api = RestateApi([f"http://127.0.0.1:{free_port()}" for _ in range(2)], timeout_s=5)
    with pytest.raises(httpx.ConnectError):
        asyncio.run(health(api))


def test_a_request_cut_off_by_a_node_is_not_sent_to_the_next(hanging_up_node: str, node: str) -> None:
    api = RestateApi([hanging_up_node, node], timeout_s=5)
    answered = Healthy.answered
    with pytest.raises(httpx.RemoteProtocolError):
        asyncio.run(health(api))
    assert api.current == 0
    assert Healthy.answered == answered


def test_a_request_that_finds_no_free_connection_in_time_is_not_sent_to_the_next(
    slow_node: str, node: str
) -> None:
    api = RestateApi([slow_node, node], timeout_s=5, connections=1)
    answered = Healthy.answered

    async def two_at_once() -> tuple[httpx.Response | BaseException, httpx.Response | BaseException]:
        async with api:
            first = api.request("GET", "/health")  # holds the one connection for a second
            second = api.request("GET", "/health", timeout=httpx.Timeout(5, pool=0.2))
            return await asyncio.gather(first, second, return_exceptions=True)

    first, second = asyncio.run(two_at_once())

    assert isinstance(first, httpx.Response) and first.status_code == 200
    assert isinstance(second, httpx.PoolTimeout), second
    assert api.current == 0
    assert Healthy.answered == answered + 1  # the slow node's answer only
