"""An OTLP/HTTP trace receiver (protobuf): tests assert on the spans it decodes; the bench exports to it."""

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass(frozen=True)
class Span:
    """One received span: who sent it (the resource's service.name), its ids, name and attributes."""

    service: str
    trace_id: str
    span_id: str
    name: str
    attributes: dict[str, object]


def _value(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


class Receiver:
    """Collects the spans POSTed to /v1/traces as OTLP/HTTP protobuf."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    @property
    def endpoint(self) -> str:
        """The base URL (FOODORDER_OTLP_ENDPOINT) pointing here."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def received(self) -> list[Span]:
        with self.lock:
            return list(self.spans)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces" or "protobuf" not in self.headers.get("content-type", ""):
                    self.send_error(415 if self.path == "/v1/traces" else 404)
                    return
                request = ExportTraceServiceRequest.FromString(body)
                spans = []
                for resource_spans in request.resource_spans:
                    resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            spans.append(
                                Span(
                                    service=str(resource.get("service.name")),
                                    trace_id=span.trace_id.hex(),
                                    span_id=span.span_id.hex(),
                                    name=span.name,
                                    attributes={a.key: _value(a.value) for a in span.attributes},
                                )
                            )
                with receiver.lock:
                    receiver.spans.extend(spans)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the test asserts on what arrived."""

        return Handler


@contextmanager
def receiving() -> Iterator[Receiver]:
    """A receiver serving in a thread until the block ends."""
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
