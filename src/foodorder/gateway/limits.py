"""Limits that keep the gateway usable in public: request rates per API key and per client address,
and open event streams per address, per key and in total. Beyond a limit: 429 with Retry-After.

Rates are counted by the `limits` library, in memory, per gateway process, over sliding windows: the
current window's count plus the previous window's, weighted by how much of it the sliding window still
covers. Two counters a key, and no thread: the exact moving window kept every hit, and the library
sorted out the expired ones in a thread after every request, a tenth of the gateway's CPU at intake.
The price is an estimate: calls bunched at a window's end let up to about twice the limit through in
the window's length after them.
"""

import contextlib
import ipaddress
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

import limits
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from pydantic import IPvAnyNetwork

from foodorder.config import Settings

# What a client told "too many open streams" should wait before it tries again.
STREAM_RETRY_AFTER_S = 5
optional_bearer = HTTPBearer(auto_error=False)


def too_many(what: str, retry_after_s: int) -> HTTPException:
    return HTTPException(429, f"{what}: retry in {retry_after_s} s", {"Retry-After": str(retry_after_s)})


def trusted(address: str, proxies: list[IPvAnyNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(request: Request) -> str:
    """The caller's address: the peer's, or the one X-Forwarded-For names as far as trusted proxies tell."""
    settings: Settings = request.app.state.settings
    address = request.client.host if request.client else "unknown"
    hops = [hop.strip() for value in request.headers.getlist("x-forwarded-for") for hop in value.split(",")]
    # Each trusted proxy appends the address it got the request from: walk back while the teller is trusted.
    while hops and trusted(address, settings.trusted_proxies):
        address = hops.pop() or "unknown"
    return address


class Limiter:
    """The gateway's rate limits and its count of open event streams."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rates = SlidingWindowCounterRateLimiter(MemoryStorage())
        self.api = limits.parse_many(settings.api_rate_limit)
        self.storefront = limits.parse_many(settings.storefront_rate_limit)
        self.open_streams: Counter[str] = Counter()

    async def hit(self, rates: list[limits.RateLimitItem], what: str, *identity: str) -> None:
        """Count one call of `identity`; 429 if that is more than one of `rates` allows."""
        for rate in rates:
            if not await self.rates.hit(rate, *identity):
                stats = await self.rates.get_window_stats(rate, *identity)
                retry_after = max(1, math.ceil(stats.reset_time - time.time()))
                raise too_many(f"too many {what}: at most {rate}", retry_after)

    @contextlib.contextmanager
    def stream(self, address: str, key: str | None) -> Iterator[None]:
        """Hold an open stream's place while the context lasts; 429 when a cap is reached."""
        s = self.settings
        caps = {"total": s.streams_total, f"address {address}": s.streams_per_address}
        if key is not None:
            caps[f"key {key}"] = s.streams_per_key
        names = {"total": "in this gateway", f"address {address}": "from your address"}
        for slot, cap in caps.items():
            if self.open_streams[slot] >= cap:
                what = names.get(slot, "for this API key")
                raise too_many(f"too many open event streams {what} (at most {cap})", STREAM_RETRY_AFTER_S)
        self.open_streams.update(caps.keys())
        try:
            yield
        finally:
            self.open_streams.subtract(caps.keys())
            for slot in caps:
                if self.open_streams[slot] <= 0:
                    del self.open_streams[slot]


def limiter(request: Request) -> Limiter:
    found: Limiter = request.app.state.limiter
    return found


async def storefront_rate(request: Request) -> None:
    """Anonymous storefront calls (quote, checkout, cancel), counted per client address."""
    limit = limiter(request)
    await limit.hit(
        limit.storefront, "storefront requests from your address", "store", client_address(request)
    )


async def stream_slot(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(optional_bearer)],
) -> AsyncIterator[None]:
    """A place for one more open event stream of this address (and key), held until the stream ends."""
    key = credentials.credentials if credentials else None
    with limiter(request).stream(client_address(request), key):
        yield


StorefrontRate = Depends(storefront_rate)
StreamSlot = Depends(stream_slot)
