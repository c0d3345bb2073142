"""Version-guarded, set-based apply of full-state session copies into SQL (used by ``f2f worker``).

A batch of backup-stream entries is first **coalesced**: only the newest copy of
each session is applied (the older ones are full states of the same session that
the newest supersedes; the worker acknowledges them together after the commit).

On PostgreSQL the whole batch then takes one to three round trips, whatever its size, and writes
only the ingredient rows that differ (a one-name add to a 90-ingredient session writes and sends one
row, not 90):

1. **Remembered sessions** (the steady state of a running worker): the worker keeps the last copy it
   committed of each session (:class:`KnownCopies`). A version names exactly one full state, so where SQL
   still holds that version, SQL's ingredient rows are exactly that copy's: the worker diffs the new copy
   against it in Python and sends one statement that moves each session row ``WHERE version = <the
   remembered one>`` and changes only the rows of the sessions it moved, with COMMIT in the same pipeline:
   **one round trip for the batch**.
2. **The rest** (new sessions; rows another worker or a purge changed since; replays): the session rows,
   sent as ``unnest`` arrays, are upserted ``WHERE version < excluded.version`` in session-id order,
   ``RETURNING`` the ids that changed (locked until commit); their ingredient rows are read in one
   aggregated query, diffed in the worker, and the differing rows written with COMMIT. When step 1
   committed, this is a transaction of its own: each session's row and ingredients are still one commit,
   and a failure here replays step 1's sessions as no-ops.

Arrays travel as PostgreSQL array literals (``{"a","b"}``, one text parameter that the server
parses) rather than Python lists: psycopg adapts a list element by element in Python, which was
more than a third of the worker's CPU in a drain. Ids are matched by joining ``unnest`` of them, not
``= ANY(...)``: once psycopg prepares a statement, PostgreSQL's generic plan cannot hash a parameter
array and compares every row with every id. ``commit=True`` (the worker) sends COMMIT in the pipeline
of the last statement; without it everything runs in the caller's transaction.

Times travel as epoch milliseconds and become ``timestamptz`` in SQL. Should two workers ever lock
each other's rows in a different order (same sessions in two batches at once), PostgreSQL aborts one
transaction; that worker retries its batch, nothing is lost.

SQLite (the embedded default) keeps the row-at-a-time SQLAlchemy path through the
same :func:`apply_copies` interface. Older copies never replace newer rows;
replaying a copy is a no-op. A tombstone becomes a row with ``deleted_at`` set and
no ingredients; SQL hides rows past ``expires_at``, so a session that expires in
Redis expires in SQL at the same instant without another message.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import delete, insert
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from f2f_cli.db.schema import fridge_session_ingredients, fridge_sessions
from f2f_cli.domain.model import Ingredient, Session, sort_ingredients
from f2f_cli.redis.codec import UNIT_SEPARATOR, datetime_to_ms, ms_to_datetime


@dataclass(frozen=True, slots=True)
class PackedCopy:
    """A full-state copy as the backup stream carries it (see ``redis.scripts``): epoch ms and the
    ingredients packed as ``name US offset US ...`` (offsets in ms after ``created_ms``)."""

    session_id: str
    version: int
    created_ms: int
    updated_ms: int
    expires_ms: int
    deleted: bool
    packed: str

    @classmethod
    def from_entry(cls, fields: Mapping[bytes, bytes]) -> PackedCopy:
        deleted = fields[b"d"] == b"1"
        return cls(
            session_id=fields[b"i"].decode(),
            version=int(fields[b"v"]),
            created_ms=int(fields[b"c"]),
            updated_ms=int(fields[b"u"]),
            expires_ms=int(fields[b"e"]),
            deleted=deleted,
            packed="" if deleted else fields[b"g"].decode(),
        )

    @classmethod
    def from_session(cls, copy: Session) -> PackedCopy:
        created = datetime_to_ms(copy.created_at)
        parts: list[str] = []
        if not copy.deleted:
            for item in copy.ingredients:
                parts += [item.name, str(datetime_to_ms(item.added_at) - created)]
        return cls(
            session_id=copy.session_id,
            version=copy.version,
            created_ms=created,
            updated_ms=datetime_to_ms(copy.updated_at),
            expires_ms=datetime_to_ms(copy.expires_at),
            deleted=copy.deleted,
            packed=UNIT_SEPARATOR.join(parts),
        )

    def to_session(self) -> Session:
        items: list[Ingredient] = []
        if self.packed:
            parts = self.packed.split(UNIT_SEPARATOR)
            items = [
                Ingredient(parts[i], ms_to_datetime(self.created_ms + int(parts[i + 1])))
                for i in range(0, len(parts), 2)
            ]
        return Session(
            session_id=self.session_id,
            created_at=ms_to_datetime(self.created_ms),
            updated_at=ms_to_datetime(self.updated_ms),
            expires_at=ms_to_datetime(self.expires_ms),
            version=self.version,
            ingredients=sort_ingredients(items),
            deleted=self.deleted,
        )


def coalesce(copies: Iterable[PackedCopy]) -> list[PackedCopy]:
    """One copy per session (the highest version), sorted by id so concurrent
    workers lock rows in the same order and cannot deadlock each other."""
    best: dict[str, PackedCopy] = {}
    for copy in copies:
        held = best.get(copy.session_id)
        if held is None or copy.version > held.version:
            best[copy.session_id] = copy
    return [best[k] for k in sorted(best)]


def newest_per_session(copies: Sequence[Session]) -> list[Session]:
    """:func:`coalesce` for ``Session`` values."""
    best: dict[str, Session] = {}
    for copy in copies:
        held = best.get(copy.session_id)
        if held is None or copy.version > held.version:
            best[copy.session_id] = copy
    return [best[k] for k in sorted(best)]


_MS = "to_timestamp(({0})::double precision / 1000)"

_UPSERT_SESSIONS = f"""
INSERT INTO fridge_sessions AS f (session_id, created_at, updated_at, expires_at, version, deleted_at)
SELECT s.sid, {_MS.format("s.c")}, {_MS.format("s.u")}, {_MS.format("s.e")}, s.v,
       CASE WHEN s.d THEN {_MS.format("s.u")} END
FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::boolean[])
     AS s(sid, v, c, u, e, d)
ORDER BY s.sid
ON CONFLICT (session_id) DO UPDATE
SET created_at = excluded.created_at, updated_at = excluded.updated_at, expires_at = excluded.expires_at,
    version = excluded.version, deleted_at = excluded.deleted_at
WHERE f.version < excluded.version
RETURNING f.session_id
"""

# The ingredient rows SQL holds for some sessions, packed like a stream entry but with absolute ms.
_FETCH_ROWS = """
SELECT i.session_id, string_agg(i.name || chr(31) || (extract(epoch FROM i.added_at) * 1000)::bigint, chr(31))
FROM fridge_session_ingredients AS i JOIN unnest(%s::text[]) AS k(sid) ON i.session_id = k.sid
GROUP BY i.session_id
"""


# The ingredient rows a batch deletes and upserts (the difference the worker computed).
_DIFF_CTES = f"""
gone AS (
  DELETE FROM fridge_session_ingredients AS i USING unnest(%s::text[], %s::text[]) AS d(sid, name)
  WHERE i.session_id = d.sid AND i.name = d.name {{gone_only}}
  RETURNING 1
), put AS (
  INSERT INTO fridge_session_ingredients AS i (session_id, name, added_at)
  SELECT p.sid, p.name, {_MS.format("p.ms")} FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS p(sid, name, ms)
  {{put_only}}
  ON CONFLICT (session_id, name) DO UPDATE SET added_at = excluded.added_at
  RETURNING 1
)"""

_APPLY_DIFF = "WITH " + _DIFF_CTES.format(gone_only="", put_only="") + """
SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM put)
"""

# Sessions whose SQL row the worker knows: one statement moves each row from the version it remembers to the
# new copy, and changes only the ingredient rows of the sessions it moved (the difference against the
# remembered copy, computed in Python). A row at any other version (another worker wrote since, a purge
# removed it) is left alone and goes the general way. The UPDATE locks what it changes until commit.
_APPLY_KNOWN = f"""
WITH moved AS (
  UPDATE fridge_sessions AS f
  SET updated_at = {_MS.format("s.u")}, expires_at = {_MS.format("s.e")}, version = s.v,
      deleted_at = CASE WHEN s.d THEN {_MS.format("s.u")} END
  FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::boolean[])
       AS s(sid, held, v, u, e, d)
  WHERE f.session_id = s.sid AND f.version = s.held
  RETURNING f.session_id
), {_DIFF_CTES.format(gone_only="AND d.sid IN (SELECT session_id FROM moved)",
                      put_only="WHERE p.sid IN (SELECT session_id FROM moved)")}
SELECT (SELECT coalesce(array_agg(session_id), '{{}}') FROM moved), (SELECT count(*) FROM gone),
       (SELECT count(*) FROM put)
"""


class KnownCopies:
    """The last copy of each session a worker saw committed to SQL (bounded, least recently used out).

    A version names exactly one full state (DESIGN: one version authority), so when SQL's row still
    carries the version remembered here, SQL's ingredient rows are exactly this copy's: the new copy is
    diffed against it in Python and only the changed rows are sent. Anything else (not remembered,
    another worker wrote since, a purge removed the row) takes the SQL-side diff.
    """

    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self._copies: OrderedDict[str, PackedCopy] = OrderedDict()

    def get(self, session_id: str) -> PackedCopy | None:
        return self._copies.get(session_id)

    def remember(self, copies: Iterable[PackedCopy]) -> None:
        """Call after the transaction that applied ``copies`` committed."""
        for copy in copies:
            held = self._copies.get(copy.session_id)
            if held is None or copy.version > held.version:
                self._copies[copy.session_id] = copy
            self._copies.move_to_end(copy.session_id)
        while len(self._copies) > self.capacity:
            self._copies.popitem(last=False)

    def __len__(self) -> int:
        return len(self._copies)


@dataclass(slots=True)
class ApplyResult:
    """What one batch did: copies offered, sessions after coalescing, session rows and ingredient rows written."""

    copies: int = 0
    sessions: int = 0
    changed: frozenset[str] = frozenset()
    ingredient_rows: int = 0
    diffed_in_worker: int = 0  # changed sessions whose ingredient difference the worker computed
    chosen: tuple[PackedCopy, ...] = ()  # the coalesced copies (hand them to KnownCopies after commit)


async def apply_packed(
    conn: AsyncConnection, copies: Sequence[PackedCopy], known: KnownCopies | None = None, *, commit: bool = False
) -> ApplyResult:
    """Apply ``copies`` inside the caller's transaction (coalesced first). With ``known`` (PostgreSQL),
    sessions whose SQL version matches a remembered copy are diffed in Python.

    ``commit`` (PostgreSQL): COMMIT in the same round trip as the last statement; the caller's own
    commit then finds no transaction open and sends nothing. Elsewhere the caller commits as usual."""
    chosen = coalesce(copies)
    if not chosen:
        return ApplyResult(copies=len(copies))
    diffed = 0
    if conn.dialect.name == "postgresql":
        changed, rows, diffed = await _apply_postgresql(conn, chosen, known, commit=commit)
    else:
        changed, rows = await _apply_rows(conn, [c.to_session() for c in chosen])
    return ApplyResult(copies=len(copies), sessions=len(chosen), changed=frozenset(changed), ingredient_rows=rows,
                       diffed_in_worker=diffed, chosen=tuple(chosen))  # fmt: skip


async def apply_copies(conn: AsyncConnection, copies: Sequence[Session]) -> set[str]:
    """Apply ``Session`` copies inside the caller's transaction; return the ids that changed."""
    result = await apply_packed(conn, [PackedCopy.from_session(c) for c in copies])
    return set(result.changed)


T = TypeVar("T")


class _RowDiff:
    """The ingredient rows a batch deletes and upserts, gathered as the column arrays _APPLY_DIFF takes."""

    def __init__(self) -> None:
        self.gone_sid: list[str] = []
        self.gone_name: list[str] = []
        self.put_sid: list[str] = []
        self.put_name: list[str] = []
        self.put_ms: list[int] = []

    def add(self, sid: str, old: Mapping[str, T], new: Mapping[str, T], added_ms: Callable[[T], int]) -> None:
        """Rows of ``sid`` going from ``old`` to ``new`` (name -> a value that changes with added_at)."""
        for name in old.keys() - new.keys():
            self.gone_sid.append(sid)
            self.gone_name.append(name)
        for name, value in new.items():
            if old.get(name) != value:
                self.put_sid.append(sid)
                self.put_name.append(name)
                self.put_ms.append(added_ms(value))

    def __bool__(self) -> bool:
        return bool(self.gone_sid or self.put_sid)

    def params(self) -> tuple[str, str, str, str, str]:
        """The five array literals the ``gone``/``put`` statements take, in order."""
        return (text_array(self.gone_sid), text_array(self.gone_name), text_array(self.put_sid),
                text_array(self.put_name), int_array(self.put_ms))  # fmt: skip


def _quote(value: str) -> str:
    if "\\" in value or '"' in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{value}"'


def text_array(values: Iterable[str]) -> str:
    """A ``text[]`` literal: every element double-quoted (so NULL, commas, braces and spaces stay text)."""
    return "{" + ",".join(map(_quote, values)) + "}"


def int_array(values: Iterable[int]) -> str:
    """A ``bigint[]`` literal."""
    return "{" + ",".join(map(str, values)) + "}"


def bool_array(values: Iterable[bool]) -> str:
    """A ``boolean[]`` literal."""
    return "{" + ",".join("t" if v else "f" for v in values) + "}"


def _after(created_ms: int, offset: str) -> int:
    return created_ms + int(offset)


def _pairs(packed: str) -> dict[str, str]:
    if not packed:
        return {}
    parts = packed.split(UNIT_SEPARATOR)
    return dict(zip(parts[0::2], parts[1::2], strict=True))


async def _apply_postgresql(
    conn: AsyncConnection, chosen: Sequence[PackedCopy], known: KnownCopies | None, *, commit: bool
) -> tuple[set[str], int, int]:
    raw = await conn.get_raw_connection()
    pg: Any = raw.driver_connection  # psycopg.AsyncConnection, inside the caller's transaction
    changed: set[str] = set()
    rows = 0
    rest = list(chosen)
    remembered = _remembered(chosen, known)
    if remembered:
        # The steady state of a running worker: every session of the batch known, one round trip in all.
        diff = _RowDiff()
        for c, held in remembered:
            # Same created_at, so offsets compare as the strings Redis wrote.
            diff.add(c.session_id, _pairs(held.packed), _pairs(c.packed), functools.partial(_after, c.created_ms))
        copies = [c for c, _ in remembered]
        params = (
            text_array(c.session_id for c in copies), int_array(held.version for _, held in remembered),
            int_array(c.version for c in copies), int_array(c.updated_ms for c in copies),
            int_array(c.expires_ms for c in copies), bool_array(c.deleted for c in copies), *diff.params(),
        )  # fmt: skip
        async with pg.pipeline():
            cur = await pg.execute(_APPLY_KNOWN, params)
            if commit:  # queued behind the statement: one round trip for both
                # (with copies left for the general way, they follow in a transaction of their own: each
                # session's row and ingredients stay one commit, and a failure there replays this part as no-ops)
                await pg.commit()
        moved, gone, put = await cur.fetchone()
        changed.update(moved)  # (never NULL: coalesced to an empty array)
        rows += int(gone) + int(put)
        rest = [c for c in chosen if c.session_id not in changed]
        if not rest:
            return changed, rows, len(changed)
    fast = len(changed)
    general, general_rows = await _apply_general(pg, rest, commit=commit)
    return changed | general, rows + general_rows, fast


def _remembered(chosen: Sequence[PackedCopy], known: KnownCopies | None) -> list[tuple[PackedCopy, PackedCopy]]:
    """The copies newer than one the worker remembers of the same session (same created_at)."""
    if not known:
        return []
    pairs = []
    for c in chosen:
        held = known.get(c.session_id)
        if held is not None and held.created_ms == c.created_ms and held.version < c.version:
            pairs.append((c, held))
    return pairs


async def _apply_general(pg: Any, chosen: Sequence[PackedCopy], *, commit: bool) -> tuple[set[str], int]:
    """Any copies: the session rows upserted in id order, version-guarded; the changed ones diffed against
    the ingredient rows SQL holds (locked by the upsert, so current), then only differing rows written."""
    if not chosen:
        return set(), 0
    cur = await pg.execute(
        _UPSERT_SESSIONS,
        (
            text_array(c.session_id for c in chosen),
            int_array(c.version for c in chosen),
            int_array(c.created_ms for c in chosen),
            int_array(c.updated_ms for c in chosen),
            int_array(c.expires_ms for c in chosen),
            bool_array(c.deleted for c in chosen),
        ),
    )
    changed = {row[0] for row in await cur.fetchall()}
    if not changed:
        return changed, 0
    todo = [c for c in chosen if c.session_id in changed]
    cur = await pg.execute(_FETCH_ROWS, (text_array(c.session_id for c in todo),))
    stored = {sid: packed for sid, packed in await cur.fetchall()}
    diff = _RowDiff()
    for c in todo:
        old_ms = {name: int(ms) for name, ms in _pairs(stored.get(c.session_id) or "").items()}
        new_ms = {name: c.created_ms + int(offset) for name, offset in _pairs(c.packed).items()}
        diff.add(c.session_id, old_ms, new_ms, int)
    rows = 0
    if diff:
        async with pg.pipeline():
            cur = await pg.execute(_APPLY_DIFF, diff.params())
            if commit:
                await pg.commit()  # queued behind the statement: one round trip for both
        row = await cur.fetchone()
        rows = int(row[0]) + int(row[1]) if row else 0
    return changed, rows


async def _apply_rows(conn: AsyncConnection, chosen: Sequence[Session]) -> tuple[set[str], int]:
    """SQLite: one upsert of the session rows, then the changed sessions' ingredients rewritten."""
    rows: list[dict[str, Any]] = [
        {
            "session_id": c.session_id,
            "created_at": c.created_at,
            "updated_at": c.updated_at,
            "expires_at": c.expires_at,
            "version": c.version,
            "deleted_at": c.updated_at if c.deleted else None,
        }
        for c in chosen
    ]
    ins: Any = sqlite.insert(fridge_sessions)
    stmt = ins.on_conflict_do_update(
        index_elements=[fridge_sessions.c.session_id],
        set_={name: ins.excluded[name] for name in ("created_at", "updated_at", "expires_at", "version", "deleted_at")},
        where=fridge_sessions.c.version < ins.excluded.version,
    ).returning(fridge_sessions.c.session_id)
    result = await conn.execute(stmt, rows)
    changed = {row[0] for row in result.all()}
    if not changed:
        return changed, 0
    ids = sorted(changed)
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        await conn.execute(delete(fridge_session_ingredients).where(fridge_session_ingredients.c.session_id.in_(part)))
    ingredient_rows = [
        {"session_id": c.session_id, "name": i.name, "added_at": i.added_at}
        for c in chosen
        if c.session_id in changed and not c.deleted
        for i in c.ingredients
    ]
    if ingredient_rows:
        await conn.execute(insert(fridge_session_ingredients), ingredient_rows)
    return changed, len(ingredient_rows)
