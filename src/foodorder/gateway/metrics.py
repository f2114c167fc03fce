"""The gateway's Prometheus metrics (`GET /metrics`): its requests, streams and limits, and the orders.

Requests are counted by route template (never by the raw path, whose ids would grow without bound).
Orders ended, by final status, and the time from submission to each status come from the ops board
(`ordering/board.py`), which every order's workflow tells once as it ends: one read of its few shards
per scrape, whatever the number of orders.
"""

import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from foodorder.gateway.auth import OperatorDep
from foodorder.models import Status
from foodorder.ordering import board
from foodorder.ordering.board import BUCKETS_S, Tally

router = APIRouter(tags=["operations"])
SUBMIT_ROUTE = ("POST", "/api/v1/orders")


class Metrics:
    """The metrics of one gateway app, in a registry of their own."""

    def __init__(self, open_streams: Any) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "foodorder_http_requests",
            "requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "foodorder_http_request_duration_seconds",
            "time to answer a request (to its last byte)",
            ["method", "route"],
            registry=self.registry,
        )
        self.limited = Counter(
            "foodorder_http_rate_limited", "requests refused with 429", ["route"], registry=self.registry
        )
        self.submitted = Counter(
            "foodorder_orders_submitted",
            "orders accepted by POST /api/v1/orders (202)",
            registry=self.registry,
        )
        streams = Gauge(
            "foodorder_open_streams", "event streams open in this gateway", registry=self.registry
        )
        streams.set_function(open_streams)
        self.orders = OrdersEnded()
        self.registry.register(self.orders)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
        if status == 429:
            self.limited.labels(route).inc()
        if (method, route) == SUBMIT_ROUTE and status == 202:
            self.submitted.inc()


class OrdersEnded(Collector):
    """Orders ended by final status and seconds from submission to each status, from the board's tallies."""

    def __init__(self) -> None:
        self.tallies: list[Tally] = []

    def collect(self) -> Iterator[Any]:
        ended = CounterMetricFamily(
            "foodorder_orders_ended", "orders that ended, by final status", labels=["status"]
        )
        durations = HistogramMetricFamily(
            "foodorder_order_status_seconds",
            "seconds from an order's submission to each status it reached (counted when it ends)",
            labels=["status"],
        )
        totals: dict[Status, int] = {}
        buckets: dict[Status, list[int]] = {}
        sums: dict[Status, float] = {}
        for tally in self.tallies:
            for status, count in tally.ended.items():
                totals[status] = totals.get(status, 0) + count
            for status, histogram in tally.durations.items():
                merged = buckets.setdefault(status, [0] * len(histogram.buckets))
                buckets[status] = [a + b for a, b in zip(merged, histogram.buckets, strict=True)]
                sums[status] = sums.get(status, 0.0) + histogram.sum_s
        for status, count in sorted(totals.items()):
            ended.add_metric([status], count)
        for status, counts in sorted(buckets.items()):
            cumulative, running = [], 0
            for bound, count in zip([*map(str, BUCKETS_S), "+Inf"], counts, strict=True):
                running += count
                cumulative.append((bound, float(running)))
            durations.add_metric([status], cumulative, sums[status])
        yield ended
        yield durations


class RequestMetrics:
    """ASGI middleware: every HTTP request counted by method, route template and status, and timed."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            # Unmatched paths share one label, so that probing random URLs cannot grow the metrics.
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope["method"], template, status, time.perf_counter() - started)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, _: OperatorDep) -> Response:
    """Prometheus text: this gateway's requests, streams and limits, and the orders."""
    state: Metrics = request.app.state.metrics
    state.orders.tallies = (await board.read(request.app.state.admin)).tallies
    return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)
