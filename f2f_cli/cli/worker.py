"""``f2f worker``: the PostgreSQL backup writer of the ``redis`` phase."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from f2f_cli import tracing
from f2f_cli.cli.common import JSON_HELP, cli_errors, load_settings, plural, print_json, stdout
from f2f_cli.cli.lag_view import shard_table, sharded_json, summary
from f2f_cli.errors import RedisNotConfigured
from f2f_cli.logs import configure_logging


@cli_errors
def worker(
    batch_size: Annotated[int, typer.Option(help="Entries per SQL transaction.", min=1, max=10_000)] = 500,
    block_ms: Annotated[int, typer.Option(help="How long one read waits for new entries.", min=1)] = 1000,
    claim_idle_ms: Annotated[
        int, typer.Option(help="Take over entries another worker left pending this long (a dead worker).", min=1)
    ] = 30_000,
    consumer: Annotated[str | None, typer.Option(help="Consumer name (default: host-pid-random).")] = None,
    lag: Annotated[
        bool, typer.Option("--lag", help="Print the backup backlog (per shard on a Cluster) and exit.")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Drain the Redis backup stream into the SQL database (the redis phase's backup).

    Several workers may run at once; each commits a batch to SQL before
    acknowledging it, and takes over entries a dead worker left pending.
    SIGTERM finishes the current batch and exits 0.

    Examples:

      f2f worker

      f2f worker --lag --json
    """
    from f2f_cli.backup.shard_lag import ONE_REDIS, read_sharded_lag
    from f2f_cli.backup.worker import WorkerOptions, run_worker

    settings = load_settings()
    if not settings.redis_url:
        raise RedisNotConfigured("f2f worker drains the Redis backup stream")
    if lag:
        backlog = asyncio.run(read_sharded_lag(settings))
        if json:
            print_json(sharded_json(backlog))
        else:
            stdout().print(summary(backlog.overall))
            if set(backlog.shards) != {ONE_REDIS}:
                stdout().print(shard_table(backlog.shards))
        return
    # A service, not a one-shot command: log at F2F_LOG_LEVEL (default info) in F2F_LOG_FORMAT. The CLI
    # set logging up quiet already, so a basicConfig here would be a no-op.
    configure_logging(settings.log_format, settings.log_level)
    options = WorkerOptions(batch_size=batch_size, block_ms=block_ms, claim_idle_ms=claim_idle_ms,
                            claim_interval=min(5.0, claim_idle_ms / 2000), consumer=consumer)  # fmt: skip
    with tracing.running("worker"):  # OTEL_* may turn it on: a span per batch (f2f_cli/tracing.py)
        stats = asyncio.run(run_worker(settings, options))
    if json:
        print_json({"entries": stats.entries, "sessions": stats.sessions, "applied": stats.applied,
                    "ingredient_rows": stats.ingredient_rows, "reclaimed": stats.reclaimed, "batches": stats.batches,
                    "errors": stats.errors, "groups_recreated": stats.groups_recreated})  # fmt: skip
    else:
        stdout().print(f"worker stopped: {plural(stats.entries, 'entry', 'entries')}, "
                       f"{plural(stats.applied, 'session')} written")
