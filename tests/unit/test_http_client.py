"""The services' and the gateway's HTTP client (aiohttp's pool) sends what httpx sent and answers as
httpx did: a JSON body typed as JSON, a POST without a body untyped, a redirect returned, not followed."""

import asyncio
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest

from foodorder.clients.http import Client
from tests.unit.local_http import serve


class Recorder(BaseHTTPRequestHandler):
    """Answers 302 to /moved (pointing at /target) and 200 to anything else; keeps what it was sent."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        Recorder.seen.append(
            {
                "path": self.path,
                "headers": {name.lower(): value for name, value in self.headers.items()},
                "body": body,
            }
        )
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("location", "/target")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        answer = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST

    def log_message(self, *_: object) -> None:
        pass  # no lines on the test's output


@pytest.fixture
def server() -> Iterator[str]:
    Recorder.seen = []
    yield from serve(Recorder)


async def send(method: str, url: str, **kwargs: Any) -> Any:
    client = Client(connections=2, timeout=5)
    try:
        return await client.request(method, url, **kwargs)
    finally:
        await client.aclose()


def test_a_json_body_goes_as_json_and_the_answer_reads_as_httpx_reads_it(server: str) -> None:
    answer = asyncio.run(send("POST", f"{server}/orders", json={"name": "café", "n": 1}))

    assert answer.status_code == 200 and answer.json() == {"path": "/orders"}
    (request,) = Recorder.seen
    assert request["headers"]["content-type"] == "application/json"
    assert json.loads(request["body"]) == {"name": "café", "n": 1}


def test_a_post_without_a_body_has_no_content_type(server: str) -> None:
    # Restate's ingress refuses a content type it does not expect on a handler without input.
    asyncio.run(send("POST", f"{server}/send"))

    (request,) = Recorder.seen
    assert "content-type" not in request["headers"] and request["body"] == b""


def test_a_redirect_is_the_answer_and_is_not_followed(server: str) -> None:
    # Followed, a webhook's 302 would turn its POST into a GET that seems to deliver the event.
    answer = asyncio.run(send("POST", f"{server}/moved", json={"event": 1}))

    assert answer.status_code == 302 and answer.headers["location"] == "/target"
    assert [request["path"] for request in Recorder.seen] == ["/moved"]
