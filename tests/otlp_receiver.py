"""A real OTLP/HTTP trace receiver on loopback: a small Starlette app decoding the protobuf.

Tests run it in a thread (:func:`otlp_receiver`) and read the spans it decoded; the trace benchmark
runs it as a process (``python -m tests.otlp_receiver --port 4318``) as the collector's stand-in, where it
decodes every request too, so an exporter pays for a real round trip.
"""

from __future__ import annotations

import argparse
import gzip
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status_code: int
    start_ns: int = 0
    end_ns: int = 0


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    return getattr(value, which) if which is not None else None


@dataclass
class Received:
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        decoded = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    decoded.append(ReceivedSpan(
                        name=span.name, trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(), kind=span.kind,
                        attributes={a.key: _value(a.value) for a in span.attributes}, resource=resource,
                        status_code=span.status.code, start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                    ))
        with self.lock:
            self.requests += 1
            self.spans.extend(decoded)

    def snapshot(self) -> list[ReceivedSpan]:
        with self.lock:
            return list(self.spans)


def receiver_app(received: Received) -> Starlette:
    async def traces(request: Request) -> Response:
        if request.headers.get("content-type") != PROTOBUF:
            return Response(status_code=415)
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        received.add(body)
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type=PROTOBUF)

    return Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])


@dataclass
class RunningReceiver:
    url: str
    received: Received

    def wait_for(self, predicate: Any, limit: float = 20.0) -> list[ReceivedSpan]:
        """The spans once ``predicate(spans)`` holds (the exporter sends in batches, off the request path)."""
        deadline = time.monotonic() + limit
        while True:
            spans = self.received.snapshot()
            if predicate(spans) or time.monotonic() > deadline:
                return spans
            time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def otlp_receiver() -> Iterator[RunningReceiver]:
    """The receiver on a free loopback port, in a thread, for the length of the block."""
    received = Received()
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(receiver_app(received), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="otlp-receiver", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the OTLP receiver did not start")
        time.sleep(0.01)
    try:
        yield RunningReceiver(f"http://127.0.0.1:{port}", received)
    finally:
        server.should_exit = True
        thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description="An OTLP/HTTP trace receiver on loopback that counts spans.")
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args()
    received = Received()
    uvicorn.run(receiver_app(received), host="127.0.0.1", port=args.port, log_level="warning", lifespan="off")
    print(f"received {len(received.spans)} spans in {received.requests} requests")


if __name__ == "__main__":
    main()
