"""The phase machine behind ``f2f migrate to|rollback|plan|verify``.

Every step is idempotent, refuses (changing nothing) when its precondition
fails, and reports what it did. Moves that change the version authority
(dual → redis, redis → dual) go through ``cutover``: instances hold writes,
acknowledge, and only then does the next phase open.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.backends import Backends
from f2f_cli.clock import utcnow
from f2f_cli.control import phase as control
from f2f_cli.control.phase import Phase
from f2f_cli.control.repair import repair_pass
from f2f_cli.db.errors import translate_db_errors
from f2f_cli.db.schema import f2f_control, f2f_phase_history, f2f_repair_queue
from f2f_cli.db.schema import fridge_sessions as sessions_t
from f2f_cli.domain.model import Session
from f2f_cli.errors import F2FError, PreconditionFailed, RedisNotConfigured
from f2f_cli.migration import checks
from f2f_cli.migration.backfill import BackfillReport, backfill
from f2f_cli.migration.checks import Check
from f2f_cli.migration.convergence import live_window, wait_for_epoch
from f2f_cli.migration.progress import Progress, SilentProgress
from f2f_cli.migration.status import backup_backlog
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
    checks: list[Check] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    backfill: BackfillReport | None = None
    verify: VerifyReport | None = None
    writes_held_ms: float | None = None
    redis_keys_left: int | None = None


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
        self.dry_run = dry_run
        self.converge_timeout = converge_timeout
        self.drain_timeout = drain_timeout
        self.verify_sample = verify_sample
        self.window = live_window(settings.phase_poll_seconds)
        self.engine: AsyncEngine = backends.engine
        self.sql = backends.sql

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: Settings, **kwargs: object) -> AsyncIterator[Migrator]:
        async with Backends.open(settings) as backends:
            yield cls(backends, **kwargs)  # type: ignore[arg-type]

    @property
    def redis(self) -> RedisSessionStore:
        if not self.backends.redis_configured:
            raise RedisNotConfigured("the dual and redis phases need Redis")
        return self.backends.redis()

    # -- the moves ---------------------------------------------------------------

    async def to_dual(self) -> Outcome:
        state = await control.get_control(self.engine)
        out = Outcome("to dual", state.phase.value, Phase.DUAL.value, dry_run=self.dry_run)
        if state.phase is Phase.DUAL:
            out.done = True
            out.steps.append("already in dual: nothing to do")
            return out
        try:
            if state.phase not in (Phase.POSTGRES, Phase.DUAL_WRITE):
                raise self._refuse(out, f"'to dual' runs from postgres (or resumes dual-write); phase is {state.phase}")
            await self._preflight(out, await self._dual_checks())
            if self.dry_run:
                out.steps += self.planned_steps(Phase.DUAL, state.phase)
                return out
            self._ask(out, f"Move {state.phase} → dual: copy {out.checks[-1].detail.split(' x ')[0]} into Redis?")
            if state.phase is Phase.POSTGRES:
                await self._step_to(out, Phase.DUAL_WRITE, expect=Phase.POSTGRES, undo=Phase.POSTGRES)
            else:
                out.steps.append("resuming from dual-write")
                await self._converge(out, (await control.get_control(self.engine)).epoch, undo=None)
            await self._reset_repair_queue()
            out.steps.append("repair queue reset: the backfill copies everything from here")
            out.backfill = await backfill(
                self.engine, self.redis, batch_size=self.batch_size, max_rate=self.max_rate,
                resume=self.resume, progress=self.progress,
            )
            out.steps.append(
                f"backfill: {out.backfill.copied} copied, {out.backfill.skipped_newer} already current, "
                f"{out.backfill.skipped_expired} expired, {out.backfill.rate:.0f} sessions/s"
            )
            report = await repair_pass(self.engine, self.sql, self.redis)
            out.steps.append(f"repair pass: {report.copied} copies made for failed dual writes")
            out.verify = await self._verify()
            if not out.verify.clean:
                raise self._refuse(out, f"verify found {out.verify.differences} differences; staying in dual-write "
                                   "(run 'f2f migrate verify --repair', then 'f2f migrate to dual' again)")
            await self._step_to(out, Phase.DUAL, expect=Phase.DUAL_WRITE, undo=None)
            out.done = True
        except Refused:
            pass
        return out

    async def to_redis(self) -> Outcome:
        state = await control.get_control(self.engine)
        out = Outcome("to redis", state.phase.value, Phase.REDIS.value, dry_run=self.dry_run)
        if state.phase is Phase.REDIS:
            out.done = True
            out.steps.append("already in redis: nothing to do")
            return out
        try:
            if state.phase is not Phase.DUAL:
                raise self._refuse(out, f"'to redis' runs from dual; phase is {state.phase}")
            await self._preflight(out, [
                await checks.redis_reachable(self.redis),
                await checks.repair_queue_empty(self.engine),
                await checks.worker_alive(self.engine, self.window),
            ])
            verified = await self._verify()
            out.verify = verified
            out.checks.append(Check("verify clean", verified.clean, f"{verified.compared} compared, "
                                    f"{verified.differences} differences" + (" (sampled)" if verified.sampled else "")))
            if not verified.clean:
                raise self._refuse(out, "verify found differences; run 'f2f migrate verify --repair' first")
            if self.dry_run:
                out.steps += self.planned_steps(Phase.REDIS, state.phase)
                return out
            self._ask(out, "Cut over dual → redis (writes held for a moment; Redis becomes the authority)?")
            held_from = time.monotonic()
            await self._step_to(out, Phase.CUTOVER, expect=Phase.DUAL, undo=Phase.DUAL)
            # Writes are held everywhere now; a copy that failed just before the hold must be repaired.
            if not (await checks.repair_queue_empty(self.engine)).ok:
                await repair_pass(self.engine, self.sql, self.redis)
                if not (await checks.repair_queue_empty(self.engine)).ok:
                    await control.set_phase(self.engine, Phase.DUAL, actor=self.actor, action="cutover aborted",
                                            expect=Phase.CUTOVER)
                    raise self._refuse(out, "Redis could not be repaired during the cut-over; back in dual")
            await self._step_to(out, Phase.REDIS, expect=Phase.CUTOVER, undo=None)
            out.writes_held_ms = (time.monotonic() - held_from) * 1000
            out.steps.append(f"writes were held for at most {out.writes_held_ms:.0f} ms")
            out.done = True
        except Refused:
            pass
        return out

    async def rollback(self) -> Outcome:
        state = await control.get_control(self.engine)
        out = Outcome("rollback", state.phase.value, dry_run=self.dry_run)
        try:
            if state.phase is Phase.POSTGRES:
                raise self._refuse(out, "phase is postgres: there is nothing to roll back")
            if state.phase is Phase.CUTOVER:
                return await self._abandon_cutover(out)
            if state.phase is Phase.REDIS:
                return await self._redis_to_dual(out)
            out.to_phase = Phase.POSTGRES.value
            await self._preflight(out, [await checks.sql_schema(self.settings)])
            if self.dry_run:
                out.steps += self.planned_steps(Phase.POSTGRES, state.phase)
                return out
            self._ask(out, f"Roll back {state.phase} → postgres (Redis stops receiving copies)?")
            await self._step_to(out, Phase.POSTGRES, expect=state.phase, undo=None)
            with contextlib.suppress(F2FError):
                out.redis_keys_left = await self.redis.count()
                out.steps.append(f"Redis still holds {out.redis_keys_left} sessions; they expire by TTL "
                                 "(a later 'to dual' overwrites them with newer copies)")
            out.done = True
        except Refused:
            pass
        return out

    async def _redis_to_dual(self, out: Outcome) -> Outcome:
        out.to_phase = Phase.DUAL.value
        await self._preflight(out, [await checks.sql_schema(self.settings), await checks.redis_reachable(self.redis)])
        if self.dry_run:
            out.steps += self.planned_steps(Phase.DUAL, Phase.REDIS)
            return out
        self._ask(out, "Roll back redis → dual (writes held until the backup stream is drained)?")
        held_from = time.monotonic()
        await self._step_to(out, Phase.CUTOVER, expect=Phase.REDIS, undo=Phase.REDIS)
        backlog = await self._wait_drained()
        if backlog:
            await control.set_phase(self.engine, Phase.REDIS, actor=self.actor, action="rollback aborted",
                                    expect=Phase.CUTOVER)
            raise self._refuse(out, f"the backup stream still holds {backlog} entries after "
                               f"{self.drain_timeout:.0f}s (is 'f2f worker' running?); back in redis")
        out.steps.append("backup stream drained")
        synced = await self._reverse_sync()
        out.steps.append(f"reverse sync: {synced} sessions newer in Redis copied into SQL")
        out.verify = await self._verify()
        if not out.verify.clean:
            await control.set_phase(self.engine, Phase.REDIS, actor=self.actor, action="rollback aborted",
                                    expect=Phase.CUTOVER)
            raise self._refuse(out, f"verify found {out.verify.differences} differences; back in redis")
        await self._reset_repair_queue()
        await self._step_to(out, Phase.DUAL, expect=Phase.CUTOVER, undo=None)
        out.writes_held_ms = (time.monotonic() - held_from) * 1000
        out.steps.append(f"writes were held for at most {out.writes_held_ms:.0f} ms")
        out.done = True
        return out

    async def _abandon_cutover(self, out: Outcome) -> Outcome:
        """A cut-over left behind by a crashed 'migrate': go back to the phase it started from."""
        with translate_db_errors():
            async with self.engine.connect() as conn:
                origin = await conn.scalar(
                    select(f2f_phase_history.c.from_phase)
                    .where(f2f_phase_history.c.to_phase == Phase.CUTOVER.value)
                    .order_by(f2f_phase_history.c.id.desc())
                    .limit(1)
                )
        back = Phase(origin) if origin in (Phase.DUAL.value, Phase.REDIS.value) else Phase.DUAL
        out.to_phase = back.value
        if self.dry_run:
            out.steps.append(f"would return from cutover to {back}")
            return out
        self._ask(out, f"Abandon the unfinished cut-over and return to {back}?")
        await self._step_to(out, back, expect=Phase.CUTOVER, undo=None)
        out.done = True
        return out

    # -- verify (also a command of its own) -----------------------------------------

    async def verify_stores(self, *, repair_now: bool) -> Outcome:
        state = await control.get_control(self.engine)
        out = Outcome("verify", state.phase.value, dry_run=self.dry_run)
        out.verify, pairs = await verify(self.engine, self.sql, self.redis, sample=self.verify_sample,
                                         batch_size=self.batch_size, progress=self.progress)
        try:
            if repair_now and not out.verify.clean and not self.dry_run:
                trust = "redis" if state.phase is Phase.REDIS else "sql"
                self._ask(out, f"Repair {len(pairs)} differing sessions from {trust}?")
                out.verify.repaired = await repair(pairs, trust=trust, sql_store=self.sql, redis=self.redis)
                out.steps.append(f"repaired {out.verify.repaired} sessions from {trust}")
                if trust == "sql":
                    await self._reset_repair_queue()
        except Refused:
            return out
        out.done = out.verify.clean or out.verify.repaired == out.verify.differences
        return out

    # -- the plan ---------------------------------------------------------------------

    @staticmethod
    def planned_steps(target: Phase, current: Phase) -> list[str]:
        if target is Phase.DUAL and current in (Phase.POSTGRES, Phase.DUAL_WRITE):
            steps = ["preflight: SQL schema at head, Redis reachable, eviction policy, memory for the copy"]
            if current is Phase.POSTGRES:
                steps.append("set dual-write (writes go to SQL, then Redis) and wait for every instance")
            steps += ["backfill SQL → Redis (batched, pipelined, resumable, keeps TTLs, never older over newer)",
                      "repair pass for copies that failed meanwhile", "verify SQL against Redis",
                      "set dual (reads from Redis) and wait for every instance"]
            return steps
        if target is Phase.REDIS and current is Phase.DUAL:
            return ["preflight: Redis reachable and trusted, a backup worker alive, verify clean",
                    "set cutover (writes held) and wait for every instance",
                    "set redis (Redis is the authority; SQL is the backup via 'f2f worker')"]
        if target is Phase.DUAL and current is Phase.REDIS:
            return ["set cutover (writes held) and wait for every instance",
                    "wait until the backup stream is drained into SQL",
                    "reverse sync: anything newer in Redis into SQL", "verify",
                    "set dual (SQL is the authority again) and wait for every instance"]
        if target is Phase.POSTGRES and current in (Phase.DUAL, Phase.DUAL_WRITE):
            return ["set postgres and wait for every instance", "report what Redis still holds"]
        return []

    async def plan(self, target: Phase) -> Outcome:
        state = await control.get_control(self.engine)
        out = Outcome(f"plan to {target}", state.phase.value, target.value, dry_run=True)
        out.steps = self.planned_steps(target, state.phase)
        if not out.steps and state.phase is not target:
            out.refused = f"no move from {state.phase} to {target}"
        if target is Phase.DUAL:
            out.checks = await self._dual_checks()
        elif target is Phase.REDIS:
            out.checks = [await checks.phase_is(self.engine, Phase.DUAL), await checks.redis_reachable(self.redis),
                          await checks.repair_queue_empty(self.engine),
                          await checks.worker_alive(self.engine, self.window)]
        elif target is Phase.POSTGRES:
            out.checks = [await checks.sql_schema(self.settings)]
        out.done = all(c.ok for c in out.checks) and out.refused is None
        return out

    # -- internals ----------------------------------------------------------------------

    async def _dual_checks(self) -> list[Check]:
        result = [await checks.sql_schema(self.settings), await checks.redis_reachable(self.redis)]
        if not result[1].ok:
            return result
        result.append(await checks.eviction_policy(self.redis))
        sessions = await count_unexpired(self.engine, utcnow())
        result.append(await checks.memory_for(self.redis, sessions, await self._sample_session_bytes()))
        return result

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

    async def _preflight(self, out: Outcome, found: list[Check]) -> None:
        out.checks.extend(found)
        failed = [c for c in found if not c.ok]
        if failed:
            raise self._refuse(out, f"{failed[0].name}: {failed[0].detail}")

    def _refuse(self, out: Outcome, reason: str) -> Refused:
        out.refused = reason
        return Refused(reason)

    def _ask(self, out: Outcome, question: str) -> None:
        if not self.confirm(question):
            raise self._refuse(out, "aborted by the operator; nothing changed")

    async def _step_to(self, out: Outcome, target: Phase, *, expect: Phase, undo: Phase | None) -> None:
        state = await control.set_phase(self.engine, target, actor=self.actor, action=out.action, expect=expect)
        out.steps.append(f"set {target} (epoch {state.epoch})")
        await self._converge(out, state.epoch, undo=undo, current=target)

    async def _converge(self, out: Outcome, epoch: int, *, undo: Phase | None, current: Phase | None = None) -> None:
        try:
            instances, waited = await wait_for_epoch(self.engine, epoch, limit=self.converge_timeout,
                                                     window=self.window)
        except PreconditionFailed as exc:
            if undo is not None and current is not None:
                await control.set_phase(self.engine, undo, actor=self.actor, action=f"{out.action} aborted",
                                        expect=current)
                raise self._refuse(out, f"{exc.message}; returned to {undo}") from None
            raise self._refuse(out, exc.message) from None
        out.steps.append(f"{len(instances)} live instance(s) acknowledged epoch {epoch} in {waited * 1000:.0f} ms")

    async def _verify(self) -> VerifyReport:
        report, _pairs = await verify(self.engine, self.sql, self.redis, sample=self.verify_sample,
                                      batch_size=self.batch_size, progress=self.progress)
        return report

    async def _reset_repair_queue(self) -> None:
        with translate_db_errors():
            async with self.engine.begin() as conn:
                await conn.execute(delete(f2f_repair_queue))
                await conn.execute(update(f2f_control).where(f2f_control.c.id == 1).values(redis_trusted=True))

    async def _wait_drained(self) -> int:
        deadline = time.monotonic() + self.drain_timeout
        while True:
            backlog = await backup_backlog(self.redis)
            if backlog == 0 or time.monotonic() >= deadline:
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

