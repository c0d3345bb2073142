"""Configuration from F2F_* environment variables (and an optional ``.env``).

Nothing happens at import time: call :func:`get_settings` (or
:meth:`Settings.from_env` with an explicit mapping in tests). Any invalid value
raises :class:`~f2f_cli.errors.ConfigError` naming the variable, which the CLI
prints as one line.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from f2f_cli.errors import ConfigError

LogFormat = Literal["console", "json"]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./f2f.db"
_REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster")
_MULTI_HOST_PASSWORD = re.compile(r"^([^:/]+://[^:@/]*):[^@/]*@")
_PREFIX_RE = re.compile(r"^(/[A-Za-z0-9._~-]+)*$")
# A year: far beyond any fridge, far below what datetime arithmetic and Redis expiry overflow on.
MAX_SESSION_TTL_SECONDS = 365 * 24 * 3600
# The SQL column holding an ingredient name (f2f_cli.db.schema.INGREDIENT_NAME_LENGTH; settings imports nothing of db).
INGREDIENT_NAME_COLUMN = 200


def normalize_database_url(url: str) -> str:
    """Map the URL forms operators paste to the async drivers f2f uses.

    ``postgres://`` and ``postgresql://`` (Heroku/Kubernetes style) become
    ``postgresql+psycopg://``; ``sqlite://`` becomes ``sqlite+aiosqlite://``.
    """
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("expected a URL such as postgresql://user@host/db or sqlite:///./f2f.db")
    scheme = scheme.lower()
    if scheme in ("postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg_async"):
        normalized = f"postgresql+psycopg://{rest}"
    elif scheme in ("sqlite", "sqlite+aiosqlite", "sqlite+pysqlite"):
        normalized = f"sqlite+aiosqlite://{rest}"
    else:
        raise ValueError(f"unsupported database scheme {scheme!r} (use postgresql:// or sqlite://)")
    # Parse it now, so a broken host or port stops f2f at start instead of at the first connection.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(normalized).port  # noqa: B018 - parses the port
    except (ArgumentError, ValueError) as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    return normalized


def sync_database_url(url: str) -> str:
    """The synchronous twin of an async URL, for Alembic and bulk tools."""
    if url.startswith("sqlite+aiosqlite://"):
        return "sqlite+pysqlite://" + url.removeprefix("sqlite+aiosqlite://")
    return url  # psycopg 3 serves both sync and async under one dialect name


def mask_url(url: str | None) -> str:
    """The URL with any password replaced, safe for logs and status output."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        password = parts.password
        parts.port  # noqa: B018 - raises on multi-host netlocs (Sentinel/Cluster URLs)
    except ValueError:
        return _MULTI_HOST_PASSWORD.sub(r"\1:***@", url)
    if password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _positive_float(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("expected a number") from None
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number")
    return value


def _int_between(low: int, high: int) -> Callable[[str], int]:
    """A whole number in ``[low, high]``: the server's own limits, refused at start when out of range."""

    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError("expected a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def _float_between(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError("expected a number") from None
        if not low <= value <= high:  # NaN fails here too
            raise ValueError(f"must be between {low:g} and {high:g}")
        return value

    return parse


def _optional_port(raw: str) -> int | None:
    if not raw.strip():
        return None
    return _int_between(1, 65535)(raw)


def _redis_url(raw: str) -> str | None:
    raw = raw.strip()
    if not raw:
        return None
    scheme = raw.partition("://")[0].lower()
    if scheme not in _REDIS_SCHEMES or "://" not in raw:
        raise ValueError(f"unsupported scheme (use one of {', '.join(s + '://' for s in _REDIS_SCHEMES)})")
    # Each host (Sentinel and Cluster list several) must parse, so a broken one stops f2f at start.
    netloc = urlsplit(raw).netloc.rpartition("@")[2]
    for host in netloc.split(","):
        if host:
            urlsplit(f"//{host}").port  # noqa: B018 - raises ValueError on a bad port or bracket
    return raw


def _api_prefix(raw: str) -> str:
    value = raw.strip().rstrip("/")
    if value and not value.startswith("/"):
        value = "/" + value
    if not _PREFIX_RE.match(value):
        raise ValueError("must look like /v1 (letters, digits, . _ ~ - and slashes)")
    return value


def _log_format(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("console", "json"):
        raise ValueError("expected console or json")
    return value


def _log_level(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("critical", "error", "warning", "info", "debug"):
        raise ValueError("expected one of critical, error, warning, info, debug")
    return value


def _key_prefix(raw: str) -> str:
    value = raw.strip()
    if not value or any(c in value for c in "{} \t\r\n*?[]"):
        raise ValueError("must be non-empty without spaces, braces or glob characters")
    return value


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _networks(raw: str) -> tuple[IPNetwork, ...]:
    networks: list[IPNetwork] = []
    for part in _csv(raw):
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an IP address or CIDR network") from None
    return tuple(networks)


def _env(name: str, parser: Callable[[str], Any], **kwargs: Any) -> Any:
    metadata = {"env": name, "parser": parser}
    return field(metadata=metadata, **kwargs)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every F2F_* setting, already validated and normalised."""

    database_url: str = _env("F2F_DATABASE_URL", normalize_database_url, default=DEFAULT_DATABASE_URL)
    redis_url: str | None = _env("F2F_REDIS_URL", _redis_url, default=None)
    redis_key_prefix: str = _env("F2F_REDIS_KEY_PREFIX", _key_prefix, default="f2f")
    # 500 ms each, from measurement (docs/BENCHMARKS.md, `scripts/bench_redis_faults.py timeout`): on this
    # shared 2-core machine under heavy load, healthy Redis store calls (timed inside the event loop, as the
    # client's timeout is) took over 50 ms in up to 9% of calls, over 250 ms in up to 1.3%, over 500 ms in
    # at most 0.16% and never over 1 s; 50 ms turned such stalls into 503s. 500 ms keeps a hung Redis from
    # costing a read more than half a second before the SQL backup answers, far below the failover time.
    redis_connect_timeout: float = _env("F2F_REDIS_CONNECT_TIMEOUT", _float_between(0.001, 60), default=0.5)
    redis_command_timeout: float = _env("F2F_REDIS_COMMAND_TIMEOUT", _float_between(0.001, 60), default=0.5)
    session_ttl_seconds: int = _env("F2F_SESSION_TTL_SECONDS", _int_between(1, MAX_SESSION_TTL_SECONDS), default=86400)
    max_ingredients: int = _env("F2F_MAX_INGREDIENTS", _int_between(1, 100_000), default=100)
    max_ingredient_length: int = _env("F2F_MAX_INGREDIENT_LENGTH", _int_between(1, INGREDIENT_NAME_COLUMN), default=50)
    max_body_bytes: int = _env("F2F_MAX_BODY_BYTES", _int_between(256, 16 * 1024 * 1024), default=16384)
    api_prefix: str = _env("F2F_API_PREFIX", _api_prefix, default="/v1")
    log_format: LogFormat = _env("F2F_LOG_FORMAT", _log_format, default="console")
    log_level: str = _env("F2F_LOG_LEVEL", _log_level, default="info")
    phase_poll_seconds: float = _env("F2F_PHASE_POLL_SECONDS", _float_between(0.05, 60), default=2.0)
    cookie_secure: bool | None = _env("F2F_COOKIE_SECURE", _parse_bool, default=None)
    db_pool_size: int = _env("F2F_DB_POOL_SIZE", _int_between(1, 500), default=10)
    cors_origins: tuple[str, ...] = _env("F2F_CORS_ORIGINS", _csv, default=())
    instance_name: str | None = _env("F2F_INSTANCE_NAME", str.strip, default=None)
    # Per client IP (IPv6: per /64); 0 turns the limit off.
    sessions_per_minute: int = _env("F2F_SESSIONS_PER_MINUTE", _int_between(0, 1_000_000), default=60)
    # Peers allowed to name the client in X-Forwarded-For (the ingress, the load balancer).
    trusted_proxies: tuple[IPNetwork, ...] = _env("F2F_TRUSTED_PROXIES", _networks, default=())
    # In the redis phase: fail the fleet over to SQL authority once a majority of live `serve` instances
    # have not reached Redis for this long (0 turns automatic failover off).
    redis_failover_seconds: float = _env("F2F_REDIS_FAILOVER_SECONDS", _float_between(0, 3600), default=5.0)
    # In the redis phase on a Redis Cluster: how long a write to a shard whose primary is down is held while
    # the Cluster promotes a replica (0 answers 503 at once). Keep it below the clients' request timeout.
    redis_shard_hold_seconds: float = _env("F2F_REDIS_SHARD_HOLD_SECONDS", _float_between(0, 10), default=5.0)
    # How stale the costly /metrics gauges (session count, backup lag) may be.
    metrics_refresh_seconds: float = _env("F2F_METRICS_REFRESH_SECONDS", _float_between(0.001, 3600), default=15.0)
    # How long `f2f serve` drains in-flight requests after SIGTERM before closing the rest (1-300 s);
    # the Helm chart keeps terminationGracePeriodSeconds above it plus the preStop sleep.
    graceful_shutdown_seconds: int = _env("F2F_GRACEFUL_SHUTDOWN_SECONDS", _int_between(1, 300), default=20)
    # A scrape is served from the last rendering while it is younger than this (0: render every scrape),
    # so a scrape loop cannot make the process render ~100 KB of text hundreds of times a second.
    metrics_cache_seconds: float = _env("F2F_METRICS_CACHE_SECONDS", _float_between(0, 60), default=5.0)
    # The HTTP layer's own limits on a request head (431 above either), enforced before the app runs.
    max_header_bytes: int = _env("F2F_MAX_HEADER_BYTES", _int_between(1024, 1_048_576), default=16384)
    max_headers: int = _env("F2F_MAX_HEADERS", _int_between(8, 1000), default=100)
    # Deadlines for a request that is still arriving (408 and the connection closed after either).
    header_timeout_seconds: float = _env("F2F_HEADER_TIMEOUT_SECONDS", _float_between(0.1, 600), default=10.0)
    body_timeout_seconds: float = _env("F2F_BODY_TIMEOUT_SECONDS", _float_between(0.1, 600), default=30.0)
    # A response the client does not read for this long (the connection's send buffer stays full) aborts
    # the connection, so a client that pipelines requests and never reads cannot pin memory.
    write_timeout_seconds: float = _env("F2F_WRITE_TIMEOUT_SECONDS", _float_between(0.1, 600), default=30.0)
    # Requests one connection may have read ahead of their answers (HTTP/1.1 pipelining); past it the
    # connection answers those and closes.
    max_pipelined_requests: int = _env("F2F_MAX_PIPELINED_REQUESTS", _int_between(1, 1000), default=32)
    # A second port that serves /metrics only (the API port then answers 404 there); unset: /metrics on the API port.
    metrics_port: int | None = _env("F2F_METRICS_PORT", _optional_port, default=None)
    # How long an idle keep-alive connection stays open between requests (uvicorn's timeout_keep_alive).
    keep_alive_seconds: int = _env("F2F_KEEP_ALIVE_SECONDS", _int_between(1, 600), default=5)
    # A cut-over whose migrator stops renewing it for this long ends by itself (the fleet goes back).
    cutover_deadline_seconds: float = _env("F2F_CUTOVER_DEADLINE_SECONDS", _float_between(1, 300), default=10.0)
    # A migrator lease with no heartbeat for this long may be taken over ('f2f migrate ... --take-over').
    migrate_lease_seconds: float = _env("F2F_MIGRATE_LEASE_SECONDS", _float_between(2, 600), default=15.0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, env_file: str | Path | None = ".env") -> Settings:
        """Build settings from ``environ`` (default ``os.environ``) over an optional ``.env`` file.

        Real environment variables win over the file, as operators expect.
        """
        source: dict[str, str] = {}
        if env_file is not None and Path(env_file).is_file():
            from dotenv import dotenv_values

            source.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        source.update(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.metadata["env"]
            raw = source.get(name)
            if raw is None:
                continue
            try:
                values[f.name] = f.metadata["parser"](raw)
            except ValueError as exc:
                shown = mask_url(raw) if "URL" in name else raw
                raise ConfigError(f"{name}={shown!r} is invalid: {exc}") from None
        return cls(**values)

    @staticmethod
    def known_variables() -> tuple[str, ...]:
        """Every F2F_* variable these settings read (the Helm chart is checked against it)."""
        return tuple(f.metadata["env"] for f in fields(Settings))

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def embedded(self) -> bool:
        """The zero-configuration mode: a local SQLite file, no Redis."""
        return self.is_sqlite and self.redis_url is None

    @property
    def secure_cookies(self) -> bool:
        """Cookies are ``Secure`` unless configured otherwise or running embedded."""
        return (not self.embedded) if self.cookie_secure is None else self.cookie_secure

    @property
    def sync_database_url(self) -> str:
        return sync_database_url(self.database_url)


# F2F_* names f2f reads besides the Settings fields: serve's flags and the bench's baseline app.
OTHER_VARIABLES = ("F2F_HOST", "F2F_PORT", "F2F_WORKERS", "F2F_BENCH_PHASE")
# Read by the test suite and the scripts, never by f2f: not misspellings either.
TOOL_VARIABLES = ("F2F_TEST_POSTGRES_URL", "F2F_TEST_REDIS_URL", "F2F_BENCH_POSTGRES_URL", "F2F_CONTAINER_IMAGE_TOOL")


@dataclass(frozen=True)
class UnknownVariable:
    """An F2F_* name no part of f2f reads (most likely a misspelling), where it was set, the closest known name."""

    name: str
    source: str  # "the environment" or the .env file
    closest: str | None

    def message(self) -> str:
        hint = f"; did you mean {self.closest}?" if self.closest else ""
        return f"{self.name} (set in {self.source}) is not an f2f setting and is ignored{hint}"


def unknown_variables(
    environ: Mapping[str, str] | None = None, *, env_file: str | Path | None = ".env"
) -> list[UnknownVariable]:
    """Every F2F_* name in the environment and in ``.env`` that f2f does not read, with the closest known name."""
    import difflib

    known = (*Settings.known_variables(), *OTHER_VARIABLES)
    accepted = {*known, *TOOL_VARIABLES}
    found: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        from dotenv import dotenv_values

        found.update(dict.fromkeys(dotenv_values(env_file), str(env_file)))
    found.update(dict.fromkeys(os.environ if environ is None else environ, "the environment"))
    out = []
    for name, source in sorted(found.items()):
        if name.startswith("F2F_") and name not in accepted:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            out.append(UnknownVariable(name, source, close[0] if close else None))
    return out


def warn_unknown_variables() -> None:
    """One WARNING per unknown F2F_* name (call once, at the start of a command)."""
    import logging

    log = logging.getLogger(__name__)
    for unknown in unknown_variables():
        log.warning("%s", unknown.message())


def get_settings() -> Settings:
    """The process settings, read from the environment now (never cached at import)."""
    return Settings.from_env()
