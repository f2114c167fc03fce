"""The gateway application."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from foodorder.config import Settings
from foodorder.gateway.restate import Ingress
from foodorder.gateway.routers import catalog, drivers, health, orders, restaurants


def create_app(settings: Settings) -> FastAPI:
    """The public API on top of the Restate ingress."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.ingress = Ingress(settings.ingress_url, settings.http_timeout_s)
        yield
        await app.state.ingress.close()

    app = FastAPI(
        title="foodorder public API",
        version="1",
        description="Orders for providers, readiness for restaurants, work and locations for drivers.",
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,
    )
    app.state.settings = settings

    @app.exception_handler(httpx.HTTPError)
    async def engine_unreachable(request: Request, error: httpx.HTTPError) -> JSONResponse:
        return JSONResponse({"detail": f"order engine unreachable: {error}"}, status_code=503)

    for module in (health, catalog, orders, restaurants, drivers):
        app.include_router(module.router)
    return app
