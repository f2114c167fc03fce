"""Injected faults for the stubs: errors, timeouts, slow answers and answers lost after the work was done.

`foodorder chaos` turns them on (FOODORDER_FAULT_RATE) to prove that retries never duplicate a
charge or a preparation. Reads (GET) are never disturbed.
"""

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from foodorder.config import Settings

KINDS = ("error", "timeout", "slow", "lost")


def inject_faults(app: FastAPI, settings: Settings) -> None:
    """Disturb a share `settings.fault_rate` of the writes `app` answers; GET /faults counts them."""
    injected: Counter[str] = Counter()
    rng = random.Random()

    @app.get("/faults")
    async def faults() -> dict[str, int]:
        """Faults injected since this process started, by kind."""
        return dict(injected)

    if settings.fault_rate == 0:
        return  # no middleware: it would cost every request CPU (a stub shares the machine it tests)

    @app.middleware("http")
    async def disturb(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.method == "GET" or rng.random() >= settings.fault_rate:
            return await call_next(request)
        kind = rng.choice(KINDS)
        injected[kind] += 1
        if kind == "error":
            return JSONResponse({"detail": "injected fault: error"}, status_code=503)
        if kind == "timeout":
            await asyncio.sleep(settings.http_timeout_s + 0.5)
            return JSONResponse({"detail": "injected fault: timeout"}, status_code=504)
        if kind == "slow":
            await asyncio.sleep(settings.http_timeout_s / 4)
            return await call_next(request)
        await call_next(request)  # the work is done, but the caller never hears of it
        return JSONResponse({"detail": "injected fault: answer lost"}, status_code=502)
