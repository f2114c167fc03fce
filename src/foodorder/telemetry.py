"""Traces and logs of every process, tied together by the order they concern.

With `FOODORDER_OTLP_ENDPOINT` set, each process exports its spans over OTLP/HTTP, and the W3C
`traceparent` header carries the trace from the gateway through restate-server into the handlers and
on to the payment provider and the POS. The order a span concerns travels beside it as W3C baggage
(`foodorder.order.id`) and becomes an attribute of every span that is started under it. Unset, nothing
is instrumented: no exporter, no middleware, no cost.

Logs are JSON lines (with the order id and the trace id where there is one) unless the process writes
to a terminal.
"""

import contextlib
import contextvars
import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any

from opentelemetry import baggage, context, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.processor.baggage import BaggageSpanProcessor
from opentelemetry.propagate import extract
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from pythonjsonlogger.json import JsonFormatter
from restate.server_context import current_context

from foodorder.config import Settings

ORDER_ID = "foodorder.order.id"  # span attribute, baggage key and log field
# The services keyed by the order id: their invocations concern that order.
ORDER_SERVICES = frozenset({"order-workflow", "order-status"})
# Probes and scrapes are not worth a trace each.
UNTRACED_PATHS = "healthz,readyz,metrics,restate/health"

_order: contextvars.ContextVar[str | None] = contextvars.ContextVar("foodorder_order", default=None)
_tracing = False


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces address under the base URL `endpoint` (as OTEL_EXPORTER_OTLP_ENDPOINT)."""
    return endpoint.rstrip("/") + "/v1/traces"


def restate_tracing_endpoint(endpoint: str) -> str:
    """restate-server's `tracing-endpoint` for the same receiver: its `otlp+http` scheme speaks OTLP/HTTP
    (a plain `http://` address would make it speak OTLP/gRPC)."""
    return "otlp+" + traces_url(endpoint)


class Level1Ids(RandomIdGenerator):
    """Random ids, announced as W3C Trace Context level 1 does (the `sampled` flag only).

    The SDK marks its trace ids random with a level-2 flag (`traceparent` flags `03`); restate-server's
    propagator refuses flags above 02 and would start a new trace at the ingress instead.
    """

    def is_trace_id_random(self) -> bool:
        return False


def setup(settings: Settings, process: str) -> None:
    """Logging for this process, and tracing when an OTLP endpoint is configured."""
    setup_logging(process)
    if settings.otlp_endpoint:
        setup_tracing(settings.otlp_endpoint, process)


def setup_tracing(endpoint: str, process: str) -> None:
    """Export this process's spans to `endpoint` and trace every request it makes (httpx's and aiohttp's)."""
    global _tracing
    resource = Resource.create({"service.name": f"foodorder-{process}"})
    provider = TracerProvider(resource=resource, id_generator=Level1Ids())
    provider.add_span_processor(BaggageSpanProcessor(lambda key: key == ORDER_ID))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint))))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument()
    AioHttpClientInstrumentor().instrument()
    _tracing = True


def instrument(app: Any) -> None:
    """A span for every request the FastAPI `app` serves (when tracing)."""
    if _tracing:
        # One span per request: ASGI's per-message "receive"/"send" spans say nothing to a reader.
        FastAPIInstrumentor.instrument_app(
            app, excluded_urls=UNTRACED_PATHS, exclude_spans=["receive", "send"]
        )


@contextmanager
def about_order(order_id: str) -> Iterator[None]:
    """Within this block the work concerns `order_id`: the current span and every span started in it
    carry it, and so do the log lines and the requests sent (as baggage)."""
    token = _order.set(order_id)
    attached = None
    if _tracing:
        trace.get_current_span().set_attribute(ORDER_ID, order_id)
        attached = context.attach(baggage.set_baggage(ORDER_ID, order_id))
    try:
        yield
    finally:
        if attached is not None:
            context.detach(attached)
        _order.reset(token)


def follow_invocations(services: Iterable[Any]) -> None:
    """Have every handler of `services` run inside `invocation_scope` (once, however often called)."""
    for service in services:
        for handler in service.handlers.values():
            managers = handler.context_managers or []
            if not any(getattr(m, "foodorder_scope", False) for m in managers):
                handler.context_managers = [*managers, invocation_scope(service.name, handler.name)]


def invocation_scope(service: str, handler: str) -> Callable[[], AbstractAsyncContextManager[None]]:
    """What runs around each attempt of a Restate handler: a span (when tracing), child of
    restate-server's invocation span (its `traceparent`), and the order when the service is keyed by one."""
    tracer = trace.get_tracer("foodorder.services")

    @asynccontextmanager
    async def scope() -> AsyncIterator[None]:
        ctx = current_context()
        assert ctx is not None, "entered outside a Restate invocation"
        key = ctx.key() if service in ORDER_SERVICES else None  # type: ignore[attr-defined]
        with contextlib.ExitStack() as inside:
            if _tracing:
                parent = extract(ctx.request().attempt_headers)
                name = f"{service}/{handler}"
                inside.enter_context(tracer.start_as_current_span(name, parent, trace.SpanKind.SERVER))
            if key:
                inside.enter_context(about_order(key))
            yield

    scope.foodorder_scope = True  # type: ignore[attr-defined]
    return scope


class _Context(logging.Filter):
    """Adds the order and the trace a log line belongs to, where there is one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if order := _order.get() or baggage.get_baggage(ORDER_ID):
            setattr(record, ORDER_ID, order)
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            record.trace_id = format(span.trace_id, "032x")
        return True


def setup_logging(process: str, level: int = logging.INFO) -> None:
    """Log lines to stderr: JSON (one object a line) unless stderr is a terminal."""
    handler = logging.StreamHandler()
    handler.addFilter(_Context())
    if sys.stderr.isatty():
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields={"process": process},
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # A line per request sent is the traces' job, not the logs'.
    logging.getLogger("httpx").setLevel(logging.WARNING)
