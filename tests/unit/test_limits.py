"""The client address behind reverse proxies, and where a reconnecting event stream resumes."""

import pytest
from fastapi import FastAPI
from starlette.requests import Request

from foodorder.config import Settings
from foodorder.gateway.events import Cursor
from foodorder.gateway.limits import client_address
from foodorder.models import OrderEvent, Status


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
    ("header", "after"),
    [
        (None, Cursor(0, 0)),
        ("12.4", Cursor(12, 4)),
        (" 7.0 ", Cursor(7, 0)),
        ("12", Cursor(0, 0)),  # an id of the single sequence before statuses were numbered apart
        ("-3.1", Cursor(0, 0)),
        ("abc", Cursor(0, 0)),
        ("9" * 40 + ".1", Cursor(0, 0)),
    ],
)
def test_a_stream_resumes_after_its_last_event_id_and_starts_over_for_anything_else(
    header: str | None, after: Cursor
) -> None:
    assert Cursor.parse(header) == after
    assert str(after) == f"{after.status}.{after.tracking}"


def test_a_cursor_counts_statuses_and_tracking_updates_apart() -> None:
    status = OrderEvent(seq=3, at=0, type="status", status=Status.SCHEDULED)
    driver = OrderEvent(seq=2, at=0, type="driver")
    cursor = Cursor(2, 5)

    assert not cursor.has(status) and cursor.has(driver)
    assert cursor.past(status) == Cursor(3, 5)
    assert cursor.past(driver) == cursor  # an older tracking update does not move it back
