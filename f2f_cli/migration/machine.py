"""The phase machine behind ``f2f migrate to|rollback|plan|verify``.

The moves themselves are data (``transitions.py``): which checks run before anything changes
and which steps follow, in order. This module carries them out. Every step is idempotent,
refuses (changing nothing) when a precondition fails, and reports what it did.

Operator mistakes it is built for:
- one migrator at a time: a phase-changing run takes the lease in ``f2f_migrator_lease`` first
  and refuses at once, naming the holder, when another run has it;
- a cut-over never outlives its migrator: the ``cutover`` row carries a deadline this process
  renews; if it dies the fleet returns by itself (``control/runtime.py``), and on Ctrl-C or
  SIGTERM the from-phase is restored here before the process exits;
- every precondition is checked before writes are held.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli import tracing
from f2f_cli.backends import Backends
from f2f_cli.clock import utcnow
from f2f_cli.control import lease
from f2f_cli.control import phase as control
from f2f_cli.control.keepalive import KeepAlive
from f2f_cli.control.phase import Phase
from f2f_cli.control.repair import repair_pass
from f2f_cli.control.runtime import HOLD_TIMEOUT_SECONDS
from f2f_cli.control.specs import Authority, spec_of
from f2f_cli.db.errors import translate_db_errors
from f2f_cli.db.schema import f2f_phase_history
from f2f_cli.db.schema import fridge_sessions as sessions_t
from f2f_cli.domain.model import Session
from f2f_cli.errors import ConfigError, F2FError, PreconditionFailed, RedisNotConfigured
from f2f_cli.migration import checkpoint as checkpoints
from f2f_cli.migration import checks, transitions
from f2f_cli.migration.backfill import CHECKPOINT, BackfillReport, backfill, clear_stale_copies
from f2f_cli.migration.checks import Check
from f2f_cli.migration.convergence import live_window, wait_for_epoch
from f2f_cli.migration.progress import Progress, SilentProgress
from f2f_cli.migration.status import backup_backlog
from f2f_cli.migration.transitions import Transition
from f2f_cli.migration.verify import VerifyReport, repair, verify
from f2f_cli.settings import Settings
from f2f_cli.stores.copying import count_unexpired
from f2f_cli.stores.redis import RedisSessionStore


@dataclass(slots=True)
class Outcome:
    action: str
    from_phase: str
    to_phase: str | None = None
    done: bool = False
    dry_run: bool = False
    refused: str | None = None
    interrupted: bool = False
    checks: list[Check] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    step_keys: list[str] = field(default_factory=list)
    backfill: BackfillReport | None = None
    verify: VerifyReport | None = None
    writes_held_ms: float | None = None
    hold_timeout_s: float | None = None
    cutover_deadline_s: float | None = None
    redis_keys_left: int | None = None
    next_step: str | None = None


def _declares(t: Transition, key: str) -> bool:
    return any(s.key == key for s in t.steps)


class Refused(Exception):
    """Internal: a precondition failed; the outcome says why."""


class Migrator:
    def __init__(
        self,
        backends: Backends,
        *,
        actor: str,
        progress: Progress | None = None,
        confirm: Callable[[str], bool] = lambda _question: True,
        batch_size: int = 1000,
        max_rate: float | None = None,
        resume: bool = False,
        take_over: bool = False,
        dry_run: bool = False,
        converge_timeout: float = 30.0,
        drain_timeout: float = 120.0,
        verify_sample: int | None = None,
    ) -> None:
        self.backends = backends
        self.settings = settings = backends.settings
        self.actor = actor
        self.progress = progress or SilentProgress()
        self.confirm = confirm
        self.batch_size = batch_size
        self.max_rate = max_rate
        self.resume = resume
        self.take_over = take_over
        self.dry_run = dry_run
        self.converge_timeout = converge_timeout
        self.drain_timeout = drain_timeout
        self.verify_sample = verify_sample
        self.window = live_window(settings.phase_poll_seconds)
        self.hold_for = timedelta(seconds=settings.cutover_deadline_seconds)
        self.lease_stale = timedelta(seconds=settings.migrate_lease_seconds)
        # Renew well inside both the cut-over deadline and the lease's staleness.
        self.beat = min(1.0, settings.cutover_deadline_seconds / 4, settings.migrate_lease_seconds / 4)
        self.engine: AsyncEngine = backends.engine
        self.sql = backends.sql
        self._step = "start"
        self.keepalive = KeepAlive(self.engine, beat=self.beat, hold_for=self.hold_for, step=lambda: self._step)
        self._changed = False  # a phase was set by this run: a later failure is 'failed', not 'refused'
        self._verified: VerifyReport | None = None
        self._held_from = 0.0

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: Settings, **kwargs: Any) -> AsyncIterator[Migrator]:
        async with Backends.open(settings) as backends:
            yield cls(backends, **kwargs)

    @property
    def redis(self) -> RedisSessionStore:
        if not self.backends.redis_configured:
            raise RedisNotConfigured("the dual and redis phases need Redis")
        return self.backends.redis()

    # -- the moves ---------------------------------------------------------------

    async def to_dual(self) -> Outcome:
        return await self._run("to dual", Phase.DUAL)

    async def to_redis(self) -> Outcome:
        return await self._run("to redis", Phase.REDIS)

    async def rollback(self) -> Outcome:
        return await self._run("rollback", None)

    async def _run(self, command: str, target: Phase | None) -> Outcome:
        # One trace per run, so a rollout reads as one: the steps below are its child spans.
        with tracing.span(f"migrate {command}", **{"f2f.migrate.target": target.value if target else ""}) as span:
            out = await self._run_traced(command, target)
            span.set_attribute("f2f.migrate.done", out.done)
            if out.writes_held_ms is not None:
                span.set_attribute("f2f.migrate.writes_held_ms", out.writes_held_ms)
            return out

    async def _run_traced(self, command: str, target: Phase | None) -> Outcome:
        state = await control.get_control(self.engine)
        out = Outcome(command, state.phase.value, target.value if target else None, dry_run=self.dry_run)
        t: Transition | None = None
        try:
            if self.dry_run:
                t = self._transition(out, command, target, state)
                if t is not None:
                    out.steps += [s.text for s in t.steps]  # what would run once every check holds
                    await self._preflight(out, t)
                return out
            async with self._leased(out):
                # Read the phase again under the lease: a run that finished meanwhile may have moved it.
                state = await control.get_control(self.engine)
                out.from_phase = state.phase.value
                t = self._transition(out, command, target, state)
                if t is None:
                    return out
                await self._preflight(out, t)
                self._ask(out, self._question(t, out))
                await self._execute(out, t, state)
                out.done = True
        except Refused:
            pass
        except ConfigError:
            raise  # a missing or bad setting: the CLI's usage exit code, like every other command
        except F2FError as exc:  # a store failed or the phase moved under us: a refusal with the reason
            out.refused = exc.message
        except asyncio.CancelledError:
            # Ctrl-C or SIGTERM: everything below has already put the fleet somewhere safe; say where.
            out.interrupted = True
            after = await control.get_control(self.engine)
            out.refused = f"interrupted during '{self._step}'; the fleet is in {after.phase} (epoch {after.epoch})"
            out.next_step = await self._advice_after(command, after.phase)
        if not out.done and out.refused and not out.dry_run:
            await self._record_failure(out)
        return out

    def _transition(self, out: Outcome, command: str, target: Phase | None,
                    state: control.Control) -> Transition | None:
        """The declared move from the current phase, or None when there is nothing to do (raises Refused)."""
        if target is not None and state.phase is target:
            out.done = True
            out.steps.append(f"already in {target}: nothing to do")
            return None
        if command == "rollback" and state.phase is Phase.POSTGRES:  # like 'to dual' twice: done, not refused
            out.done = True
            out.steps.append("phase is postgres: nothing to roll back")
            return None
        t = transitions.find(command, state.phase)
        if t is None:
            raise self._refuse(out, self._no_move(command, state.phase))
        if t.command.endswith("--resume") and not self.resume:
            raise self._refuse(out, "phase is dual-write: an earlier 'to dual' stopped before finishing; continue "
                               "it with 'f2f migrate to dual --resume' (the backfill picks up at its checkpoint), "
                               "or go back with 'f2f migrate rollback'")
        out.to_phase = (t.target or state.cutover_from or Phase.DUAL).value
        return t

    def _no_move(self, command: str, phase: Phase) -> str:
        if command == "rollback" and phase is Phase.POSTGRES:
            return "phase is postgres: there is nothing to roll back"
        sources = " or ".join(t.source.value for t in transitions.TRANSITIONS if t.command.startswith(command))
        return f"'{command}' runs from {sources}; phase is {phase}"

    async def _resume_hint(self, t: Transition) -> str:
        cp = await checkpoints.load(self.engine, CHECKPOINT)
        where = f"its backfill checkpoint: {cp.copied} sessions copied up to {cp.last_session_id}" if cp else \
            "no backfill checkpoint yet"
        return (f"phase is {t.source}: '{t.command.removesuffix(' --resume')}' stopped before finishing "
                f"({where}); continue it with 'f2f migrate {t.command}', or go back with 'f2f migrate rollback'")

    def _question(self, t: Transition, out: Outcome) -> str:
        if t.holds_writes:
            return (f"Cut over {t.source} → {t.target} (writes held for a moment, at most "
                    f"{HOLD_TIMEOUT_SECONDS:.0f}s per request)?")
        memory = next((c for c in out.checks if c.name == "redis memory for the copy"), None)
        copy = f": copy {memory.detail.split(' x ')[0]} into Redis" if memory and t.target is Phase.DUAL else ""
        return f"Move {t.source} → {out.to_phase}{copy}?"

    async def _execute(self, out: Outcome, t: Transition, state: control.Control) -> None:
        procedures: dict[str, Callable[[Outcome, Transition, control.Control], Awaitable[None]]] = {
            "copy_in": self._copy_in,
            "cut_over": self._cut_over,
            "cut_back": self._cut_back,
            "drop_copy": self._drop_copy,
            "release": self._release,
        }
        await procedures[t.procedure](out, t, state)

    async def _copy_in(self, out: Outcome, t: Transition, state: control.Control) -> None:
        """Start copying writes into Redis (unless resuming), backfill, repair, verify, then read from Redis."""
        if _declares(t, "clear-stale"):
            self._begin(t, "clear-stale")
            if self.resume:
                self._did(out, t, "clear-stale", "kept: resuming from the backfill checkpoint")
            else:
                removed = await clear_stale_copies(self.redis, batch_size=self.batch_size)
                self._did(out, t, "clear-stale", f"{removed} stale session copies removed from Redis")
        if _declares(t, "dual-write"):
            await self._step_to(out, t, "dual-write", expect=t.source, undo=t.source)
            if not self.resume:
                await control.reset_repair_queue(self.engine)
                self._did(out, t, "repair-reset", "repair queue reset: the backfill copies everything from here")
        else:
            _instances, text = await self._converge(out, state.epoch, undo=None)
            cp = await checkpoints.load(self.engine, CHECKPOINT)
            where = f"at session {cp.last_session_id} ({cp.copied} copied before)" if cp else "from the start"
            self._did(out, t, "resume", f"resuming the interrupted 'to dual' in dual-write, backfill {where}; {text}")
        self._begin(t, "backfill")
        with tracing.span("migrate.backfill") as span:
            out.backfill = await backfill(
                self.engine, self.redis, batch_size=self.batch_size, max_rate=self.max_rate,
                resume=self.resume, progress=self.progress,
            )
            span.set_attribute("f2f.migrate.copied", out.backfill.copied)
        b = out.backfill
        self._did(out, t, "backfill", f"{b.copied} copied, {b.skipped_newer} already current, "
                  f"{b.skipped_expired} expired, {b.rate:.0f} sessions/s"
                  + (f" (resumed after {b.resumed_from})" if b.resumed_from else ""))
        report = await repair_pass(self.engine, self.sql, self.redis)
        self._did(out, t, "repair", f"{report.copied} copies made for failed dual writes")
        copying = (await control.get_control(self.engine)).phase
        await self._verify_step(out, t, refuse=(
            f"staying in {copying} (run 'f2f migrate verify --repair', then 'f2f migrate to dual --resume')"))
        await self._step_to(out, t, "open", expect=copying, undo=None)

    async def _cut_over(self, out: Outcome, t: Transition, state: control.Control) -> None:
        """Make Redis the authority: verified first, then a short hold while every instance switches."""
        out.verify = self._verified
        self._did(out, t, "verify", self._verify_text(out.verify))
        async with self._cutover(out, t):
            # Writes are held everywhere now; a copy that failed just before the hold must be repaired.
            copied = 0
            if not (await checks.repair_queue_empty(self.engine)).ok:
                copied = (await repair_pass(self.engine, self.sql, self.redis)).copied
                if not (await checks.repair_queue_empty(self.engine)).ok:
                    raise self._refuse(out, f"Redis could not be repaired during the cut-over; back in {t.source}")
            self._did(out, t, "repair", f"{copied} copies made for writes that failed just before the hold")
            await self._step_to(out, t, "open", expect=Phase.CUTOVER, undo=None)

    async def _cut_back(self, out: Outcome, t: Transition, state: control.Control) -> None:
        """Make SQL the authority again: hold, drain the backup stream, sync back, verify, switch."""
        async with self._cutover(out, t):
            self._begin(t, "drain")
            backlog = await self._wait_drained()
            if backlog:
                raise self._refuse(out, f"the backup stream still holds {backlog} entries after "
                                   f"{self.drain_timeout:.0f}s (is 'f2f worker' running?); back in {t.source}")
            self._did(out, t, "drain", "backup stream drained")
            self._begin(t, "reverse-sync")
            synced = await self._reverse_sync()
            self._did(out, t, "reverse-sync", f"{synced} sessions newer in Redis copied into SQL")
            await self._verify_step(out, t, refuse=f"back in {t.source}")
            await control.reset_repair_queue(self.engine)
            self._did(out, t, "repair-reset", "repair queue reset")
            await self._step_to(out, t, "open", expect=Phase.CUTOVER, undo=None)

    async def _drop_copy(self, out: Outcome, t: Transition, state: control.Control) -> None:
        """Stop copying into Redis (the authority never moved: no hold); report what Redis keeps."""
        await self._step_to(out, t, "open", expect=state.phase, undo=None)
        try:
            out.redis_keys_left = await self.redis.count()
        except F2FError as exc:
            self._did(out, t, "report", f"cannot count what Redis holds: {exc.message}")
            return
        self._did(out, t, "report", f"Redis still holds {out.redis_keys_left} sessions; they expire by TTL "
                  "(a later 'to dual' removes them before it copies)")

    async def _release(self, out: Outcome, t: Transition, state: control.Control) -> None:
        """A cut-over left behind by a migrator that died before its deadline lapsed: go back now."""
        back = state.cutover_from or await self._cutover_origin()
        out.to_phase = back.value
        await self._step_to(out, t, "return", expect=Phase.CUTOVER, undo=None, target=back)

    async def _cutover_origin(self) -> Phase:
        """For a cut-over written before the control row named its origin: the last history row says."""
        with translate_db_errors():
            async with self.engine.connect() as conn:
                origin = await conn.scalar(
                    select(f2f_phase_history.c.from_phase)
                    .where(f2f_phase_history.c.to_phase == Phase.CUTOVER.value)
                    .order_by(f2f_phase_history.c.id.desc())
                    .limit(1)
                )
        return Phase(origin) if origin in (Phase.DUAL.value, Phase.REDIS.value) else Phase.DUAL

    # -- verify (also a command of its own) -----------------------------------------

    async def verify_stores(self, *, repair_now: bool) -> Outcome:
        with tracing.span("migrate verify", **{"f2f.migrate.repair": repair_now}):
            return await self._verify_stores(repair_now=repair_now)

    async def _verify_stores(self, *, repair_now: bool) -> Outcome:
        state = await control.get_control(self.engine)
        out = Outcome("verify", state.phase.value, dry_run=self.dry_run)
        out.verify, pairs = await verify(self.engine, self.sql, self.redis, sample=self.verify_sample,
                                         batch_size=self.batch_size, progress=self.progress)
        try:
            if repair_now and not out.verify.clean and not self.dry_run:
                trust = "redis" if spec_of(state.phase).authority is Authority.REDIS else "sql"
                async with self._leased(out):
                    self._ask(out, f"Repair {len(pairs)} differing sessions from {trust}?")
                    out.verify.repaired = await repair(pairs, trust=trust, sql_store=self.sql, redis=self.redis)
                    out.steps.append(f"repaired {out.verify.repaired} sessions from {trust}")
                    if trust == "sql":
                        await control.reset_repair_queue(self.engine)
        except Refused:
            return out
        out.done = out.verify.clean or out.verify.repaired == out.verify.differences
        return out

    # -- the plan ---------------------------------------------------------------------

    async def plan(self, target: Phase) -> Outcome:
        with tracing.span("migrate plan", **{"f2f.migrate.target": target.value}):
            return await self._plan(target)

    async def _plan(self, target: Phase) -> Outcome:
        """What the move to ``target`` would run from here: the same checks and steps as the real run."""
        state = await control.get_control(self.engine)
        out = Outcome(f"plan to {target}", state.phase.value, target.value, dry_run=True)
        if state.phase is target:
            out.steps.append(f"already in {target}: nothing to do")
            out.done = True
            return out
        t = transitions.route(state.phase, target)
        if t is None:
            out.refused = transitions.no_route(state.phase, target)
            return out
        out.action = f"plan to {target}: 'f2f migrate {t.command}'"
        out.checks = await self._checks(t)
        out.steps = [s.text for s in t.steps]
        out.done = all(c.ok for c in out.checks)
        if t.holds_writes:
            out.hold_timeout_s, out.cutover_deadline_s = HOLD_TIMEOUT_SECONDS, self.hold_for.total_seconds()
        return out

    # -- preconditions ----------------------------------------------------------------

    async def _checks(self, t: Transition) -> list[Check]:
        """Run the transition's checks in order; stop at the first one the others depend on."""
        found: list[Check] = []
        for key in t.checks:
            check = await self._check(key)
            found.append(check)
            if not check.ok and key == "redis_reachable":
                break
        return found

    async def _check(self, key: str) -> Check:
        if key == "lease":
            held = self.keepalive.lease
            if held is not None:
                return Check("no other migrator running", True, f"this run holds the lease ({held.holder})")
            return await checks.no_other_migrator(self.engine, self.lease_stale)
        if key == "sql_schema":
            return await checks.sql_schema(self.settings)
        if key == "redis_reachable":
            return await checks.redis_reachable(self.redis)
        if key == "eviction_policy":
            return await checks.eviction_policy(self.redis)
        if key == "memory":
            sessions = await count_unexpired(self.engine, utcnow())
            return await checks.memory_for(self.redis, sessions, await self._sample_session_bytes())
        if key == "redis_trusted":
            return await checks.repair_queue_empty(self.engine)
        if key == "worker_alive":
            return await checks.worker_alive(self.engine, self.window)
        if key == "backlog_drainable":
            return await checks.backlog_drainable(self.redis, self.drain_timeout)
        if key == "verify_clean":
            self._verified = await self._verify()
            return Check("verify clean", self._verified.clean, self._verify_text(self._verified))
        raise KeyError(f"unknown check {key!r}")

    async def _preflight(self, out: Outcome, t: Transition) -> None:
        out.checks = await self._checks(t)
        out.verify = self._verified if "verify_clean" in t.checks else out.verify
        if t.holds_writes:
            out.hold_timeout_s, out.cutover_deadline_s = HOLD_TIMEOUT_SECONDS, self.hold_for.total_seconds()
        failed = [c for c in out.checks if not c.ok]
        if failed:
            raise self._refuse(out, f"{failed[0].name}: {failed[0].detail}")

    async def _sample_session_bytes(self) -> int | None:
        """Average Redis memory of a session, measured on a sample already in Redis when there is one."""
        ids: list[str] = []
        async for session in self.sql.iter_sessions(batch_size=50):
            ids.append(session.session_id)
            if len(ids) >= 50:
                break
        sizes = []
        for sid in ids:
            with contextlib.suppress(Exception):
                usage = await self.redis.client.memory_usage(self.redis.keys.session(sid))
                if usage:
                    sizes.append(int(usage))
        if sizes:
            return sum(sizes) // len(sizes)
        # Not in Redis yet: a small listpack hash costs about 80 bytes plus its fields.
        count = 0
        total = 0
        async for session in self.sql.iter_sessions(batch_size=50):
            total += 96 + sum(len(i.name.encode()) + 12 for i in session.ingredients)
            count += 1
            if count >= 50:
                break
        return total // count if count else None

    # -- the lease, the cut-over and its deadline ------------------------------------------

    @contextlib.asynccontextmanager
    async def _leased(self, out: Outcome) -> AsyncIterator[None]:
        """Hold the migrator lease (refusing at once when another run has it) and keep it alive."""
        try:
            await self.keepalive.acquire(actor=self.actor, command=out.action, stale_after=self.lease_stale,
                                         take_over=self.take_over)
        except lease.LeaseHeld as exc:
            out.checks.append(Check("no other migrator running", False, exc.message))
            raise self._refuse(out, exc.message) from None
        async with self.keepalive.renewing():
            yield

    def _guard(self, out: Outcome) -> None:
        """Before each phase change: this run must still own the lease (and its cut-over)."""
        reason = self.keepalive.refusal()
        if reason is not None:
            raise self._refuse(out, reason)

    @contextlib.asynccontextmanager
    async def _cutover(self, out: Outcome, t: Transition) -> AsyncIterator[None]:
        """Hold writes fleet-wide; on any failure or interruption, return to ``t.source`` before leaving."""
        # The hold as one span: what ran while writes waited (drain, repair, verify, open) nests inside it.
        with tracing.span("migrate.cutover_hold") as span:
            try:
                async with self._holding(out, t):
                    yield
            finally:
                if out.writes_held_ms is not None:
                    span.set_attribute("f2f.migrate.writes_held_ms", out.writes_held_ms)

    @contextlib.asynccontextmanager
    async def _holding(self, out: Outcome, t: Transition) -> AsyncIterator[None]:
        source = t.source
        held_from = self._held_from = time.monotonic()
        self._guard(out)
        state = await control.set_phase(self.engine, Phase.CUTOVER, actor=self.actor, action=f"{t.command}: hold",
                                        expect=source, toward=t.target, hold_for=self.hold_for)
        self._changed = True
        self.keepalive.hold(state.epoch)
        deadline = self.hold_for.total_seconds()
        self._did(out, t, "hold", f"set cutover (epoch {state.epoch}); requests wait at most "
                  f"{HOLD_TIMEOUT_SECONDS:.0f}s, deadline {deadline:.0f}s renewed every {self.beat:.1f}s")
        try:
            _instances, text = await self._converge(out, state.epoch, undo=None)
            out.steps.append(text)
            yield
        except BaseException as exc:
            reason = "interrupted" if isinstance(exc, asyncio.CancelledError) else "aborted"
            await asyncio.shield(self._end_hold(out, t, source, state.epoch, reason, held_from))
            raise
        finally:
            self.keepalive.end_hold()
            out.writes_held_ms = round((time.monotonic() - held_from) * 1000, 1)
        out.steps.append(f"writes were held for at most {out.writes_held_ms:.0f} ms")

    async def _end_hold(self, out: Outcome, t: Transition, source: Phase, epoch: int, reason: str,
                        held_from: float) -> None:
        """Give the fleet back its from-phase, unless the cut-over already ended (opened, or lapsed)."""
        held_ms = round((time.monotonic() - held_from) * 1000)
        try:
            now = await control.get_control(self.engine)
            if now.phase is Phase.CUTOVER and now.epoch == epoch:
                back = await control.set_phase(self.engine, source, actor=self.actor, action=f"{t.command} {reason}",
                                               expect=Phase.CUTOVER,
                                               detail={"step": self._step, "writes_held_ms": held_ms})
                out.steps.append(f"{reason}: returned to {source} (epoch {back.epoch}) after holding writes "
                                 f"{held_ms} ms")
            else:
                out.steps.append(f"{reason}: the cut-over had already ended, phase is {now.phase}")
        except F2FError as exc:
            # The deadline covers this: the fleet goes back by itself once it lapses.
            out.steps.append(f"{reason}: could not restore {source} ({exc.message}); the fleet returns by "
                             f"itself within {self.hold_for.total_seconds():.0f}s")

    # -- steps ---------------------------------------------------------------------------

    def _begin(self, t: Transition, key: str) -> None:
        t.step(key)  # a step the transition does not declare is a bug, found here
        self._step = key

    def _did(self, out: Outcome, t: Transition, key: str, detail: str) -> None:
        self._begin(t, key)
        out.step_keys.append(key)
        out.steps.append(f"{key}: {detail}")

    async def _step_to(self, out: Outcome, t: Transition, key: str, *, expect: Phase, undo: Phase | None,
                       target: Phase | None = None) -> None:
        """Run step ``key``: set the phase it declares (compare-and-set from ``expect``) and converge."""
        with tracing.span(f"migrate.step {key}"):
            await self._set_and_converge(out, t, key, expect=expect, undo=undo, target=target)

    async def _set_and_converge(self, out: Outcome, t: Transition, key: str, *, expect: Phase,
                                undo: Phase | None, target: Phase | None) -> None:
        self._begin(t, key)
        target = target or t.step(key).sets
        assert target is not None, f"step {key!r} of '{t.command}' sets no phase"
        self._guard(out)
        held = {"writes_held_ms": round((time.monotonic() - self._held_from) * 1000)} \
            if expect is Phase.CUTOVER else None
        state = await control.set_phase(self.engine, target, actor=self.actor, action=f"{t.command}: {key}",
                                        expect=expect, detail=held)
        self._changed = True
        _instances, text = await self._converge(out, state.epoch, undo=undo, current=target)
        self._did(out, t, key, f"set {target} (epoch {state.epoch}); {text}")

    async def _converge(self, out: Outcome, epoch: int, *, undo: Phase | None,
                        current: Phase | None = None) -> tuple[int, str]:
        try:
            instances, waited = await wait_for_epoch(self.engine, epoch, limit=self.converge_timeout,
                                                     window=self.window)
        except PreconditionFailed as exc:
            if undo is not None and current is not None:
                await control.set_phase(self.engine, undo, actor=self.actor, action=f"{out.action} aborted",
                                        expect=current)
                raise self._refuse(out, f"{exc.message}; returned to {undo}") from None
            raise self._refuse(out, exc.message) from None
        workers = await control.live_instances(self.engine, within=self.window, kind="worker")
        # Workers are counted but not waited for: they drain the backup stream whatever the epoch says,
        # and their heartbeat (every few seconds) would only lengthen a cut-over's hold.
        text = (f"{len(instances) + len(workers)} live instance(s): {len(instances)} serve acknowledged epoch "
                f"{epoch} in {waited * 1000:.0f} ms, {len(workers)} worker(s) (they follow the backup stream, "
                "not the epoch)")
        return len(instances), text

    async def _verify_step(self, out: Outcome, t: Transition, *, refuse: str) -> None:
        self._begin(t, "verify")
        out.verify = await self._verify()
        self._did(out, t, "verify", self._verify_text(out.verify))
        if not out.verify.clean:
            raise self._refuse(out, f"verify found {out.verify.differences} differences; {refuse}")

    @staticmethod
    def _verify_text(v: VerifyReport | None) -> str:
        if v is None:
            return "not run"
        kinds = f" ({', '.join(f'{n} {k}' for k, n in sorted(v.by_kind.items()))})" if v.by_kind else ""
        return (f"{v.compared} compared, {v.differences} differences{kinds}" + (" (sampled)" if v.sampled else "")
                + (f", {v.repaired} repaired" if v.repaired else ""))

    async def _verify(self) -> VerifyReport:
        with tracing.span("migrate.verify") as span:
            report, _pairs = await verify(self.engine, self.sql, self.redis, sample=self.verify_sample,
                                          batch_size=self.batch_size, progress=self.progress)
            span.set_attribute("f2f.migrate.compared", report.compared)
            span.set_attribute("f2f.migrate.differences", report.differences)
        return report

    # -- outcome bookkeeping ---------------------------------------------------------------

    def _refuse(self, out: Outcome, reason: str) -> Refused:
        out.refused = reason
        return Refused(reason)

    def _ask(self, out: Outcome, question: str) -> None:
        if not self.confirm(question):
            raise self._refuse(out, "aborted by the operator; nothing changed")

    async def _record_failure(self, out: Outcome) -> None:
        """Failed and interrupted attempts belong in the history too (``status`` shows them)."""
        if out.refused is not None and out.refused.startswith("aborted by the operator"):
            return
        with contextlib.suppress(F2FError):
            state = await control.get_control(self.engine)
            kind = "interrupted" if out.interrupted else "failed" if self._changed else "refused"
            await control.record_attempt(
                self.engine, actor=self.actor, action=f"{out.action} {kind}", phase=state.phase,
                detail={"step": self._step, "reason": out.refused, "writes_held_ms": out.writes_held_ms},
            )

    async def _advice_after(self, command: str, phase: Phase) -> str:
        unfinished = transitions.find(command, phase)
        if unfinished is not None and unfinished.command.endswith("--resume"):
            return await self._resume_hint(unfinished)
        if spec_of(phase).writes_held:
            return ("the cut-over could not be restored; it ends by itself when its deadline lapses, or run "
                    "'f2f migrate rollback --take-over'")
        return f"nothing is held; run 'f2f migrate {command}' again when ready ('f2f migrate status' shows the state)"

    # -- drain and reverse sync (rollback from redis) -----------------------------------------

    async def _wait_drained(self) -> int:
        deadline = time.monotonic() + self.drain_timeout
        with tracing.span("migrate.drain") as span:
            while True:
                backlog = await backup_backlog(self.redis)
                if backlog == 0 or time.monotonic() >= deadline:
                    span.set_attribute("f2f.migrate.backlog", backlog)
                    return backlog
                await asyncio.sleep(0.2)

    async def _reverse_sync(self) -> int:
        """Copy every Redis session newer than SQL's copy into SQL (versions compared in bulk)."""
        synced = 0
        batch: list[Session] = []

        async def flush(sessions: list[Session]) -> int:
            with translate_db_errors():
                async with self.engine.connect() as conn:
                    held = dict(
                        (r.session_id, r.version)
                        for r in await conn.execute(
                            select(sessions_t.c.session_id, sessions_t.c.version).where(
                                sessions_t.c.session_id.in_([s.session_id for s in sessions])
                            )
                        )
                    )
            n = 0
            for s in sessions:
                if s.version > held.get(s.session_id, 0):
                    n += int(await self.sql.apply_copy(s))
            return n

        self.progress.start("reverse sync", None)
        async for session in self.redis.iter_sessions(batch_size=self.batch_size, include_deleted=True):
            batch.append(session)
            if len(batch) >= self.batch_size:
                synced += await flush(batch)
                self.progress.advance("reverse sync", len(batch))
                batch = []
        if batch:
            synced += await flush(batch)
            self.progress.advance("reverse sync", len(batch))
        self.progress.finish("reverse sync")
        return synced
