"""``f2f sessions export`` and ``import``: JSON Lines through version-guarded copies.

Import reads the file twice: first it validates every line (nothing is written
yet, so ``strict`` can abort with nothing half-written), then it applies the
good lines with ``apply_copy``, which only ever replaces an older version.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

import msgspec
from sqlalchemy import select

from f2f_cli.clock import utcnow
from f2f_cli.db.errors import translate_db_errors
from f2f_cli.db.schema import fridge_sessions as sessions_t
from f2f_cli.domain.model import Session
from f2f_cli.errors import InvalidInput
from f2f_cli.ops.context import OpsContext, StoreName
from f2f_cli.ops.jsonl import LineError, decode_line, encode_line

Progress = Callable[[int, int], None]
MAX_REPORTED_ERRORS = 1000


class ExportResult(msgspec.Struct, frozen=True):
    store: str
    sessions: int
    seconds: float


class ImportResult(msgspec.Struct, frozen=True):
    file: str
    stores: list[str]
    lines: int
    valid: int
    applied: int
    not_newer: int
    expired: int
    errors: list[LineError]
    error_count: int
    strict: bool
    dry_run: bool
    aborted: bool
    seconds: float


async def export_sessions(ctx: OpsContext, store: StoreName, out: BinaryIO, *, batch_size: int = 1000) -> ExportResult:
    """Write every live session of ``store`` to ``out``, one line each, streaming."""
    started = time.perf_counter()
    source = ctx.sql if store == "sql" else ctx.redis()
    n = 0
    chunk: list[bytes] = []
    async for session in _sessions(source.iter_sessions(batch_size)):
        chunk.append(encode_line(session))
        n += 1
        if len(chunk) >= batch_size:
            out.write(b"".join(chunk))
            chunk.clear()
    out.write(b"".join(chunk))
    out.flush()
    return ExportResult(store, n, round(time.perf_counter() - started, 3))


async def _sessions(it: AsyncIterator[Session]) -> AsyncIterator[Session]:
    async for s in it:
        if not s.deleted:
            yield s


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path}: is a directory, expected a JSON Lines file") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror})") from None


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with _open(path) as f:
        for number, raw in enumerate(f, start=1):
            line = raw.strip()
            if line:
                yield number, line


def validate_file(path: Path, *, max_ingredients: int, max_length: int) -> tuple[int, int, list[LineError], int]:
    """(lines, valid lines, first errors, error count) without writing anything."""
    lines = valid = count = 0
    errors: list[LineError] = []
    for number, raw in _lines(path):
        lines = number
        try:
            decode_line(raw, max_ingredients=max_ingredients, max_length=max_length)
        except ValueError as exc:
            count += 1
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append(LineError(number, str(exc)))
        else:
            valid += 1
    return lines, valid, errors, count


async def import_sessions(
    ctx: OpsContext,
    path: Path,
    *,
    strict: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportResult:
    """Apply every valid line of ``path`` to the stores of the current phase (authority first).

    ``dry_run`` walks the same lines through the same decisions against what the stores hold
    now (and what earlier lines of the file would have written), so its counts are the real
    run's: applied, not newer, expired.
    """
    started = time.perf_counter()
    limits = {"max_ingredients": ctx.settings.max_ingredients, "max_length": ctx.settings.max_ingredient_length}
    lines, valid, errors, error_count = validate_file(path, **limits)
    stores = await ctx.stores_of_phase()
    if not ctx.redis_configured:
        stores = [s for s in stores if s == "sql"]

    def result(applied: int = 0, not_newer: int = 0, expired: int = 0, aborted: bool = False) -> ImportResult:
        return ImportResult(
            str(path), list(stores), lines, valid, applied, not_newer, expired, errors, error_count,
            strict, dry_run, aborted, round(time.perf_counter() - started, 3),
        )

    if strict and error_count:
        return result(aborted=True)
    target: _Target = _Simulated(ctx, stores) if dry_run else _Stores(ctx, stores)
    counts = {"applied": 0, "not newer": 0, "expired": 0}
    done = 0
    if progress is not None:
        progress(0, valid)
    for batch in _valid_sessions(path, limits, IMPORT_BATCH):
        for outcome in await target.apply(batch):
            counts[outcome] += 1
        done += len(batch)
        if progress is not None:
            progress(done, valid)
    return result(counts["applied"], counts["not newer"], counts["expired"])


IMPORT_BATCH = 500
Outcome = Literal["applied", "not newer", "expired"]


def _valid_sessions(path: Path, limits: dict[str, int], size: int) -> Iterator[list[Session]]:
    """The file's valid sessions in file order, in batches (bad lines were counted by validate_file)."""
    batch: list[Session] = []
    for _number, raw in _lines(path):
        try:
            batch.append(decode_line(raw, **limits))
        except ValueError:
            continue
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Target(Protocol):
    async def apply(self, batch: list[Session]) -> list[Outcome]: ...


class _Stores:
    """The real run: a version-guarded copy into each store, in order (authority first)."""

    def __init__(self, ctx: OpsContext, stores: list[StoreName]) -> None:
        self.ctx = ctx
        self.stores = stores

    async def apply(self, batch: list[Session]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for session in batch:
            if session.expires_at <= utcnow():
                outcomes.append("expired")
                continue
            outcome: Outcome = "not newer"
            for store in self.stores:
                target = self.ctx.sql if store == "sql" else self.ctx.redis()
                if await target.apply_copy(session):
                    outcome = "applied"
            outcomes.append(outcome)
        return outcomes


class _Simulated:
    """The dry run: the same decision ``apply_copy`` makes (apply only over an older version or
    nothing), taken on the versions each store holds now, tombstones and unpurged rows included,
    and on what earlier lines would have written."""

    def __init__(self, ctx: OpsContext, stores: list[StoreName]) -> None:
        self.ctx = ctx
        self.stores = stores
        self.written: dict[tuple[StoreName, str], int] = {}

    async def apply(self, batch: list[Session]) -> list[Outcome]:
        ids = list(dict.fromkeys(s.session_id for s in batch))
        held = {store: await self._held(store, ids) for store in self.stores}
        outcomes: list[Outcome] = []
        for session in batch:
            if session.expires_at <= utcnow():
                outcomes.append("expired")
                continue
            outcome: Outcome = "not newer"
            for store in self.stores:
                key = (store, session.session_id)
                current = self.written.get(key, held[store].get(session.session_id))
                if current is None or current < session.version:
                    self.written[key] = session.version
                    outcome = "applied"
            outcomes.append(outcome)
        return outcomes

    async def _held(self, store: StoreName, ids: list[str]) -> dict[str, int]:
        if store == "redis":
            copies = await self.ctx.redis().read_copies(ids)
            return {c.session_id: c.version for c in copies if c is not None}
        # apply_copy's SQL guard is "version < new" on whatever row exists, expired or not: read the same.
        with translate_db_errors():
            async with self.ctx.engine.connect() as conn:
                rows = await conn.execute(
                    select(sessions_t.c.session_id, sessions_t.c.version).where(sessions_t.c.session_id.in_(ids))
                )
                return {r.session_id: int(r.version) for r in rows}
