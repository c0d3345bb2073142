"""``f2f migrate status|plan|to|rollback|verify|repair``: the phase move, rendered for people or scripts."""

from __future__ import annotations

import asyncio
import getpass
import socket
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from f2f_cli.backends import Backends
from f2f_cli.cli.common import (
    DRY_RUN_HELP,
    JSON_HELP,
    YES_HELP,
    cli_errors,
    confirm,
    fail,
    load_settings,
    print_json,
    stderr,
    stdout,
    styled,
)
from f2f_cli.cli.progress import CliProgress
from f2f_cli.control.phase import Phase
from f2f_cli.control.repair import repair_pass, repair_preview
from f2f_cli.errors import EXIT_FAILURE, EXIT_USAGE, RedisNotConfigured
from f2f_cli.migration.convergence import live_window
from f2f_cli.migration.machine import Migrator, Outcome
from f2f_cli.migration.status import Status, collect
from f2f_cli.settings import Settings, mask_url

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help=DRY_RUN_HELP)]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help=YES_HELP)]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, max=100_000, help="Sessions per batch.")]
RateOpt = Annotated[
    float | None, typer.Option("--max-rate", min=1, help="At most this many sessions/s (protects production).")
]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the backfill from its checkpoint.")]
SampleOpt = Annotated[int | None, typer.Option("--sample", min=1, help="Compare only N sessions each way.")]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", min=1, help="Seconds to wait for every instance to acknowledge a step.")
]


def _actor() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()} f2f migrate"


def _run(coro: Coroutine[Any, Any, Outcome]) -> Outcome:
    return asyncio.run(coro)


def _migrator(
    settings: Settings, *, json: bool, yes: bool, **kwargs: Any
) -> Callable[[Backends, CliProgress], Migrator]:
    def confirm(question: str) -> bool:
        if yes:
            return True
        if json:
            return False  # scripts must say --yes; never block on a prompt
        return typer.confirm(question, default=False, err=True)

    def make(backends: Backends, progress: CliProgress) -> Migrator:
        return Migrator(backends, actor=_actor(), progress=progress, confirm=confirm, **kwargs)

    return make


async def _with(settings: Settings, make: Callable[[Backends, CliProgress], Migrator], progress: CliProgress,
                action: Callable[[Migrator], Coroutine[Any, Any, Outcome]]) -> Outcome:
    async with Backends.open(settings) as backends:
        return await action(make(backends, progress))


def _outcome_json(out: Outcome) -> dict[str, Any]:
    data = asdict(out)
    if out.backfill is not None:
        data["backfill"]["rate"] = round(out.backfill.rate, 1)
    return data


def _render(out: Outcome, *, json: bool) -> None:
    if json:
        print_json(_outcome_json(out))
    else:
        console = stdout()
        title = f"{out.action}: {out.from_phase}" + (f" → {out.to_phase}" if out.to_phase else "")
        console.print(styled((title, "bold"), ("  (dry run)", "yellow") if out.dry_run else ""))
        if out.checks:
            table = Table("", "check", "detail", title="preflight", title_justify="left")
            for c in out.checks:
                mark = Text("✗", "red") if not c.ok else (Text("!", "yellow") if c.warning else Text("✓", "green"))
                table.add_row(mark, c.name, c.detail)
            console.print(table)
        if out.verify is not None:
            v = out.verify
            console.print(f"verify: {v.compared} compared, {v.differences} differences"
                          + (" (sampled)" if v.sampled else "") + (f", {v.repaired} repaired" if v.repaired else ""))
            if v.first:
                table = Table("session", "difference", "SQL", "Redis", title="first differences")
                for d in v.first:
                    table.add_row(d.session_id, d.kind, d.sql, d.redis)
                console.print(table)
        for step in out.steps:
            console.print(f"  • {step}")
    if out.refused:
        raise fail(out.refused, EXIT_FAILURE)
    if not out.done and not out.dry_run:
        raise typer.Exit(EXIT_FAILURE)


def _render_faults(st: Status) -> None:
    """Redis faults: recovering or failed-over state, restore progress, RPO estimate, conflicts."""
    f = st.faults
    if f is None:
        return
    console = stdout()
    if f.redis_state != "ok":
        since = f" since {f.since:%Y-%m-%d %H:%M:%S}Z" if f.since else ""
        line = Text(f"Redis {f.redis_state}{since}", style="bold yellow")
        if f.restore_total is not None:
            line.append(f"; restore {f.restore_done or 0}/{f.restore_total} sessions", style="")
        console.print(line)
    if f.rpo_estimate is not None and f.redis_state != "ok":
        console.print(Text(f"estimated writes lost (RPO): {f.rpo_estimate} backup-stream entries"))
    if f.conflicts:
        console.print(Text(f"{f.conflicts} Redis writes lost to failover-time writes: see table "
                           f"{f.conflict_report} or 'f2f migrate status --json'", style="yellow"))


# The phases are named after the production path (PostgreSQL → Redis); say once what the first means on SQLite.
SQLITE_PHASE_NOTE = ("on SQLite the 'postgres' phase means: sessions live in the SQL database (this SQLite file); "
                     "the name is the production path's")


def register(app: typer.Typer) -> None:
    @app.command("status")
    @cli_errors
    def status(json: JsonOpt = False) -> None:
        """Phase, epoch, live instances, session counts per store, backup lag and recent steps.

        Example: f2f migrate status --json
        """
        settings = load_settings()

        async def gather() -> Status:
            async with Backends.open(settings) as backends:
                redis = backends.redis() if backends.redis_configured else None
                return await collect(backends.engine, backends.sql, redis,
                                     window=live_window(settings.phase_poll_seconds))

        st = asyncio.run(gather())
        if json:
            data = asdict(st)
            data["instances"] = [{**asdict(i), "stale": stale} for i, stale in st.instances]
            data["database"] = mask_url(settings.database_url)
            data["redis"] = mask_url(settings.redis_url)
            print_json(data)
            return
        c = st.control
        console = stdout()
        console.print(styled((f"phase {c.phase.value}", "bold"), f" (epoch {c.epoch}), changed "
                             f"{c.changed_at:%Y-%m-%d %H:%M:%S}Z by {c.changed_by}; Redis copy ",
                             ("trusted", "") if c.redis_trusted else ("untrusted", "red")))
        console.print(f"database {mask_url(settings.database_url)}; redis {mask_url(settings.redis_url) or 'not set'}")
        if settings.is_sqlite:
            console.print(SQLITE_PHASE_NOTE, style="dim")
        table = Table("kind", "host", "pid", "phase seen", "epoch", "last seen", title="instances")
        for inst, stale in st.instances:
            style = "dim" if stale else ""
            table.add_row(inst.kind, inst.host, str(inst.pid), inst.phase_seen, str(inst.epoch_seen),
                          f"{inst.last_seen:%H:%M:%S}" + (" (stale)" if stale else ""), style=style)
        console.print(table)
        redis_count = st.redis_sessions if st.redis_sessions is not None else f"- ({st.redis_error or 'not set'})"
        console.print(f"sessions: SQL {st.sql_sessions}, Redis {redis_count}; "
                      f"backup backlog {st.backup_backlog if st.backup_backlog is not None else '-'}")
        _render_faults(st)
        if st.history:
            table = Table("at", "actor", "action", "from", "to", "epoch", title="recent steps")
            for h in st.history:
                table.add_row(f"{h.at:%Y-%m-%d %H:%M:%S}", h.actor, h.action, h.from_phase or "", h.to_phase or "",
                              str(h.epoch or ""))
            console.print(table)

    @app.command("plan")
    @cli_errors
    def plan(
        words: Annotated[
            list[str], typer.Argument(help="\\[to] PHASE: dual, redis or postgres.", metavar="[to] PHASE")
        ],
        json: JsonOpt = False,
    ) -> None:
        """The steps 'f2f migrate to PHASE' would run and which preconditions hold right now.

        Example: f2f migrate plan to dual
        """
        if words and words[0] == "to":
            words = words[1:]
        if len(words) != 1 or words[0] not in ("dual", "redis", "postgres"):
            raise fail("usage: f2f migrate plan [to] dual|redis|postgres", EXIT_USAGE)
        settings = load_settings()
        target = Phase(words[0])
        make = _migrator(settings, json=json, yes=True)
        with CliProgress(enabled=False) as progress:
            out = _run(_with(settings, make, progress, lambda m: m.plan(target)))
        if json:
            print_json(_outcome_json(out))
            return
        out.dry_run = True
        refused, out.refused = out.refused, None
        _render(out, json=False)
        if refused:
            raise fail(refused, EXIT_FAILURE)
        if not out.done:
            stderr().print("some preconditions do not hold yet", style="yellow")
            raise typer.Exit(EXIT_FAILURE)

    @app.command("to")
    @cli_errors
    def to(
        target: Annotated[str, typer.Argument(help="dual or redis.", metavar="PHASE")],
        dry_run: DryRunOpt = False,
        yes: YesOpt = False,
        json: JsonOpt = False,
        batch_size: BatchOpt = 1000,
        max_rate: RateOpt = None,
        resume: ResumeOpt = False,
        sample: SampleOpt = None,
        timeout: TimeoutOpt = 30.0,
    ) -> None:
        """Move to the next phase: 'to dual' (preflight, dual-write, backfill, verify, dual) or 'to redis'.

        Examples:

          f2f migrate to dual --dry-run

          f2f migrate to dual --yes --max-rate 5000

          f2f migrate to dual --resume --yes      # after a crash or Ctrl-C during the backfill

          f2f migrate to redis --yes
        """
        if target not in ("dual", "redis"):
            hint = " (use 'f2f migrate rollback' to go back)" if target == "postgres" else ""
            raise fail(f"'to' takes dual or redis, not {target!r}{hint}", EXIT_USAGE)
        settings = load_settings()
        make = _migrator(settings, json=json, yes=yes, batch_size=batch_size, max_rate=max_rate, resume=resume,
                         dry_run=dry_run, converge_timeout=timeout, verify_sample=sample)
        with CliProgress(enabled=not json) as progress:
            out = _run(_with(settings, make, progress, lambda m: m.to_dual() if target == "dual" else m.to_redis()))
        _render(out, json=json)

    @app.command("rollback")
    @cli_errors
    def rollback(
        dry_run: DryRunOpt = False,
        yes: YesOpt = False,
        json: JsonOpt = False,
        batch_size: BatchOpt = 1000,
        sample: SampleOpt = None,
        timeout: TimeoutOpt = 30.0,
        drain_timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for the backup stream.")] = 120.0,
    ) -> None:
        """Go one phase back: redis → dual (drain the backup, reverse sync, verify) or dual → postgres.

        Example: f2f migrate rollback --yes
        """
        settings = load_settings()
        make = _migrator(settings, json=json, yes=yes, batch_size=batch_size, dry_run=dry_run,
                         converge_timeout=timeout, drain_timeout=drain_timeout, verify_sample=sample)
        with CliProgress(enabled=not json) as progress:
            out = _run(_with(settings, make, progress, lambda m: m.rollback()))
        _render(out, json=json)

    @app.command("verify")
    @cli_errors
    def verify_cmd(
        sample: SampleOpt = None,
        repair: Annotated[
            bool, typer.Option("--repair", help="Fix differences from the store the phase trusts.")
        ] = False,
        yes: YesOpt = False,
        dry_run: DryRunOpt = False,
        json: JsonOpt = False,
        batch_size: BatchOpt = 1000,
    ) -> None:
        """Compare SQL and Redis session by session (exit 1 when they differ).

        Examples:

          f2f migrate verify --sample 10000

          f2f migrate verify --repair --yes
        """
        settings = load_settings()
        make = _migrator(settings, json=json, yes=yes, batch_size=batch_size, dry_run=dry_run, verify_sample=sample)
        with CliProgress(enabled=not json) as progress:
            out = _run(_with(settings, make, progress, lambda m: m.verify_stores(repair_now=repair)))
        _render(out, json=json)

    @app.command("repair")
    @cli_errors
    def repair_cmd(dry_run: DryRunOpt = False, yes: YesOpt = False, json: JsonOpt = False) -> None:
        """Copy the sessions whose Redis copy failed in dual from SQL into Redis, then trust Redis again.

        Examples:

          f2f migrate repair --dry-run

          f2f migrate repair --yes
        """
        settings = load_settings()
        if not settings.redis_url:
            raise RedisNotConfigured("repair copies queued sessions into Redis")
        if not dry_run:
            confirm(yes, "Copy the queued sessions from SQL into Redis and trust Redis again?")

        async def run() -> dict[str, Any]:
            async def act(m: Migrator) -> Outcome:
                if dry_run:
                    report = await repair_preview(m.engine, m.sql, m.redis)
                    out = Outcome("repair", "", done=True, dry_run=True)
                    out.steps.append(f"would copy {report.copied} of {report.examined} queued "
                                     f"({report.gone} gone, {report.examined - report.copied - report.gone} "
                                     f"already current); Redis {'trusted' if report.trusted else 'still untrusted'}"
                                     " afterwards")
                    return out
                report = await repair_pass(m.engine, m.sql, m.redis)
                out = Outcome("repair", "", done=report.trusted)
                out.steps.append(f"{report.examined} queued, {report.copied} copied, {report.gone} gone; "
                                 f"Redis {'trusted' if report.trusted else 'still untrusted'}")
                return out

            with CliProgress(enabled=False) as progress:
                out = await _with(settings, _migrator(settings, json=json, yes=True), progress, act)
            return _outcome_json(out)

        data = asyncio.run(run())
        if json:
            print_json(data)
        else:
            for step in data["steps"]:
                stdout().print(step)
        if not data["done"]:
            raise typer.Exit(EXIT_FAILURE)
