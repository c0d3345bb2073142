"""``f2f sessions export`` and ``import``: JSON Lines through version-guarded copies.

Import reads the file twice: first it validates every line (nothing is written
yet, so ``strict`` can abort with nothing half-written), then it applies the
good lines with ``apply_copy``, which only ever replaces an older version.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import msgspec

from f2f_cli.clock import utcnow
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
    """Apply every valid line of ``path`` to the stores of the current phase (authority first)."""
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

    if (strict and error_count) or dry_run:
        return result(aborted=bool(strict and error_count))
    applied = not_newer = expired = done = 0
    if progress is not None:
        progress(0, valid)
    for _number, raw in _lines(path):
        try:
            session = decode_line(raw, **limits)
        except ValueError:
            continue
        outcome = await _apply(ctx, stores, session)
        applied += outcome == "applied"
        not_newer += outcome == "not newer"
        expired += outcome == "expired"
        done += 1
        if progress is not None and (done % 500 == 0 or done == valid):
            progress(done, valid)
    return result(applied, not_newer, expired)


async def _apply(ctx: OpsContext, stores: list[StoreName], session: Session) -> str:
    if session.expires_at <= utcnow():
        return "expired"
    outcome = "not newer"
    for store in stores:
        target = ctx.sql if store == "sql" else ctx.redis()
        if await target.apply_copy(session):
            outcome = "applied"
    return outcome
