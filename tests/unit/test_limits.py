"""The client address behind reverse proxies, and where a reconnecting event stream resumes."""

import pytest
from fastapi import FastAPI
from starlette.requests import Request

from foodorder.config import Settings
from foodorder.gateway.events import resume_after
from foodorder.gateway.limits import client_address


def request_from(peer: str, forwarded_for: str | None, trusted: list[str]) -> Request:
    app = FastAPI()
    app.state.settings = Settings(trusted_proxies=trusted)
    headers = [(b"x-forwarded-for", forwarded_for.encode())] if forwarded_for else []
    return Request({"type": "http", "app": app, "client": (peer, 40000), "headers": headers})


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "trusted", "client"),
    [
        ("203.0.113.5", None, [], "203.0.113.5"),
        ("203.0.113.5", "198.51.100.1", [], "203.0.113.5"),  # not a proxy: its header is not believed
        ("10.0.0.2", "198.51.100.1", ["10.0.0.0/8"], "198.51.100.1"),
        ("10.0.0.2", "6.6.6.6, 198.51.100.1", ["10.0.0.0/8"], "198.51.100.1"),  # the client wrote 6.6.6.6
        ("10.0.0.2", "198.51.100.1, 10.0.0.3", ["10.0.0.0/8"], "198.51.100.1"),  # two proxies
        ("10.0.0.2", "not-an-address", ["10.0.0.0/8"], "not-an-address"),
    ],
)
def test_the_client_address_comes_from_x_forwarded_for_only_through_trusted_proxies(
    peer: str, forwarded_for: str | None, trusted: list[str], client: str
) -> None:
    assert client_address(request_from(peer, forwarded_for, trusted)) == client


@pytest.mark.parametrize(
    ("header", "after"), [(None, 0), ("12", 12), (" 7 ", 7), ("-3", 0), ("abc", 0), ("9" * 40, 0)]
)
def test_a_stream_resumes_after_a_number_and_starts_over_for_anything_else(
    header: str | None, after: int
) -> None:
    assert resume_after(header) == after
