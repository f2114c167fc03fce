"""The gateway application."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from restate.exceptions import TerminalError

from foodorder import telemetry
from foodorder.clients.http import Transient
from foodorder.clients.locations import publisher_for
from foodorder.clients.restate import RestateApi
from foodorder.config import Settings
from foodorder.gateway import metrics
from foodorder.gateway.auth import Keys
from foodorder.gateway.board import BoardStarts
from foodorder.gateway.events import OrderFeeds
from foodorder.gateway.limits import Limiter
from foodorder.gateway.metrics import Metrics, RequestMetrics
from foodorder.gateway.middleware import BodyGuard
from foodorder.gateway.restate import Ingress
from foodorder.gateway.routers import catalog, drivers, health, ops, orders, restaurants, store, webhooks
from foodorder.gateway.stores import StoreRefused, StoreStates, refusal_response
from foodorder.gateway.web import static_files


def create_app(settings: Settings) -> FastAPI:
    """The public API on top of the Restate ingress, and the web pages on top of the public API."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.ingress = Ingress(settings.ingress_urls, settings.http_timeout_s)
        app.state.stores = StoreStates(app.state.ingress)
        app.state.board_starts = BoardStarts(app.state.ingress)
        # A connection for each watched order's wait, in a pool of its own beside the API's.
        waits = Ingress(settings.ingress_urls, settings.http_timeout_s, settings.streams_total)
        app.state.feeds = OrderFeeds(waits, settings.stream_batch_s)
        app.state.locations = publisher_for(settings, app.state.ingress)
        # /readyz, /ops, /metrics and the webhook delivery logs: any node's admin API answers for all.
        app.state.admin = RestateApi(settings.admin_urls, timeout_s=5)
        app.state.snapshots = ops.Snapshots(app.state.admin, settings)
        app.state.storefront_api = httpx.AsyncClient(
            base_url=settings.gateway_url,
            headers={"Authorization": f"Bearer {settings.storefront_key}"},
            timeout=settings.http_timeout_s + 5,
            # Shorter than the gateway keeps an idle connection, so it never reuses one being closed.
            limits=httpx.Limits(keepalive_expiry=settings.client_timeout_s / 2),
        )
        yield
        await app.state.storefront_api.aclose()
        await app.state.feeds.close()
        await app.state.board_starts.close()
        await app.state.stores.close()
        await app.state.ingress.close()
        await app.state.locations.close()
        await app.state.admin.close()

    app = FastAPI(
        title="foodorder public API",
        version="1",
        description="Orders for providers, readiness for restaurants, work and locations for drivers.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.keys = Keys.of(settings)
    app.state.limiter = Limiter(settings)
    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes, timeout_s=settings.client_timeout_s)
    app.state.metrics = Metrics(lambda: app.state.limiter.open_streams["total"])
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)
    telemetry.instrument(app)

    @app.exception_handler(httpx.HTTPError)
    async def engine_unreachable(request: Request, error: httpx.HTTPError) -> JSONResponse:
        return JSONResponse({"detail": f"order engine unreachable: {error}"}, status_code=503)

    @app.exception_handler(Transient)
    async def not_stored(request: Request, error: Transient) -> JSONResponse:
        return JSONResponse({"detail": f"not stored, try again: {error}"}, status_code=503)

    # A location sent on the ingress (FOODORDER_LOCATION_TRANSPORT=ingress) that the ingress refuses:
    # its answer, as the gateway's own ingress calls pass it on.
    @app.exception_handler(TerminalError)
    async def refused(request: Request, error: TerminalError) -> JSONResponse:
        return JSONResponse({"detail": error.message}, status_code=error.status_code)

    @app.exception_handler(StoreRefused)
    async def store_refused(request: Request, error: StoreRefused) -> JSONResponse:
        return refusal_response(error.refusal)

    for module in (health, catalog, orders, restaurants, drivers, store, ops, webhooks, metrics):
        app.include_router(module.router)
    app.mount("/static", static_files(), name="static")
    return app
