"""The shared HTTP client of the services process and how its answers become errors."""

from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from restate.exceptions import TerminalError

from foodorder import telemetry

# Answers that say "not now" rather than "no": the same request may succeed later.
RETRYABLE_STATUS = {408, 425, 429}

_client: httpx.AsyncClient | None = None


class Transient(Exception):
    """The outside system could not answer now (a timeout, 408, 429, 5xx): the same call may work later."""


def pooled_client(connections: int = 100, **options: Any) -> httpx.AsyncClient:
    """An httpx client that sends over aiohttp's connection pool, at most `connections` at once.

    httpx's own pool (httpcore) costs CPU with every request and every connection it holds: it was
    half the gateway's CPU per accepted order, and a third of the services'. aiohttp's pool does the
    same work in C (`foodorder bench` figures in the README); the client keeps httpx's API and errors.
    """

    def session() -> aiohttp.ClientSession:
        # httpx sets the content type of a body it sends; aiohttp would add one to a POST without a body,
        # and Restate's ingress refuses `application/octet-stream` for a handler that takes JSON.
        connector = aiohttp.TCPConnector(limit=connections)
        return aiohttp.ClientSession(connector=connector, skip_auto_headers=("Content-Type",))

    return telemetry.trace_requests(httpx.AsyncClient(transport=AiohttpTransport(client=session), **options))


def reached_no_server(error: httpx.TransportError) -> bool:
    """Whether a request failed before a connection carried it (refused, or none in time): only then
    may it go elsewhere. httpx-aiohttp raises aiohttp's errors as httpx's, but not always the same
    kind (a refused connection comes as a ConnectTimeout): aiohttp's own error, the cause, decides."""
    cause = error.__cause__
    if isinstance(cause, aiohttp.ClientError):
        return isinstance(cause, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))
    return isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout))


def http_client() -> httpx.AsyncClient:
    """One pooled client per process, created on first use (never at import time)."""
    global _client
    if _client is None:
        _client = pooled_client()
    return _client


async def post(what: str, url: str, **kwargs: Any) -> httpx.Response:
    """POST to an outside system; a failure to get an answer at all is transient."""
    try:
        return await http_client().post(url, **kwargs)
    except (httpx.TransportError, aiohttp.ClientError) as error:  # the few aiohttp does not map
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
