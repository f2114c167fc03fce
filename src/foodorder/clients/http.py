"""The HTTP client of the services and the gateway (aiohttp's connection pool, answering with httpx's
types), and how the outside world's answers become errors."""

import asyncio
import json as jsonlib
from typing import Any

import aiohttp
import httpx
from restate.exceptions import TerminalError

# Answers that say "not now" rather than "no": the same request may succeed later.
RETRYABLE_STATUS = {408, 425, 429}

_client: "Client | None" = None


class Transient(Exception):
    """The outside system could not answer now (a timeout, 408, 429, 5xx): the same call may work later."""


class Client:
    """Requests over aiohttp's connection pool, at most `connections` at once, each answered with the
    whole body as an httpx.Response; aiohttp's errors come as the httpx errors that mean the same.

    It sends through aiohttp directly: httpx's own client (building the request, its URL, headers and
    cookies, then redirects and streams, all in Python) was 15% of the gateway's samples and 9% of the
    services' under intake even over aiohttp's pool (py-spy), while aiohttp parses HTTP in C. A timeout
    (seconds, or an httpx.Timeout) bounds the wait for a free connection, the connect and each read, as
    httpx's does; one that finds no connection free in time fails with httpx.PoolTimeout (aiohttp's own
    limit would report that wait as a connect timeout). A redirect is an answer, not followed.
    """

    def __init__(self, connections: int = 100, timeout: float | httpx.Timeout = 10) -> None:
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.slots = asyncio.Semaphore(connections)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """The pool, made on first use, inside the event loop that uses it."""
        if self._session is None:
            # The slots bound the connections. aiohttp would add a content type to a POST without a
            # body, and Restate's ingress refuses `application/octet-stream` for a handler taking JSON.
            # The answer is decompressed once, by httpx.Response, as its headers say.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                skip_auto_headers=("Content-Type",),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | httpx.Timeout | None = None,  # noqa: ASYNC109 (httpx's, per phase)
    ) -> httpx.Response:
        """`method` `url`, with `json` or `content` as the body; the answer, read whole."""
        limits = self.timeout if timeout is None else timeout
        if not isinstance(limits, httpx.Timeout):
            limits = httpx.Timeout(limits)
        fields = dict(headers or {})
        if json is not None:  # encoded as httpx encodes it
            content = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
            if not any(name.lower() == "content-type" for name in fields):
                fields["content-type"] = "application/json"
        try:
            async with asyncio.timeout(limits.pool):
                await self.slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no connection was free in time") from None
        try:
            # `connect` bounds the name's lookup too; a redirect is an answer, as with httpx (a webhook's
            # 302 followed would turn its POST into a GET that seems to deliver it).
            wait = aiohttp.ClientTimeout(
                total=None, connect=limits.connect, sock_connect=limits.connect, sock_read=limits.read
            )
            async with self.session().request(
                method, url, data=content, headers=fields, timeout=wait, allow_redirects=False
            ) as answer:
                body = await answer.read()
            return httpx.Response(
                answer.status, headers=answer.raw_headers, content=body, request=httpx.Request(method, url)
            )
        except aiohttp.ClientError as error:
            raise httpx_error(error)(f"{type(error).__name__}: {error}") from error
        finally:
            self.slots.release()

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


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


def http_client() -> Client:
    """One client per process, created on first use (never at import time)."""
    global _client
    if _client is None:
        _client = Client()
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
