"""The HTTP client of the services and the gateway (httpx's API on aiohttp's pool), and how the
outside world's answers become errors."""

import asyncio
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


class AiohttpPool(AiohttpTransport):
    """httpx-aiohttp's transport, with httpx's pool limit and httpx's errors.

    At most `connections` requests are sent at once, and one that finds none free within the pool
    timeout fails with httpx.PoolTimeout (aiohttp's own limit would report that wait as a connect
    timeout). aiohttp's errors come as the httpx errors that mean the same: httpx-aiohttp reports a
    refused connection and a hang-up alike (ConnectTimeout), and some not as httpx's at all.
    """

    def __init__(self, connections: int) -> None:
        super().__init__(client=self.session)
        self.slots = asyncio.Semaphore(connections)

    @staticmethod
    def session() -> aiohttp.ClientSession:
        # httpx sets the content type of a body it sends; aiohttp would add one to a POST without a body,
        # and Restate's ingress refuses `application/octet-stream` for a handler that takes JSON. The
        # slots bound the connections; the cookies are httpx's.
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            skip_auto_headers=("Content-Type",),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            async with asyncio.timeout(request.extensions.get("timeout", {}).get("pool")):
                await self.slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no connection was free in time", request=request) from None
        try:
            return await super().handle_async_request(request)
        except (httpx.TransportError, aiohttp.ClientError) as error:
            cause = error.__cause__ if isinstance(error, httpx.TransportError) else error
            if not isinstance(cause, aiohttp.ClientError):
                raise
            raise httpx_error(cause)(f"{type(cause).__name__}: {cause}", request=request) from cause
        finally:
            self.slots.release()


def httpx_error(error: aiohttp.ClientError) -> type[httpx.TransportError]:
    """The httpx error that means what aiohttp's `error` does."""
    if isinstance(error, aiohttp.ClientConnectorError):
        return httpx.ConnectError  # refused, or no route: the request went nowhere
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout
    if isinstance(error, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout
    if isinstance(error, aiohttp.ClientPayloadError):
        return httpx.ReadError
    return httpx.RemoteProtocolError  # a hang-up, a reset, an answer that is not HTTP


def pooled_client(connections: int = 100, **options: Any) -> httpx.AsyncClient:
    """An httpx client that sends over aiohttp's connection pool, at most `connections` at once.

    httpx's own pool (httpcore) costs CPU with every request and every connection it holds: it was
    half the gateway's CPU per accepted order, and a third of the services' (py-spy). aiohttp parses
    HTTP in C and finds a free connection without looking at every one (`foodorder bench` figures in
    the README); the client keeps httpx's API and errors.
    """
    return telemetry.trace_requests(httpx.AsyncClient(transport=AiohttpPool(connections), **options))


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
