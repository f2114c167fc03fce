"""A request to Restate's ingress or admin API goes to the next node's URL when one refuses it."""

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from foodorder.clients.restate import RestateApi
from foodorder.stack import free_port


class Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass  # no lines on the test's output


@pytest.fixture
def node() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


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
