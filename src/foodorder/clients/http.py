"""The shared HTTP client of the services process and how its answers become errors."""

from typing import Any

import httpx
from restate.exceptions import TerminalError

# Answers that say "not now" rather than "no": the same request may succeed later.
RETRYABLE_STATUS = {408, 425, 429}

_client: httpx.AsyncClient | None = None


class Transient(Exception):
    """The outside system could not answer now (a timeout, 408, 429, 5xx): the same call may work later."""


def http_client() -> httpx.AsyncClient:
    """One pooled client per process, created on first use (never at import time)."""
    global _client
    if _client is None:
        _client = httpx.AsyncClient()
    return _client


async def post(what: str, url: str, **kwargs: Any) -> httpx.Response:
    """POST to an outside system; a failure to get an answer at all is transient."""
    try:
        return await http_client().post(url, **kwargs)
    except httpx.TransportError as error:
        raise Transient(f"{what}: {type(error).__name__} {error}".strip()) from error


def check_response(response: httpx.Response, what: str) -> None:
    """Return on 2xx; a timeout, 408, 429 or 5xx may pass (Transient); any other answer is final."""
    if response.is_success:
        return
    detail = f"{what} answered {response.status_code}: {response.text[:200]}"
    if response.status_code in RETRYABLE_STATUS or response.is_server_error:
        raise Transient(detail)
    raise TerminalError(detail, status_code=response.status_code)


def field(response: httpx.Response, name: str, what: str) -> str:
    """A string field of a JSON answer; a malformed answer is final (retrying gets the same)."""
    try:
        value = response.json()[name]
    except (ValueError, KeyError, TypeError) as error:
        raise TerminalError(
            f"{what} answered {response.status_code} without {name!r}: {error!r}", 502
        ) from error
    if not isinstance(value, str):
        raise TerminalError(f"{what} answered {response.status_code} with {name}={value!r}", 502)
    return value
