"""``f2f sessions``: look at and clean sessions in any phase. Parse, call ``sessions.ops``, render."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO, TypeVar

import msgspec
import typer
from rich.table import Table
from rich.text import Text

from f2f_cli.cli.common import (
    DashIdCommand,
    DryRunOpt,
    JsonOpt,
    YesOpt,
    cli_errors,
    confirm,
    fail,
    id_column,
    load_settings,
    plural,
    print_json,
    stderr,
    stdout,
)
from f2f_cli.cli.progress import progress
from f2f_cli.clock import utcnow
from f2f_cli.domain.ids import check_session_id
from f2f_cli.domain.model import normalize_ingredient
from f2f_cli.errors import EXIT_FAILURE, EXIT_USAGE, InvalidInput
from f2f_cli.ops.durations import format_duration, parse_duration

if TYPE_CHECKING:  # the stores (SQLAlchemy, redis-py) load when a command runs, not for 'f2f --help'
    from f2f_cli.ops.context import OpsContext
    from f2f_cli.ops.end import Action
    from f2f_cli.ops.inspect import Inspection
    from f2f_cli.ops.listing import SessionRow
    from f2f_cli.ops.redis_stats import RedisStats
    from f2f_cli.ops.stats import SqlStats

T = TypeVar("T")

app = typer.Typer(
    help=(
        "Look at and clean sessions in any phase (SQL, Redis, or both).\n\n"
        "Examples:\n\n  f2f sessions list --expiring-within 1h\n\n  f2f sessions inspect ID\n\n"
        "  f2f sessions purge --older-than 1d --yes\n\n  f2f sessions export > sessions.jsonl"
    ),
    no_args_is_help=True,
    add_completion=False,
)

StoreOpt = Annotated[
    str,
    typer.Option("--store", help="sql, redis, or auto (the store reads come from in the current phase)."),
]
IdArg = Annotated[
    str,
    typer.Argument(metavar="ID", help="Session id: 32 URL-safe characters (one starting with - is fine)."),
]

TABLE_CHUNK = 1000
# f2f_cli.ops.purge.DEFAULT_BATCH, written out so the option's default needs no import
# (tests/cli/test_lazy_imports.py checks they agree).
DEFAULT_BATCH = 5_000
SHOWN_ERRORS = 20


def _run(work: Callable[[OpsContext], Awaitable[T]]) -> T:
    from f2f_cli.ops.context import open_context

    settings = load_settings()

    async def go() -> T:
        async with open_context(settings) as ctx:
            return await work(ctx)

    return asyncio.run(go())


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%SZ")


# -- list ---------------------------------------------------------------------


@app.command("list")
@cli_errors
def list_(
    store: StoreOpt = "auto",
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="At most N sessions (0: all).")] = 100,
    expiring_within: Annotated[
        str | None, typer.Option("--expiring-within", metavar="DURATION", help="Only sessions ending within e.g. 1h.")
    ] = None,
    ingredient: Annotated[
        str | None, typer.Option("--ingredient", help="Only sessions holding this ingredient.")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """List live sessions: id, created, updated, expires in, ingredients, version. Streams.

    Examples:

      f2f sessions list --expiring-within 1h --limit 20

      f2f sessions list --store redis --ingredient 두부 --json
    """
    from f2f_cli.ops.listing import ListFilter, list_sql, list_store

    settings = load_settings()
    flt = ListFilter(
        expiring_within=None if expiring_within is None else parse_duration(expiring_within, what="--expiring-within"),
        ingredient=None if ingredient is None else normalize_ingredient(ingredient, settings.max_ingredient_length),
    )

    async def work(ctx: OpsContext) -> int:
        which = await ctx.resolve_store(store)
        rows = (
            list_sql(ctx.engine, flt, limit=limit or None)
            if which == "sql"
            else list_store(ctx.redis(), flt, limit=limit or None)
        )
        return await (_stream_json(rows) if json else _stream_tables(rows, which))

    _run(work)


async def _stream_json(rows: AsyncIterator[SessionRow]) -> int:
    out = sys.stdout
    out.write("[")
    n = 0
    async for row in rows:
        out.write(("\n" if n == 0 else ",\n") + msgspec.json.encode(row).decode())
        n += 1
    out.write("\n]\n" if n else "]\n")
    out.flush()
    return n


async def _stream_tables(rows: AsyncIterator[SessionRow], which: str) -> int:
    console = stdout()
    n = 0
    chunk: list[SessionRow] = []

    def flush(first: bool) -> None:
        table = Table(id_column("session id"), "created", "updated", "expires in", "ingredients", "version",
                      show_header=first, title=f"sessions ({which})" if first else None, box=None)
        for r in chunk:
            table.add_row(r.session_id, _when(r.created_at), _when(r.updated_at), format_duration(r.ttl_seconds),
                          str(r.ingredients), str(r.version))
        console.print(table)
        chunk.clear()

    async for row in rows:
        chunk.append(row)
        n += 1
        if len(chunk) >= TABLE_CHUNK:
            flush(n == len(chunk))
    if chunk or n == 0:
        flush(n == len(chunk))
    console.print(plural(n, "session"))
    return n


# -- inspect ------------------------------------------------------------------


@app.command("inspect", cls=DashIdCommand)
@cli_errors
def inspect(session_id: IdArg, json: JsonOpt = False) -> None:
    """Show one session as each store holds it, side by side, with a verdict.

    Exit 1 unless a store holds it live (unknown, deleted and expired sessions are shown, then exit 1).

    Examples:

      f2f sessions inspect Vq3k0bJ2m7yXcRZl9dW4tPfHsA8eN1uG

      f2f sessions inspect -- -8FTRx2m7yXcRZl9dW4tPfHsA8eN1uGq --json
    """
    from f2f_cli.ops.inspect import inspect_session

    check_session_id(session_id)  # a usage error comes before any database is opened
    result = _run(lambda ctx: inspect_session(ctx, session_id))
    if json:
        print_json(result)
    else:
        _render_inspection(result)
    if not any(v.state == "live" for v in result.stores):
        raise typer.Exit(EXIT_FAILURE)


_STATE_STYLE = {"live": "green", "deleted": "yellow", "expired": "yellow", "missing": "red", "unavailable": "red"}


def _render_inspection(result: Inspection) -> None:
    console = stdout()
    now = utcnow()
    views = result.stores
    table = Table("", *[("SQL" if v.store == "sql" else "Redis") for v in views],
                  title=f"session {result.session_id} (phase {result.phase})")
    differing = {d.field for d in result.differences}

    def row(label: str, values: list[str], key: str | None = None) -> None:
        style = "bold yellow" if key is not None and key in differing else ""
        table.add_row(Text(label, style=style), *[Text(v, style=style) for v in values])

    table.add_row("state", *[Text(v.state + (f" ({v.error})" if v.error else ""),
                                  style=_STATE_STYLE.get(v.state, "white")) for v in views])
    sessions = [v.session for v in views]
    row("version", [str(s.version) if s else "-" for s in sessions], "version")
    row("created", [_when(s.created_at) if s else "-" for s in sessions], "created_at")
    row("updated", [_when(s.updated_at) if s else "-" for s in sessions], "updated_at")
    row("expires", [f"{_when(s.expires_at)} ({format_duration(s.ttl_seconds(now))})" if s else "-"
                    for s in sessions], "expires_at")
    names = sorted({i.name for s in sessions if s for i in s.ingredients})
    for name in names:
        cells = []
        for s in sessions:
            at = next((i.added_at for i in s.ingredients if i.name == name), None) if s else None
            cells.append("-" if at is None else f"added {_when(at)}")
        row(f"  {name}", cells, f"ingredient {name}")
    if not names:
        row("ingredients", ["none" if s else "-" for s in sessions])
    console.print(table)
    good = result.verdict in ("in sync",) or result.verdict.startswith("SQL only: live")
    console.print(Text(f"verdict: {result.verdict}", style="bold green" if good else "bold yellow"))


# -- expire / delete ----------------------------------------------------------


def _end(session_id: str, action: Action, dry_run: bool, yes: bool, json: bool) -> None:
    from f2f_cli.ops.end import EndResult, end_session

    check_session_id(session_id)
    if not dry_run:
        confirm(yes, f"{action.capitalize()} session {session_id} in every store of the current phase?")
    result: EndResult = _run(lambda ctx: end_session(ctx, session_id, action, dry_run=dry_run))
    if json:
        print_json(result)
        return
    for o in result.stores:
        version = f" (version {o.version})" if o.version is not None else ""
        stdout().print(f"{o.store}: {o.outcome}{version}")


@app.command("expire", cls=DashIdCommand)
@cli_errors
def expire(session_id: IdArg, dry_run: DryRunOpt = False, yes: YesOpt = False, json: JsonOpt = False) -> None:
    """End a session now in every store of the phase (it expires; purge removes the row later).

    Example:

      f2f sessions expire Vq3k0bJ2m7yXcRZl9dW4tPfHsA8eN1uG --dry-run
    """
    _end(session_id, "expire", dry_run, yes, json)


@app.command("delete", cls=DashIdCommand)
@cli_errors
def delete(session_id: IdArg, dry_run: DryRunOpt = False, yes: YesOpt = False, json: JsonOpt = False) -> None:
    """Delete a session in every store of the phase (a tombstone keeps late copies from reviving it).

    Example:

      f2f sessions delete Vq3k0bJ2m7yXcRZl9dW4tPfHsA8eN1uG --yes
    """
    _end(session_id, "delete", dry_run, yes, json)


# -- purge --------------------------------------------------------------------


@app.command("purge")
@cli_errors
def purge(
    dry_run: DryRunOpt = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Sessions per transaction.")] = DEFAULT_BATCH,
    older_than: Annotated[
        str, typer.Option("--older-than", metavar="DURATION", help="Only rows that expired at least this long ago.")
    ] = "0s",
    wait: Annotated[bool, typer.Option("--wait", help="Wait for a running purge instead of exiting.")] = False,
    pace: Annotated[bool, typer.Option(
        "--pace/--no-pace", help="Size batches and pause between them by what a live read feels (--batch-size is "
        "then the largest batch); --no-pace runs full batches back to back.")] = True,
    yes: YesOpt = False,
    json: JsonOpt = False,
) -> None:
    """Delete expired SQL rows (and their ingredients) in short batches. Safe beside the API and in a CronJob.

    A second purge started while one runs exits at once (exit 0, nothing done) unless --wait.

    Examples:

      f2f sessions purge --dry-run

      f2f sessions purge --older-than 1h --yes
    """
    from f2f_cli.ops.purge import purge_expired

    age = parse_duration(older_than, what="--older-than")
    if not dry_run:
        confirm(yes, f"Delete SQL sessions that expired more than {older_than} ago?")
    with progress("purging expired sessions", enabled=not json and not dry_run) as report:
        result = _run(lambda ctx: purge_expired(ctx.engine, older_than=age, batch_size=batch_size, dry_run=dry_run,
                                                wait=wait, progress=report, pace=pace))
    if json:
        print_json(result)
        return
    if result.skipped:
        stdout().print(f"skipped: {result.skipped}")
    elif dry_run:
        stdout().print(f"would delete {plural(result.sessions, 'session')} and "
                       f"{plural(result.ingredients, 'ingredient row')} (expired before {_when(result.cutoff)})")
    else:
        batches = plural(result.batches, "batch", "batches")
        stdout().print(f"deleted {plural(result.sessions, 'session')} and "
                       f"{plural(result.ingredients, 'ingredient row')} in {batches}, {result.seconds:.1f}s "
                       f"({result.paused_seconds:.1f}s of it paused for live traffic)")


# -- stats --------------------------------------------------------------------


@app.command("stats")
@cli_errors
def stats(
    top: Annotated[int, typer.Option("--top", min=1, max=1000, help="How many top ingredients.")] = 10,
    sample: Annotated[
        int, typer.Option("--sample", min=0, help="Redis: stop the SCAN pass after N sessions (0: all).")
    ] = 0,
    memory_sample: Annotated[
        int, typer.Option("--memory-sample", min=0, help="Redis: MEMORY USAGE on this many sessions.")
    ] = 200,
    json: JsonOpt = False,
) -> None:
    """Counts per store, remaining-TTL histogram, top ingredients, mean ingredients per session,
    Redis memory per session (sampled) and, in the redis phase, the backup-stream lag.

    Examples:

      f2f sessions stats --top 20

      f2f sessions stats --sample 100000 --json
    """
    from f2f_cli.control.specs import spec_of
    from f2f_cli.ops.redis_stats import redis_stats
    from f2f_cli.ops.stats import sql_stats

    async def work(ctx: OpsContext) -> tuple[str, SqlStats, RedisStats | None]:
        phase = await ctx.phase()
        sql = await sql_stats(ctx.engine, top=top)
        redis = None
        if ctx.redis_configured:
            redis = await redis_stats(ctx.redis(), top=top, sample=sample or None, memory_sample=memory_sample,
                                      with_backup=spec_of(phase).backup_stream)
        return phase.value, sql, redis

    phase, sql, redis = _run(work)
    if json:
        print_json({"phase": phase, "sql": sql, "redis": redis})
        return
    console = stdout()
    names = ["SQL"] + (["Redis"] if redis else [])
    counts = Table("", *names, title=f"sessions (phase {phase})", box=None)
    counts.add_row("live", str(sql.live), *([f"{redis.live}{'' if redis.complete else ' (sampled)'}"] if redis else []))
    counts.add_row("tombstones", str(sql.tombstones), *([str(redis.tombstones)] if redis else []))
    counts.add_row("expired, not purged", str(sql.expired_unpurged), *(["- (Redis expires keys)"] if redis else []))
    counts.add_row("ingredients per session", f"{sql.mean_ingredients} mean, {sql.max_ingredients} max",
                   *([f"{redis.mean_ingredients} mean, {redis.max_ingredients} max"] if redis else []))
    if redis:
        memory = "-" if redis.memory_mean_bytes is None else (
            f"{redis.memory_mean_bytes:.0f} B mean, {redis.memory_max_bytes} B max ({redis.memory_sampled} sampled)")
        counts.add_row("memory per session", "-", memory)
        if redis.backup is not None:
            age = redis.backup.oldest_entry_age_seconds
            counts.add_row("backup lag", "-", f"{plural(redis.backup.entries, 'entry', 'entries')} waiting"
                           + ("" if age is None else f", oldest {format_duration(age)}"))
    console.print(counts)
    buckets = [(b.label, b.sessions) for b in sql.ttl_histogram]
    redis_buckets = {b.label: b.sessions for b in redis.ttl_histogram} if redis else {}
    peak = max([n for _, n in buckets] + list(redis_buckets.values()) + [1])
    hist = Table("remaining TTL", *names, "", title="TTL histogram (live)", box=None)
    for label, n in buckets:
        hist.add_row(label, str(n), *([str(redis_buckets[label])] if redis else []), "█" * round(30 * n / peak))
    console.print(hist)
    tops = Table("ingredient", "sessions (SQL)", title=f"top {top} ingredients", box=None)
    for t in sql.top_ingredients:
        tops.add_row(t.name, str(t.sessions))
    console.print(tops)


# -- restore ------------------------------------------------------------------


@app.command("restore")
@cli_errors
def restore(
    since: Annotated[
        str | None, typer.Option("--since", metavar="DURATION", help="Only sessions changed within e.g. 2h.")
    ] = None,
    dry_run: DryRunOpt = False,
    json: JsonOpt = False,
) -> None:
    """Reload Redis from the SQL copy after Redis lost its data, keeping each session's remaining TTL.

    Version-guarded: a session Redis already holds at the same or a newer version is left alone.

    Examples:

      f2f sessions restore --dry-run

      f2f sessions restore --since 2h
    """
    from f2f_cli.ops.restore import restore_redis

    window = None if since is None else parse_duration(since, what="--since", allow_zero=False)
    with progress("restoring sessions into Redis", enabled=not json and not dry_run) as report:
        result = _run(lambda ctx: restore_redis(ctx, since=window, dry_run=dry_run, progress=report))
    if json:
        print_json(result)
    elif dry_run:
        stdout().print(f"would copy {plural(result.candidates, 'session')} from SQL to Redis (phase {result.phase})")
    else:
        stdout().print(f"restored {plural(result.applied, 'session')} into Redis ({result.not_newer} already "
                       f"current, {result.expired} expired meanwhile) in {result.seconds:.1f}s, "
                       f"{result.per_second:.0f}/s")


# -- export / import ----------------------------------------------------------


@app.command("export")
@cli_errors
def export(
    store: StoreOpt = "auto",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
) -> None:
    """Write every live session as JSON Lines (one session a line) to stdout or --output.

    Examples:

      f2f sessions export > sessions.jsonl

      f2f sessions export --store redis -o sessions.jsonl
    """
    from f2f_cli.ops.transfer import export_sessions

    def work(out: BinaryIO) -> Callable[[OpsContext], Awaitable[int]]:
        async def go(ctx: OpsContext) -> int:
            return (await export_sessions(ctx, await ctx.resolve_store(store), out)).sessions

        return go

    load_settings()  # a bad setting or a missing database is reported before --output is created
    if output is None:
        n = _run(work(sys.stdout.buffer))
    else:
        try:
            target = output.open("wb")
        except OSError as exc:
            raise InvalidInput(f"{output}: cannot write ({exc.strerror or type(exc).__name__})") from None
        with target:
            n = _run(work(target))
    stderr().print(f"exported {plural(n, 'session')}")


@app.command("import")
@cli_errors
def import_(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A JSON Lines file written by 'f2f sessions export'.")],
    strict: Annotated[bool, typer.Option("--strict", help="Any bad line aborts with nothing written.")] = False,
    dry_run: DryRunOpt = False,
    json: JsonOpt = False,
) -> None:
    """Load sessions from JSON Lines into the stores of the current phase; never replaces a newer version.

    Bad lines are reported with their number and skipped (exit 1), or with --strict abort everything (exit 2).
    --dry-run reads what the stores hold and reports exactly what the import would apply.

    Examples:

      f2f sessions import sessions.jsonl --dry-run

      f2f sessions import sessions.jsonl --strict
    """
    from f2f_cli.ops.transfer import import_sessions

    with progress("importing sessions", enabled=not json and not dry_run) as report:
        result = _run(lambda ctx: import_sessions(ctx, file, strict=strict, dry_run=dry_run, progress=report))
    if result.aborted:
        first = result.errors[0]
        raise fail(f"{file} line {first.line}: {first.message} ({plural(result.error_count, 'bad line')}; "
                   "--strict: nothing imported)", EXIT_USAGE)
    if json:
        print_json(result)
    else:
        for e in result.errors[:SHOWN_ERRORS]:
            stderr().print(f"{file} line {e.line}: {e.message}")
        if result.error_count > SHOWN_ERRORS:
            stderr().print(f"... and {plural(result.error_count - SHOWN_ERRORS, 'more bad line')} (see --json)")
        verb = "would apply" if dry_run else "applied"
        stdout().print(f"{verb} {result.applied} of {plural(result.lines, 'line')} "
                       f"({result.not_newer} not newer, {result.expired} expired, {result.error_count} bad)")
    if result.error_count:
        raise typer.Exit(EXIT_FAILURE)
