"""``f2f serve``: the HTTP API on uvicorn."""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from f2f_cli import tracing
from f2f_cli.cli.common import cli_errors, load_settings, stdout
from f2f_cli.errors import ConfigError, SchemaNotReady
from f2f_cli.logs import logging_config

if TYPE_CHECKING:
    from uvicorn import Config

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# uvicorn's exit code when the server could not start (a busy port, a failed lifespan).
STARTUP_FAILURE = 3


@contextmanager
def metrics_directory(workers: int) -> Iterator[str | None]:
    """Set up prometheus-client multiprocess mode for several workers, with a clean directory.

    An operator's ``PROMETHEUS_MULTIPROC_DIR`` is used (its metric files from an
    earlier run removed); otherwise a private temporary directory is made and
    removed afterwards. One worker needs none.
    """
    given = os.environ.get(MULTIPROC_ENV)
    if workers <= 1 and not given:
        yield None
        return
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
        yield str(path)
        return
    made = tempfile.mkdtemp(prefix="f2f-metrics-")
    os.environ[MULTIPROC_ENV] = made  # inherited by the worker processes uvicorn spawns
    try:
        yield made
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(made, ignore_errors=True)


@cli_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.", envvar="F2F_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.", envvar="F2F_PORT", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.", envvar="F2F_WORKERS", min=1, max=64)] = 1,
    log_level: Annotated[
        str | None, typer.Option(help="uvicorn log level (default: F2F_LOG_LEVEL).")
    ] = None,
) -> None:
    """Serve the session API.

    On the embedded default (SQLite, nothing configured) the schema is created
    or upgraded first. Against PostgreSQL the schema must already be at head:
    run 'f2f migrate db upgrade' (the Helm chart does it in a hook).

    Examples:

      f2f serve

      F2F_DATABASE_URL=postgresql://db/f2f f2f serve --host 0.0.0.0 --workers 4
    """
    import uvicorn

    from f2f_cli.api.protocol import F2FHttpProtocol, HttpLimits
    from f2f_cli.db import migrate as schema
    from f2f_cli.redis.seeds import check_cluster_seeds

    settings = load_settings(database=False)  # creates and migrates the embedded SQLite file
    # Each worker process starts tracing in the app's lifespan; a bad OTEL_* or a missing extra stops here.
    tracing.check()
    if settings.metrics_port == port:
        raise ConfigError(f"F2F_METRICS_PORT={port} is the API port: give /metrics a port of its own")
    if settings.redis_url:
        # A Cluster URL naming a replica, another Cluster's node or a standalone Redis: exit 2, naming it.
        asyncio.run(check_cluster_seeds(settings.redis_url, seconds=settings.redis_connect_timeout + 1))
    if settings.is_sqlite:
        schema.upgrade(settings.database_url)
    else:
        st = schema.state(settings.database_url)
        if not st.at_head:
            raise SchemaNotReady(
                f"database schema is at {st.current or 'empty'}, this f2f needs {st.head}: "
                "run 'f2f migrate db upgrade' first"
            )
    level = (log_level or settings.log_level).lower()
    with metrics_directory(workers):
        config = uvicorn.Config(
            "f2f_cli.api.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=logging_config(settings.log_format, level),
            log_level=level,
            # f2f logs its own access line and reads X-Forwarded-For only from F2F_TRUSTED_PROXIES.
            access_log=False,
            proxy_headers=False,
            server_header=False,
            lifespan="on",
            # Without it uvicorn waits for every connection forever and the kubelet's SIGKILL ends the drain.
            timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
            # httptools with f2f's request-head limits and deadlines (see f2f_cli/api/protocol.py).
            http=functools.partial(F2FHttpProtocol, limits=HttpLimits.from_settings(settings)),  # type: ignore[arg-type]
            ws="none",
            timeout_keep_alive=settings.keep_alive_seconds,
        )
        run_server(config, settings.metrics_port,
                   announce=lambda: stdout().print(announcement(host, port, settings.api_prefix)))


def announcement(host: str, port: int, api_prefix: str) -> str:
    """The line printed once the port is bound: a URL that answers (``/healthz``), reachable from this host."""
    local = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    shown = f"[{local}]" if ":" in local else local
    where = f" (listening on {host or 'every address'})" if local != host else ""
    return (f"f2f serving on http://{shown}:{port}{where}: health http://{shown}:{port}/healthz, "
            f"API under {api_prefix or '/'}")


def run_server(config: Config, metrics_port: int | None, announce: Callable[[], None] | None = None) -> None:
    """What ``uvicorn.run`` does, with a second listening socket for ``F2F_METRICS_PORT``: every worker
    accepts on both, and the app tells them apart by the local port (``MetricsPortSplit``)."""
    from uvicorn import Server
    from uvicorn.supervisors import Multiprocess

    sockets = [config.bind_socket()]  # exits 3 when the port is taken, as uvicorn.run does
    if metrics_port is not None:
        api_port, config.port = config.port, metrics_port
        try:
            sockets.append(config.bind_socket())
        finally:
            config.port = api_port
    if announce is not None:
        announce()  # only now: a busy port has already ended the process (exit 3) without a false "serving"
    server = Server(config=config)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=sockets).run()
        else:
            server.run(sockets=sockets)
    except KeyboardInterrupt:
        pass
    finally:
        for sock in sockets:
            sock.close()
    if config.workers == 1 and not server.started:
        raise SystemExit(STARTUP_FAILURE)
