"""The fast path of ``restore`` (PostgreSQL → standalone or Sentinel Redis): many copies per script call.

Per session, the script does exactly what the Redis store's ``APPLY_COPY`` does
(version guard, drop the older copy, skip an expired one, write the hash, set the
expiry); it only takes a whole page of sessions in one call, each packed in one
argument, and PostgreSQL already renders times as epoch milliseconds and the
ingredients as one string. That removes almost all per-session Python work.
A Redis Cluster cannot run one script over keys of many slots, so a cluster
restore goes through the store's pipelined ``apply_copies`` instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from redis.exceptions import RedisError
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.db.types import UTCDateTime
from f2f_cli.errors import StoreUnavailable
from f2f_cli.sessions.model import utcnow
from f2f_cli.sessions.redis import RedisSessionStore
from f2f_cli.sessions.sql import translate_db_errors

US = "\x1f"  # the unit separator: no ingredient name may contain a control character

# KEYS: session keys.  ARGV[i]: "version US created US updated US expires US deleted[ US name US added ...]"
# (times in epoch ms).  Returns one code per key: 1 applied, 0 not newer, 2 expired.
BULK_APPLY = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local codes = {}
for k = 1, #KEYS do
  local key = KEYS[k]
  local f = {}
  for part in string.gmatch(ARGV[k], '[^\31]+') do f[#f + 1] = part end
  local version = tonumber(f[1])
  local current = redis.call('HGET', key, ' v')
  if current and tonumber(current) >= version then
    codes[k] = 0
  else
    redis.call('DEL', key)
    local expires = tonumber(f[4])
    if expires <= now then
      codes[k] = 2
    else
      local created = tonumber(f[2])
      local args = {' v', version, ' c', created, ' u', tonumber(f[3]) - created}
      if f[5] == '1' then
        args[#args + 1] = ' d'
        args[#args + 1] = 1
      else
        for i = 6, #f, 2 do
          args[#args + 1] = f[i]
          args[#args + 1] = tonumber(f[i + 1]) - created
        end
      end
      redis.call('HSET', key, unpack(args))
      redis.call('PEXPIREAT', key, expires)
      codes[k] = 1
    end
  end
end
return codes
"""

_MS = "floor(extract(epoch from {col}) * 1000)::bigint"
_PAGE = text(
    f"""
    SELECT s.session_id,
           s.version || chr(31) || {_MS.format(col="s.created_at")} || chr(31) || {_MS.format(col="s.updated_at")}
             || chr(31) || {_MS.format(col="s.expires_at")} || chr(31)
             || CASE WHEN s.deleted_at IS NULL THEN '0' ELSE '1' END
             || coalesce((SELECT chr(31) || string_agg(i.name || chr(31) || {_MS.format(col="i.added_at")}, chr(31))
                          FROM fridge_session_ingredients i WHERE i.session_id = s.session_id), '') AS packed
    FROM fridge_sessions s
    WHERE s.session_id > :after AND s.expires_at > :now AND (:since IS NULL OR s.updated_at >= :since)
    ORDER BY s.session_id
    LIMIT :size
    """
).bindparams(bindparam("now", type_=UTCDateTime()), bindparam("since", type_=UTCDateTime()))


def fast_path_possible(engine: AsyncEngine, store: RedisSessionStore) -> bool:
    return engine.dialect.name == "postgresql" and not store.keys.cluster


async def packed_pages(
    engine: AsyncEngine, *, since: datetime | None, page_size: int
) -> AsyncIterator[list[tuple[str, str]]]:
    """(session id, packed copy) pages in id order, keyset-paginated."""
    after = ""
    while True:
        with translate_db_errors():
            async with engine.connect() as conn:
                rows = (
                    await conn.execute(_PAGE, {"after": after, "now": utcnow(), "since": since, "size": page_size})
                ).all()
        if not rows:
            return
        yield [(r.session_id, r.packed) for r in rows]
        if len(rows) < page_size:
            return
        after = rows[-1].session_id


class BulkApplier:
    def __init__(self, store: RedisSessionStore) -> None:
        self.store = store
        self._script = store.client.register_script(BULK_APPLY)

    async def apply(self, page: list[tuple[str, str]]) -> list[int]:
        keys = [self.store.keys.session(sid) for sid, _ in page]
        try:
            codes = await self._script(keys=keys, args=[packed for _, packed in page])
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis is unavailable: {exc or type(exc).__name__}") from exc
        return [int(c) for c in codes]
