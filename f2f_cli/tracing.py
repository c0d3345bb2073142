"""Opt-in OpenTelemetry traces: the one door the rest of f2f goes through.

Tracing is on only when the standard ``OTEL_*`` variables ask for it (an OTLP endpoint, or a named
``OTEL_TRACES_EXPORTER``) and ``OTEL_SDK_DISABLED`` is not ``true``. Off, nothing of OpenTelemetry is
imported and every helper here returns a shared no-op: the request path pays one ``is None`` test.
On, :mod:`f2f_cli.otel` (which needs the ``f2f[otel]`` extra) sets up the SDK, the OTLP/HTTP exporter
and the redis-py and psycopg instrumentations; without the extra, :func:`check` says so and how to
install it (exit 2), before anything starts.

The SDK reads the rest of its configuration itself (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER``/``_ARG``, ``OTEL_EXPORTER_OTLP_*``, ``OTEL_BSP_*``); :func:`check` refuses the
values it would otherwise ignore with only a warning.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from f2f_cli.errors import ConfigError

if TYPE_CHECKING:
    from f2f_cli.otel import OtelTracing

AttributeValue = str | bool | int | float
T = TypeVar("T")
ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
EXPORTERS = ("otlp", "console", "none")
SAMPLERS = (
    "always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off",
    "parentbased_traceidratio",
)
PROTOCOLS = ("http/protobuf",)
INSTALL_HINT = "pip install 'f2f[otel]'"


class SpanLike(Protocol):
    def set_attribute(self, key: str, value: AttributeValue) -> None: ...


class _NoSpan:
    __slots__ = ()

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        return None


NO_SPAN = _NoSpan()
_active: OtelTracing | None = None


def exporter_of(environ: Mapping[str, str]) -> str:
    """The exporter OTEL_* names; unlike the SDK's default (``otlp``), nothing named and no endpoint is off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "none"
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named:
        return named
    return "otlp" if any(environ.get(var, "").strip() for var in ENDPOINT_VARS) else "none"


def requested(environ: Mapping[str, str] | None = None) -> bool:
    return exporter_of(os.environ if environ is None else environ) != "none"


def check(environ: Mapping[str, str] | None = None) -> bool:
    """Whether tracing is on; ConfigError (exit 2) for a value the SDK would not use, or a missing extra."""
    env = os.environ if environ is None else environ
    exporter = exporter_of(env)
    if exporter not in EXPORTERS:
        raise ConfigError(f"OTEL_TRACES_EXPORTER={exporter!r}: f2f exports traces with one of {', '.join(EXPORTERS)}")
    if exporter == "none":
        return False
    _check_choice(env, "OTEL_TRACES_SAMPLER", SAMPLERS)
    _check_choice(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", PROTOCOLS)
    _check_choice(env, "OTEL_EXPORTER_OTLP_PROTOCOL", PROTOCOLS)
    sampler = env.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if sampler.endswith("traceidratio") and env.get("OTEL_TRACES_SAMPLER_ARG", "").strip():
        _check_ratio(env["OTEL_TRACES_SAMPLER_ARG"])
    for var in ENDPOINT_VARS:
        value = env.get(var, "").strip()
        if value and not value.startswith(("http://", "https://")):
            raise ConfigError(f"{var}={value!r}: an OTLP/HTTP endpoint is an http:// or https:// URL")
    if importlib.util.find_spec("opentelemetry") is None or importlib.util.find_spec("opentelemetry.sdk") is None:
        raise ConfigError(
            f"OTEL_* turns tracing on (exporter {exporter}) but OpenTelemetry is not installed: {INSTALL_HINT}, "
            "or unset OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_TRACES_EXPORTER (or set OTEL_SDK_DISABLED=true)"
        )
    return True


def _check_choice(env: Mapping[str, str], var: str, choices: Sequence[str]) -> None:
    value = env.get(var, "").strip().lower()
    if value and value not in choices:
        raise ConfigError(f"{var}={value!r}: expected one of {', '.join(choices)}")


def _check_ratio(text: str) -> None:
    try:
        ratio = float(text)
    except ValueError:
        ratio = math.nan
    if not 0.0 <= ratio <= 1.0:
        raise ConfigError(f"OTEL_TRACES_SAMPLER_ARG={text.strip()!r}: a sampling ratio between 0 and 1")


def start(role: str, environ: Mapping[str, str] | None = None) -> OtelTracing | None:
    """Tracing for this process (``role``: serve, worker, migrate), or None when OTEL_* leaves it off.

    Idempotent; call it before any store connects (the instrumentations wrap new connections)."""
    global _active
    if _active is not None:
        return _active
    env = os.environ if environ is None else environ
    if not check(env):
        return None
    from f2f_cli.otel import OtelTracing

    _active = OtelTracing.start(role, env)
    return _active


def current() -> OtelTracing | None:
    return _active


def shutdown() -> None:
    """Export what is buffered and stop (the end of a command, the end of a worker process)."""
    global _active
    active, _active = _active, None
    if active is not None:
        active.shutdown()


@contextlib.contextmanager
def running(role: str) -> Iterator[OtelTracing | None]:
    """:func:`start` for the length of a command, then :func:`shutdown`."""
    tracing = start(role)
    try:
        yield tracing
    finally:
        if tracing is not None:
            shutdown()


def span(name: str, **attributes: AttributeValue) -> contextlib.AbstractContextManager[SpanLike]:
    """A child span of whatever is current, or a no-op while tracing is off."""
    active = _active
    if active is None:
        return contextlib.nullcontext(NO_SPAN)
    return active.span(name, attributes)


async def untraced(work: Awaitable[T]) -> T:
    """``work`` with the Redis and SQL instrumentations quiet: background loops (the phase poll, the
    metrics sampler) would otherwise send a root trace every few seconds and drown the requests."""
    if _active is None:
        return await work
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        return await work


def trace_id() -> str | None:
    """The current trace id (32 hex digits), or None."""
    active = _active
    return active.current_trace_id() if active is not None else None


def name_scripts(named: Mapping[str, str]) -> None:
    """``{sha: name}`` of Lua scripts, so their EVALSHA spans say which script ran (no-op while off)."""
    if _active is not None:
        from f2f_cli.otel import name_scripts as record

        record(named)
