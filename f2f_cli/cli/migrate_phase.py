"""``f2f migrate status|plan|to|rollback|verify|repair``: the phase move, rendered for people or scripts."""

from __future__ import annotations

import asyncio
import getpass
import os
import signal
import socket
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Column, Table
from rich.text import Text

from f2f_cli import tracing
from f2f_cli.cli.common import (
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
    styled,
)
from f2f_cli.cli.lag_view import lag_json, shard_table
from f2f_cli.cli.progress import CliProgress
from f2f_cli.errors import EXIT_FAILURE, EXIT_USAGE, RedisNotConfigured
from f2f_cli.settings import Settings, mask_url

if TYPE_CHECKING:  # the stores and the migrator load when a command runs, not for 'f2f --help'
    from f2f_cli.backends import Backends
    from f2f_cli.migration.machine import Migrator, Outcome
    from f2f_cli.migration.status import Status
    from f2f_cli.migration.verify import VerifyReport

BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, max=100_000, help="Sessions per batch.")]
RateOpt = Annotated[
    float | None, typer.Option("--max-rate", min=1, help="At most this many sessions/s (protects production).")
]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the backfill from its checkpoint.")]
SampleOpt = Annotated[int | None, typer.Option("--sample", min=1, help="Compare only N sessions each way.")]
TakeOverOpt = Annotated[
    bool, typer.Option("--take-over", help="Take the migrator lease from a run that stopped heartbeating (it died).")
]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", min=1, help="Seconds to wait for every instance to acknowledge a step.")
]


# Phase steps 'f2f migrate status' shows unless --history says otherwise (one rollout step makes three or four).
DEFAULT_HISTORY = 5

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _actor(command: str) -> str:
    """Who is migrating, as history and the lease show it: user@host:pid and the command."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}:{os.getpid()} f2f migrate {command}"


def _run(coro: Coroutine[Any, Any, Outcome]) -> Outcome:
    """Run the migrator; Ctrl-C, SIGTERM (pod deletion) and SIGHUP (a lost SSH or exec session) cancel it,
    so it restores a safe phase before exiting."""

    async def main() -> Outcome:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, task.cancel)
        try:
            return await coro
        finally:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)

    try:
        with tracing.running("migrate"):  # OTEL_* may turn it on: one trace per run (f2f_cli/tracing.py)
            return asyncio.run(main())
    except asyncio.CancelledError:
        # Interrupted before the migrator had anything to restore (cli_errors reports it, exit 130).
        raise KeyboardInterrupt from None


def _migrator(
    settings: Settings, command: str, *, json: bool, yes: bool, **kwargs: Any
) -> Callable[[Backends, CliProgress], Migrator]:
    def confirm(question: str) -> bool:
        if yes:
            return True
        if json:
            return False  # scripts must say --yes; never block on a prompt
        return typer.confirm(question, default=False, err=True)

    def make(backends: Backends, progress: CliProgress) -> Migrator:
        from f2f_cli.migration.machine import Migrator

        return Migrator(backends, actor=_actor(command), progress=progress, confirm=confirm, **kwargs)

    return make


async def _with(settings: Settings, make: Callable[[Backends, CliProgress], Migrator], progress: CliProgress,
                action: Callable[[Migrator], Coroutine[Any, Any, Outcome]]) -> Outcome:
    from f2f_cli.backends import Backends

    async with Backends.open(settings) as backends:
        return await action(make(backends, progress))


def _outcome_json(out: Outcome) -> dict[str, Any]:
    data = asdict(out)
    if out.backfill is not None:
        data["backfill"]["rate"] = round(out.backfill.rate, 1)
    return data


def _mark(ok: bool, warning: bool = False) -> Text:
    if not ok:
        return Text("✗", style="red")
    return Text("!", style="yellow") if warning else Text("✓", style="green")


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
                table.add_row(_mark(c.ok, c.warning), Text(c.name), Text(c.detail))
            console.print(table)
        if out.hold_timeout_s is not None:
            console.print(Text(f"writes are held during the cut-over: each request waits at most "
                               f"{out.hold_timeout_s:.0f}s (then 503); the cut-over deadline is "
                               f"{out.cutover_deadline_s:.0f}s, renewed by this run, after which the fleet "
                               "returns by itself (F2F_CUTOVER_DEADLINE_SECONDS)"))
        for step in out.steps:
            console.print(Text(f"  • {step}"))
        if out.verify is not None:
            console.print(Text(_verify_summary(out.verify)))
        if out.verify is not None and out.verify.first:
            table = Table(id_column("session"), "difference", "SQL", "Redis", title="first differences")
            for d in out.verify.first:
                table.add_row(Text(d.session_id), Text(d.kind), Text(d.sql), Text(d.redis))
            console.print(table)
    if out.refused:
        if out.next_step and not json:
            stderr().print(Text(f"next: {out.next_step}"))
        stderr().print(Text("error: ", style="bold red") + Text(out.refused))
        raise typer.Exit(130 if out.interrupted else EXIT_FAILURE)
    if not out.done and not out.dry_run:
        raise typer.Exit(EXIT_FAILURE)


def _verify_summary(report: VerifyReport) -> str:
    """What verify compared and found, on stdout (the progress line on stderr is gone once it ends)."""
    how = " (a sample)" if report.sampled else ""
    found = "stores equal" if report.clean else (
        f"{plural(report.differences, 'difference')}: "
        + ", ".join(f"{kind} {n}" for kind, n in sorted(report.by_kind.items())))
    repaired = f"; {report.repaired} repaired" if report.repaired else ""
    return f"  compared {plural(report.compared, 'session')} between SQL and Redis{how}: {found}{repaired}"


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
    for shard in st.shards or []:
        if shard.state != "ok":
            console.print(Text(f"Redis Cluster shard {shard.primary} ({shard.slots} slots): {shard.state}",
                               style="bold yellow"))
    if f.conflicts:
        console.print(Text(f"{f.conflicts} Redis writes lost to failover-time writes: see table "
                           f"{f.conflict_report} or 'f2f migrate status --json'", style="yellow"))


def _render_status(st: Status, settings: Settings, history: int = DEFAULT_HISTORY) -> None:
    c = st.control
    console = stdout()
    line = Text(f"phase {c.phase.value}", style="bold")
    line.append(f" (epoch {c.epoch}), changed {c.changed_at:%Y-%m-%d %H:%M:%S}Z by {c.changed_by}; Redis copy ")
    line.append(st.redis_copy, style="red" if st.redis_copy.startswith("untrusted") else "")
    console.print(line)
    if c.cutover_from is not None:
        deadline = f"{c.hold_deadline:%H:%M:%S}Z" if c.hold_deadline else "-"
        console.print(Text(f"cut-over {c.cutover_from} → {c.cutover_to}: writes held since {c.changed_at:%H:%M:%S}Z "
                           f"by {c.changed_by}, deadline {deadline}" + (" (lapsed)" if st.cutover_lapsed else ""),
                           style="bold red"))
    redis = mask_url(settings.redis_url) or "not set"
    console.print(Text(f"database {mask_url(settings.database_url)}; redis {redis}"))
    if settings.is_sqlite:
        console.print(SQLITE_PHASE_NOTE, style="dim")
    if st.lease is not None:
        console.print(Text(f"migrator lease: {st.lease.holder} ({st.lease.actor}) '{st.lease.command}', step "
                           f"{st.lease.step}, since {st.lease.since:%H:%M:%S}Z, heartbeat "
                           f"{st.lease.heartbeat:%H:%M:%S}Z" + (" (stale)" if st.lease_stale else "")))
    else:
        console.print(Text("migrator lease: free (no 'f2f migrate' is changing the phase)"))
    table = Table("kind", "host", "pid", "phase seen", "epoch", "last seen", title="instances")
    for inst, stale in st.instances:
        table.add_row(Text(inst.kind), Text(inst.host), str(inst.pid), Text(inst.phase_seen), str(inst.epoch_seen),
                      f"{inst.last_seen:%H:%M:%S}" + (" (stale)" if stale else ""), style="dim" if stale else "")
    console.print(table)
    if st.instances_aged_out:
        console.print(Text(f"{st.instances_aged_out} instance(s) not seen for over 10 minutes are not listed"))
    backlog = "-" if st.backup_backlog is None else str(st.backup_backlog)
    if st.backlog_age_s is not None:
        backlog += f" (oldest {st.backlog_age_s:.1f}s)"
    redis_count = st.redis_sessions if st.redis_sessions is not None else f"- ({st.redis_error or 'not set'})"
    console.print(Text(f"sessions: SQL {st.sql_sessions}, Redis {redis_count}; backup backlog {backlog}; "
                       f"live workers {st.workers_live}"))
    if st.backup_shards:
        console.print(shard_table(st.backup_shards))
    if st.checkpoint_copied is not None:
        console.print(Text(f"backfill checkpoint: {st.checkpoint_copied} copied, up to {st.checkpoint_last_id} "
                           "('f2f migrate to dual --resume' continues from here)"))
    _render_faults(st)
    shown = st.history[:history]
    if shown:
        title = f"last {len(shown)} steps" + (" (--history N for more)" if len(st.history) > len(shown) else "")
        table = Table(Column("at", no_wrap=True), "actor", Column("action", no_wrap=True), "from", "to", "epoch",
                      Column("writes held", no_wrap=True), "why", title=title)
        for h in shown:
            failed = h.action.endswith(("failed", "interrupted", "refused", "aborted", "lapsed"))
            table.add_row(f"{h.at:%Y-%m-%d %H:%M:%S}", Text(h.actor), Text(h.action), h.from_phase or "",
                          h.to_phase or "", str(h.epoch or ""),
                          f"{h.writes_held_ms:.0f} ms" if h.writes_held_ms is not None else "",
                          Text(h.reason or ""), style="yellow" if failed else "")
        console.print(table)
    for item in st.advice:
        console.print(Text(f"next: {item.text}", style="bold" if item.incident else ""))


# The phases are named after the production path (PostgreSQL → Redis); say once what the first means on SQLite.
SQLITE_PHASE_NOTE = ("on SQLite the 'postgres' phase means: sessions live in the SQL database (this SQLite file); "
                     "the name is the production path's")


def register(app: typer.Typer) -> None:
    @app.command("status")
    @cli_errors
    def status(
        json: JsonOpt = False,
        history: Annotated[
            int, typer.Option("--history", min=0, max=1000, help="How many of the last phase steps to show.")
        ] = DEFAULT_HISTORY,
    ) -> None:
        """Phase, epoch, live instances, session counts per store, backup lag and the last phase steps.

        Examples:

          f2f migrate status --history 20

          f2f migrate status --json
        """
        from f2f_cli.backends import Backends
        from f2f_cli.migration.convergence import live_window
        from f2f_cli.migration.status import collect

        settings = load_settings()

        async def gather() -> Status:
            async with Backends.open(settings) as backends:
                redis = backends.redis() if backends.redis_configured else None
                return await collect(backends.engine, backends.sql, redis,
                                     window=live_window(settings.phase_poll_seconds),
                                     # One more than shown tells whether there are more; the advice reads the last.
                                     history=max(history, 1) + 1,
                                     lease_stale_after=timedelta(seconds=settings.migrate_lease_seconds))

        st = asyncio.run(gather())
        if json:
            st.history = st.history[:history]
            data = asdict(st)
            data["instances"] = [{**asdict(i), "stale": stale} for i, stale in st.instances]
            if data["lease"] is not None:
                data["lease"].pop("token")  # the holder's proof of ownership, not for display
            # `advice` stays the printed lines (what scripts read before); `next` adds each row's code and kind.
            data["advice"] = [row.text for row in st.advice]
            data["next"] = [asdict(row) for row in st.advice]
            if st.backup_shards is not None:
                data["backup_shards"] = {name: lag_json(part) for name, part in st.backup_shards.items()}
            data["database"] = mask_url(settings.database_url)
            data["redis"] = mask_url(settings.redis_url)
            print_json(data)
            return
        _render_status(st, settings, history)

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
        from f2f_cli.control.phase import Phase

        settings = load_settings()
        target = Phase(words[0])
        make = _migrator(settings, f"plan {target}", json=json, yes=True)
        with CliProgress(enabled=False) as progress:
            out = _run(_with(settings, make, progress, lambda m: m.plan(target)))
        if json:
            print_json(_outcome_json(out))
            if out.refused or not out.done:
                raise typer.Exit(EXIT_FAILURE)
            return
        out.dry_run = True
        _render(out, json=False)
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
        take_over: TakeOverOpt = False,
        sample: SampleOpt = None,
        timeout: TimeoutOpt = 30.0,
    ) -> None:
        """Move to the next phase: 'to dual' (preflight, dual-write, backfill, verify, dual) or 'to redis'.

        Examples:

          f2f migrate to dual --dry-run

          f2f migrate to dual --yes --max-rate 5000

          # after a crash or Ctrl-C during the backfill:
          f2f migrate to dual --resume --yes

          # the run that crashed still holds the lease:
          f2f migrate to dual --resume --take-over --yes

          f2f migrate to redis --yes
        """
        if target not in ("dual", "redis"):
            hint = " (use 'f2f migrate rollback' to go back)" if target == "postgres" else ""
            raise fail(f"'to' takes dual or redis, not {target!r}{hint}", EXIT_USAGE)
        settings = load_settings()
        make = _migrator(settings, f"to {target}", json=json, yes=yes, batch_size=batch_size, max_rate=max_rate,
                         resume=resume, take_over=take_over, dry_run=dry_run, converge_timeout=timeout,
                         verify_sample=sample)
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
        take_over: TakeOverOpt = False,
        drain_timeout: Annotated[
            float,
            typer.Option(min=1, max=3600, help="Hold budget: seconds to wait for the backup stream while writes "
                         "are held; rollback refuses up front when the backlog is older than this."),
        ] = 120.0,
    ) -> None:
        """Go one phase back: redis → dual (drain the backup, reverse sync, verify) or dual → postgres.

        Examples:

          # the checks it runs before holding any write:
          f2f migrate rollback --dry-run

          f2f migrate rollback --yes
        """
        settings = load_settings()
        make = _migrator(settings, "rollback", json=json, yes=yes, batch_size=batch_size, dry_run=dry_run,
                         take_over=take_over, converge_timeout=timeout, drain_timeout=drain_timeout,
                         verify_sample=sample)
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
        make = _migrator(settings, "verify", json=json, yes=yes, batch_size=batch_size, dry_run=dry_run,
                         verify_sample=sample)
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
        from f2f_cli.control.repair import repair_pass, repair_preview
        from f2f_cli.migration.machine import Outcome

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
                out = await _with(settings, _migrator(settings, "repair", json=json, yes=True), progress, act)
            return _outcome_json(out)

        data = asyncio.run(run())
        if json:
            print_json(data)
        else:
            for step in data["steps"]:
                stdout().print(step)
        if not data["done"]:
            raise typer.Exit(EXIT_FAILURE)
