"""The OpenTelemetry side of :mod:`f2f_cli.tracing` (needs the ``f2f[otel]`` extra; imported only when on).

One tracer provider per process, not installed as OpenTelemetry's global (a test may start and stop
tracing more than once in one process, which the global refuses): the instrumentations and f2f's own
spans are handed it. Names and attributes never carry a session id: the request span is named by
the route template, redis-py's spans carry ``COMMAND ? ?`` (the instrumentation masks arguments),
psycopg's the parameterised SQL, and an exception is recorded by its type, never its message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from opentelemetry import context, trace
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.propagate import extract
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from f2f_cli.tracing import AttributeValue, exporter_of

SCOPE = "f2f"
DEFAULT_SERVICE = "f2f"
# redis-py's Script objects run as EVALSHA <sha>: the sha names the script on the span.
_script_names: dict[str, str] = {}


def name_scripts(named: Mapping[str, str]) -> None:
    """Record ``{sha: name}`` so the EVALSHA spans say which of f2f's Lua scripts ran."""
    _script_names.update(named)


def _redis_request_hook(span: trace.Span, _instance: Any, args: list[Any], _kwargs: dict[str, Any]) -> None:
    if len(args) > 1 and span.is_recording() and str(args[0]).upper() in ("EVALSHA", "EVALSHA_RO"):
        sha = args[1].decode() if isinstance(args[1], bytes) else str(args[1])
        name = _script_names.get(sha)
        if name is not None:
            span.update_name(f"EVALSHA {name}")
            span.set_attribute("f2f.redis.script", name)


class _Headers:
    """The ASGI header list as a W3C trace-context carrier (read only when tracing is on)."""

    @staticmethod
    def get(carrier: Iterable[tuple[bytes, bytes]], key: str) -> list[str] | None:
        wanted = key.encode("latin-1")
        found = [value.decode("latin-1") for name, value in carrier if name == wanted]
        return found or None

    @staticmethod
    def keys(carrier: Iterable[tuple[bytes, bytes]]) -> list[str]:
        return [name.decode("latin-1") for name, _ in carrier]


_HEADERS = _Headers()


class RequestSpan:
    """A server span open for one HTTP request; :meth:`end` names it by its route template."""

    __slots__ = ("_span", "_token", "method")

    def __init__(self, span: trace.Span, token: object, method: str) -> None:
        self._span = span
        self._token = token
        self.method = method

    def end(self, route: str, status: int) -> str | None:
        span = self._span
        span.update_name(f"{self.method} {route}")
        if span.is_recording():
            span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
        context.detach(self._token)  # type: ignore[arg-type]
        span.end()
        ctx = span.get_span_context()
        return format(ctx.trace_id, "032x") if ctx.is_valid and ctx.trace_flags.sampled else None


class OtelTracing:
    def __init__(self, provider: TracerProvider, role: str) -> None:
        self.provider = provider
        self.role = role
        self.tracer = provider.get_tracer(SCOPE)

    @classmethod
    def start(cls, role: str, environ: Mapping[str, str]) -> OtelTracing:
        attributes: dict[str, AttributeValue] = {"f2f.command": role}
        named_by_env = environ.get("OTEL_SERVICE_NAME", "").strip() or "service.name=" in environ.get(
            "OTEL_RESOURCE_ATTRIBUTES", "")
        if not named_by_env:
            attributes[SERVICE_NAME] = DEFAULT_SERVICE
        # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; TracerProvider the sampler.
        provider = TracerProvider(resource=Resource.create(attributes))
        provider.add_span_processor(BatchSpanProcessor(_exporter(exporter_of(environ))))
        RedisInstrumentor().instrument(tracer_provider=provider, request_hook=_redis_request_hook)
        PsycopgInstrumentor().instrument(tracer_provider=provider)
        return cls(provider, role)

    def shutdown(self) -> None:
        RedisInstrumentor().uninstrument()
        PsycopgInstrumentor().uninstrument()
        self.provider.shutdown()

    def begin_request(self, method: str, headers: Iterable[tuple[bytes, bytes]]) -> RequestSpan:
        """Open the server span of a request (continuing the caller's trace when it sent ``traceparent``)."""
        parent = extract(headers, getter=_HEADERS)  # type: ignore[arg-type]
        span = self.tracer.start_span(
            f"{method} unmatched", context=parent, kind=SpanKind.SERVER,
            attributes={"http.request.method": method},
        )
        token = context.attach(trace.set_span_in_context(span, parent))
        return RequestSpan(span, token, method)

    @contextlib.contextmanager
    def span(self, name: str, attributes: Mapping[str, AttributeValue]) -> Iterator[trace.Span]:
        with self.tracer.start_as_current_span(
            name, attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                yield span
            except BaseException as exc:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise

    def current_trace_id(self) -> str | None:
        ctx = trace.get_current_span().get_span_context()
        return format(ctx.trace_id, "032x") if ctx.is_valid else None


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout, compression: OTEL_EXPORTER_OTLP_*
