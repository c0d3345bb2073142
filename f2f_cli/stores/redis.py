"""``RedisSessionStore``: the ``SessionStore`` protocol on Redis (standalone, Sentinel or Cluster).

Each session is one hash (layout in ``redis_scripts``); every write is one Lua
script, so the existence/tombstone check, the ingredient limit, the version
increment, the TTL renewal and, in the ``redis`` phase, the backup-stream entry
happen atomically. ``apply_copy`` is a version-guarded compare-and-set.

With ``backup_stream=True`` (the ``redis`` phase) every write also appends a
full-state copy to the backup stream of the session's primary (``redis.node_streams``),
which ``f2f worker`` drains into SQL. The stream is never trimmed by length:
approximate MAXLEN trimming on Redis 7 drops entries whether or not a worker has
committed them. Instead the worker deletes each entry once SQL has committed it,
and a write whose stream already holds ``backup_max_entries`` entries fails with
``StoreUnavailable`` (503) rather than losing its backup silently.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.exceptions import NoScriptError, RedisError, ResponseError

from f2f_cli import tracing
from f2f_cli.domain.ids import check_session_id, new_session_id
from f2f_cli.domain.model import Mutation, Session, normalize_ingredient, normalize_ingredients
from f2f_cli.errors import InvalidInput, SessionNotFound, StoreUnavailable, TooManyIngredients
from f2f_cli.redis.client import REDIS_FAILURES, RedisClient, create_redis, is_cluster, scan_keys
from f2f_cli.redis.codec import pack_copy, session_from_hash, session_from_view
from f2f_cli.redis.keys import BACKUP_GROUP, RedisKeys
from f2f_cli.redis.node_streams import NodeStreams
from f2f_cli.redis.scripts import APPLY_COPIES, READ, READ_VIEW, WRITE
from f2f_cli.settings import Settings

T = TypeVar("T")
DEFAULT_BACKUP_MAX_ENTRIES = 1_000_000
# Sessions per APPLY_COPIES call on a single primary: long enough to amortise the call,
# short enough not to block Redis for more than about a millisecond.
APPLY_CHUNK = 200


async def _guard(call: Awaitable[T]) -> T:
    """Map Redis failures to ``StoreUnavailable`` (503), the error every caller handles."""
    try:
        return await call
    except ResponseError as exc:
        text = str(exc)
        if "F2FBACKUPFULL" in text:
            raise StoreUnavailable(text.partition("F2FBACKUPFULL ")[2] or text) from exc
        raise StoreUnavailable(f"Redis refused a command: {text}") from exc
    except REDIS_FAILURES as exc:
        raise _unavailable(exc) from exc


def _unavailable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"Redis is unavailable: {exc or type(exc).__name__}")


class RedisSessionStore:
    backend = "redis"

    def __init__(
        self,
        client: RedisClient,
        settings: Settings,
        *,
        backup_stream: bool = False,
        backup_max_entries: int = DEFAULT_BACKUP_MAX_ENTRIES,
        owns_client: bool = True,
    ) -> None:
        self.client = client
        self.keys = RedisKeys(settings.redis_key_prefix, cluster=is_cluster(client))
        self.backup_stream = backup_stream
        self._backup_max_entries = backup_max_entries
        self._ttl_ms = settings.session_ttl_seconds * 1000
        self._limit = settings.max_ingredients
        self._name_length = settings.max_ingredient_length
        self._owns_client = owns_client
        self._write_script = client.register_script(WRITE)
        self._read_script = client.register_script(READ)
        self._view_script = client.register_script(READ_VIEW)
        self._apply_script = client.register_script(APPLY_COPIES)
        tracing.name_scripts({self._write_script.sha: "write", self._read_script.sha: "read",
                              self._view_script.sha: "read_view", self._apply_script.sha: "apply_copies"})
        self._loaded_scripts: set[str] = set()
        self._node_streams = NodeStreams(self.keys)

    @classmethod
    def from_settings(cls, settings: Settings, *, backup_stream: bool = False) -> RedisSessionStore:
        return cls(create_redis(settings), settings, backup_stream=backup_stream)

    async def _write(self, op: str, session_id: str, names: Sequence[str] = ()) -> tuple[Session, tuple[str, ...]]:
        if self.backup_stream and NodeStreams.needs_map(self.client):
            await _guard(self.client.initialize())  # so that the first write names its node stream too
        keys, args = self.write_call(op, session_id, names)
        reply = await _guard(self._write_script(keys=keys, args=args))
        status = int(reply[0])
        if status == 0:
            raise SessionNotFound(f"session {session_id} does not exist or has expired")
        if status == -1:
            raise _IdCollision
        if status == -2:
            raise TooManyIngredients(f"a session holds at most {self._limit} ingredients (it has {int(reply[1])})")
        session = session_from_view(session_id, reply[1])
        if self.backup_stream and self.keys.cluster and int(reply[3]) == 1:
            await self._mark_backup_slot(session_id)
        return session, tuple(n.decode() for n in reply[2])

    def write_call(self, op: str, session_id: str, names: Sequence[str] = ()) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of the WRITE script (``redis.scripts``) for one write."""
        keys = [self.keys.session(session_id)]
        node_stream = ""
        if self.backup_stream:
            keys.append(self.keys.backup_stream(session_id))
            if self.keys.cluster:
                node_stream = self._node_streams.for_slot(self.client, self.keys.backup_slot(session_id))
        args: list[Any] = [op, self._ttl_ms, self._limit, self._backup_max_entries, BACKUP_GROUP, session_id,
                           node_stream, *names]  # fmt: skip
        return keys, args

    async def _mark_backup_slot(self, session_id: str) -> None:
        """Tell the worker this slot's stream has an entry (Cluster: see ``redis_keys``). The write
        itself has succeeded; if this fails, the worker's periodic sweep finds the entry instead."""
        with contextlib.suppress(RedisError, OSError):
            await self.client.sadd(self.keys.backup_index, self.keys.backup_slot(session_id))

    async def create(self) -> Session:
        for _ in range(5):
            try:
                session, _ = await self._write("c", new_session_id())
            except _IdCollision:
                continue  # 192 random bits: never in practice, but never overwrite either
            return session
        raise StoreUnavailable("could not allocate a new session id")  # pragma: no cover

    async def get(self, session_id: str) -> Session:
        check_session_id(session_id)
        key = self.keys.session(session_id)
        try:
            # READ_VIEW in one EVALSHA: the hash and its expiry read atomically and rendered by Redis as
            # JSON that decodes in one C call. The script is loaded only when Redis answers NOSCRIPT (a
            # restarted Redis): the registered ``Script`` wrapper costs more per call than the command.
            # ``_guard``'s mapping is written out: this is the request path's most frequent call.
            reply = await self.client.execute_command("EVALSHA", self._view_script.sha, 1, key)
        except ResponseError as exc:
            reply = await _guard(self._run_again(self._view_script, key, exc))
        except REDIS_FAILURES as exc:
            raise _unavailable(exc) from exc
        session = session_from_view(session_id, reply) if reply else None
        if session is None or session.deleted:
            raise SessionNotFound(f"session {session_id} does not exist or has expired")
        return session

    @staticmethod
    async def _run_again(script: Any, key: str, error: ResponseError) -> Any:
        """After a script's EVALSHA failed with ``error``: load and run it if Redis had lost it
        (NOSCRIPT), else raise ``error``."""
        if not isinstance(error, NoScriptError) and "NOSCRIPT" not in str(error):
            raise error
        return await script(keys=[key])

    async def read_copy(self, session_id: str) -> Session | None:
        """The stored state, tombstones included (``None`` if absent): what copy tools compare."""
        check_session_id(session_id)
        reply = await _guard(self._read_script(keys=[self.keys.session(session_id)]))
        return self._decode_read(session_id, reply)

    @staticmethod
    def _decode_read(session_id: str, reply: Any) -> Session | None:
        if not reply:
            return None
        flat, expires_ms = reply
        if int(expires_ms) < 0:  # expired between HGETALL and PEXPIRETIME cannot happen in a script
            return None
        return session_from_hash(session_id, flat, int(expires_ms))

    async def delete(self, session_id: str) -> None:
        check_session_id(session_id)
        await self._write("d", session_id)

    async def add_ingredients(self, session_id: str, names: Sequence[str]) -> Mutation:
        check_session_id(session_id)
        clean = normalize_ingredients(names, self._name_length)
        session, changed = await self._write("a", session_id, clean)
        return Mutation(session=session, changed=changed)

    async def remove_ingredient(self, session_id: str, name: str) -> Mutation:
        check_session_id(session_id)
        session, changed = await self._write("r", session_id, [normalize_ingredient(name, self._name_length)])
        return Mutation(session=session, changed=changed)

    async def clear(self, session_id: str) -> Mutation:
        check_session_id(session_id)
        session, changed = await self._write("x", session_id)
        return Mutation(session=session, changed=changed)

    async def touch(self, session_id: str) -> Session:
        check_session_id(session_id)
        session, _ = await self._write("t", session_id)
        return session

    async def count(self) -> int:
        """Live sessions (tombstones excluded), counted with SCAN on every primary."""
        total = 0
        async for batch in self._key_batches(1000):
            flags = await self._pipelined(batch, lambda pipe, key: pipe.hexists(key, " d"))
            total += sum(1 for flag in flags if not flag)
        return total

    def iter_sessions(self, batch_size: int = 500, *, include_deleted: bool = False) -> AsyncIterator[Session]:
        """Every session (SCAN over every primary; order unspecified; a session may appear once
        per SCAN guarantee rules, and writes made meanwhile may or may not be seen)."""
        return self._iter(batch_size, include_deleted)

    async def _iter(self, batch_size: int, include_deleted: bool) -> AsyncIterator[Session]:
        async for batch in self._key_batches(batch_size):
            replies = await self._evalsha_many(self._read_script, [([key], []) for key in batch])
            for key, reply in zip(batch, replies, strict=True):
                session = self._decode_read(self.keys.session_id_of(key), reply)
                if session is not None and (include_deleted or not session.deleted):
                    yield session

    async def _evalsha_many(self, script: Any, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]) -> list[Any]:
        """Run ``script`` once per (keys, args) in one pipeline.

        The script is loaded on first use, and again when Redis answers NOSCRIPT: a restarted
        (or failed-over) Redis has an empty script cache, and a copy tool must not wedge on it.
        SCRIPT LOAD reaches every primary of a Cluster.
        """
        for attempt in range(2):
            if script.sha not in self._loaded_scripts:
                await _guard(self.client.script_load(script.script))
                self._loaded_scripts.add(script.sha)
            pipe = self.client.pipeline(transaction=False)
            for keys, args in calls:
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            try:
                return list(await pipe.execute())
            except ResponseError as exc:
                if attempt == 0 and (isinstance(exc, NoScriptError) or "NOSCRIPT" in str(exc)
                                     or "No matching script" in str(exc)):
                    self._loaded_scripts.discard(script.sha)
                    continue
                raise StoreUnavailable(f"Redis refused a command: {exc}") from exc
            except (RedisError, OSError) as exc:
                raise StoreUnavailable(f"Redis is unavailable: {exc or type(exc).__name__}") from exc
        raise StoreUnavailable("Redis keeps losing f2f's scripts")  # pragma: no cover

    async def _key_batches(self, size: int) -> AsyncIterator[list[bytes]]:
        batch: list[bytes] = []
        try:
            async for key in scan_keys(self.client, self.keys.session_pattern, count=max(size, 100), type_="hash"):
                batch.append(key)
                if len(batch) >= size:
                    yield batch
                    batch = []
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis is unavailable: {exc or type(exc).__name__}") from exc
        if batch:
            yield batch

    async def _pipelined(self, keys: list[bytes], add: Callable[[Any, bytes], object]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            add(pipe, key)
        return list(await _guard(pipe.execute()))

    async def apply_copy(self, copy: Session) -> bool:
        return (await self.apply_copies([copy]))[0] == 1

    async def apply_copies(self, copies: Sequence[Session]) -> list[int]:
        """``apply_copy`` for many sessions (backfill, restore, repair), version-guarded each.

        Per copy: 1 applied, 0 Redis already held that version or newer, 2 already expired.
        """
        for copy in copies:
            check_session_id(copy.session_id)
            for item in copy.ingredients:
                if not item.name or item.name != item.name.strip() or "\x1f" in item.name:
                    raise InvalidInput(f"copy of {copy.session_id} holds an invalid ingredient name {item.name!r}")
        return await self.apply_packed([(c.session_id, pack_copy(c)) for c in copies])

    async def apply_packed(self, packed: Sequence[tuple[str, str]]) -> list[int]:
        """Apply (session id, ``pack_copy`` string) pairs: a few script calls for a whole batch on a
        single primary; one call per session, pipelined, on a Cluster (keys of one call share a slot)."""
        if not packed:
            return []
        if self.keys.cluster:
            calls = [([self.keys.session(sid)], [args]) for sid, args in packed]
            return [int(r[0]) for r in await self._evalsha_many(self._apply_script, calls)]
        chunks = [packed[i : i + APPLY_CHUNK] for i in range(0, len(packed), APPLY_CHUNK)]
        calls = [([self.keys.session(sid) for sid, _ in chunk], [a for _, a in chunk]) for chunk in chunks]
        return [int(code) for reply in await self._evalsha_many(self._apply_script, calls) for code in reply]

    async def read_copies(self, session_ids: Sequence[str]) -> list[Session | None]:
        """``read_copy`` for many sessions in one pipeline (verify, inspect)."""
        if not session_ids:
            return []
        replies = await self._evalsha_many(self._read_script, [([self.keys.session(sid)], []) for sid in session_ids])
        return [self._decode_read(sid, reply) for sid, reply in zip(session_ids, replies, strict=True)]

    async def discard(self, session_id: str) -> None:
        """Remove the key outright, no tombstone: for operator repair of a diverged copy."""
        await _guard(self.client.delete(self.keys.session(session_id)))

    async def ping(self) -> None:
        await _guard(self.client.ping())

    async def close(self) -> None:
        if self._owns_client:
            await self.client.aclose()


class _IdCollision(Exception):
    pass
