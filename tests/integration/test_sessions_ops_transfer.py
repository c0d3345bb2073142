"""Export → import round trips through version-guarded copies; bad lines never half-write."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import delete

from f2f_cli.clock import utcnow
from f2f_cli.db.schema import fridge_sessions
from f2f_cli.domain.ids import new_session_id
from f2f_cli.domain.model import Ingredient, Session
from f2f_cli.errors import InvalidInput
from f2f_cli.ops.jsonl import decode_line, encode_line
from f2f_cli.ops.transfer import export_sessions, import_sessions
from tests.sessions_seed import ops, seed


async def _export(ctx: object) -> bytes:
    buf = io.BytesIO()
    await export_sessions(ctx, "sql", buf, batch_size=2)  # type: ignore[arg-type]
    return buf.getvalue()


async def test_export_import_round_trip_is_exact(sql_url: str, tmp_path: Path) -> None:
    async with ops(sql_url) as ctx:
        await seed(ctx, 5, ingredients=("김치", "두부", "대파"))
        (sid,) = await seed(ctx, 1, ingredients=())
        await ctx.sql.add_ingredients(sid, ["고추장"])
        await seed(ctx, 2, expired_ago=timedelta(minutes=1))
        await seed(ctx, 1, deleted=True)
        first = await _export(ctx)
        lines = first.splitlines()
        assert len(lines) == 6
        sample = msgspec.json.decode(lines[0])
        assert set(sample) == {"session_id", "created_at", "updated_at", "expires_at", "version", "ingredients",
                               "deleted"}
        assert sample["version"] >= 2 and sample["ingredients"][0].keys() == {"name", "added_at"}

        async with ctx.engine.begin() as conn:  # this run's own database: start empty again
            await conn.execute(delete(fridge_sessions))
        path = tmp_path / "s.jsonl"
        path.write_bytes(first)
        result = await import_sessions(ctx, path)
        assert (result.lines, result.valid, result.applied, result.error_count) == (6, 6, 6, 0)
        assert await _export(ctx) == first

        again = await import_sessions(ctx, path)  # the version guard makes it a no-op
        assert (again.applied, again.not_newer) == (0, 6)
        assert await _export(ctx) == first


async def test_import_never_replaces_a_newer_version(sql_url: str, tmp_path: Path) -> None:
    async with ops(sql_url) as ctx:
        (sid,) = await seed(ctx, 1)
        path = tmp_path / "s.jsonl"
        path.write_bytes(await _export(ctx))
        await ctx.sql.add_ingredients(sid, ["대파"])  # now newer than the file
        result = await import_sessions(ctx, path)
        assert (result.applied, result.not_newer) == (0, 1)
        assert (await ctx.sql.get(sid)).names == {"김치", "두부", "대파"}


def _good_line(version: int = 1, ttl: timedelta = timedelta(hours=1), age: timedelta = timedelta(0)) -> bytes:
    now = utcnow() - age
    return encode_line(Session(new_session_id(), now, now, now + ttl, version, (Ingredient("두부", now),)))


async def test_bad_lines_are_reported_and_skipped_or_abort_with_strict(sql_url: str, tmp_path: Path) -> None:
    now = utcnow().isoformat()
    good = [_good_line(), _good_line(3)]
    bad = [
        b"{not json",
        b'{"session_id": "short", "created_at": "' + now.encode() + b'"}',
        msgspec.json.encode({"session_id": new_session_id(), "created_at": now, "updated_at": now,
                             "expires_at": now, "version": "7", "ingredients": []}),
        _good_line().replace(b"+00:00\"", b"\"").replace(b"Z\"", b"\""),
        _good_line().replace("두부".encode(), b"  tofu "),
        _good_line(version=0),
    ]
    path = tmp_path / "mixed.jsonl"
    expired = _good_line(age=timedelta(hours=2))
    path.write_bytes(good[0] + b"\n".join(b.strip() for b in bad) + b"\n\n" + good[1] + expired)
    async with ops(sql_url) as ctx:
        strict = await import_sessions(ctx, path, strict=True)
        assert strict.aborted and strict.applied == 0 and strict.error_count == len(bad)
        assert await ctx.sql.count() == 0
        assert [e.line for e in strict.errors] == [2, 3, 4, 5, 6, 7]
        messages = [e.message for e in strict.errors]
        assert "not valid JSON" in messages[0]
        assert "Object missing required field" in messages[1] or "session id" in messages[1]
        assert "Expected `int`, got `str`" in messages[2]
        assert "UTC offset" in messages[3]
        assert "not normalised" in messages[4]
        assert "version must be at least 1" in messages[5]

        dry = await import_sessions(ctx, path, dry_run=True)
        assert dry.valid == 3 and await ctx.sql.count() == 0

        loose = await import_sessions(ctx, path)
        assert not loose.aborted
        assert (loose.applied, loose.expired, loose.error_count) == (2, 1, 6)
        assert await ctx.sql.count() == 2


async def test_unreadable_files_are_one_clear_error(sql_url: str, tmp_path: Path) -> None:
    async with ops(sql_url) as ctx:
        with pytest.raises(InvalidInput, match="no such file"):
            await import_sessions(ctx, tmp_path / "missing.jsonl")
        with pytest.raises(InvalidInput, match="is a directory"):
            await import_sessions(ctx, tmp_path)


def test_decode_line_checks() -> None:
    line = _good_line()
    assert decode_line(line.strip(), max_ingredients=5, max_length=50).names == {"두부"}
    with pytest.raises(ValueError, match="more than the limit"):
        decode_line(line, max_ingredients=0, max_length=50)
    with pytest.raises(ValueError, match="limited to 1 characters"):
        decode_line(line, max_ingredients=5, max_length=1)
    twice = line.replace(b'"ingredients":[', b'"ingredients":[{"name":"\xeb\x91\x90\xeb\xb6\x80","added_at":"'
                         + utcnow().isoformat().encode() + b'"},')
    with pytest.raises(ValueError, match="appears twice"):
        decode_line(twice, max_ingredients=5, max_length=50)
