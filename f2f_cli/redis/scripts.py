"""The Lua scripts of the Redis session store.

Hash layout of ``<prefix>:s:{<id>}`` (kept small so Redis stores it as a listpack):

- ``" v"`` version, ``" c"`` created_at (epoch ms), ``" u"`` updated_at (ms after
  created_at), ``" d"`` present only on a tombstone;
- one field per ingredient: name -> added_at (ms after created_at).

Metadata names start with a space, which no ingredient name can (names are
trimmed). ``expires_at`` is the key's own expiry (PEXPIRETIME, Redis >= 7.0), so
it costs no field. Times come from the Redis server clock (TIME), the one clock
every instance shares in the ``redis`` phase.

Backup stream entry (``redis`` phase), a full-state copy written by the same
script: ``i`` id, ``v`` version, ``c`` created ms, ``u`` updated ms, ``e``
expires ms, ``d`` 1 on a tombstone, ``g`` ingredients as
``name US offset US name US offset ...`` (US = \\x1f, a control character no
name may contain; offsets in ms after created_at).
"""

from __future__ import annotations

META_FIELDS = 3  # " v", " c", " u" on a live session

# Shared head of every write: clock, backup-stream choice and guard.
# The shebang lets the script touch its node's backup stream, a key of another slot on the same primary
# (``redis.node_streams``); Redis >= 7.0, which PEXPIRETIME needs anyway.
_PRELUDE = r"""#!lua flags=allow-cross-slot-keys
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local backup = KEYS[2] ~= nil
-- The stream: the node stream the client named (ARGV[7]) when it lives on this primary, else the
-- session's own slot stream KEYS[2] (always local). A key of a slot this node does not serve is refused
-- before anything runs, so the probe has no effect.
local stream = KEYS[2]
local hinted = false
if backup and ARGV[7] ~= '' then
  if ARGV[7] == KEYS[2] or type(redis.pcall('XLEN', ARGV[7])) == 'number' then
    stream = ARGV[7]
    hinted = true
  end
end
-- 1 when this write's entry is the first in an (empty) fallback slot stream: on a Cluster the store
-- then adds the slot to the backup index (see ``redis.node_streams``). Node streams need no index.
local backup_first = 0
if backup then
  if redis.call('EXISTS', stream) == 0 then
    -- The group exists before the first entry, so no entry is ever added unseen by it.
    redis.call('XGROUP', 'CREATE', stream, ARGV[5], '0', 'MKSTREAM')
    if not hinted then backup_first = 1 end
  else
    local backlog = redis.call('XLEN', stream)
    if backlog >= tonumber(ARGV[4]) then
      return redis.error_reply('F2FBACKUPFULL the backup stream is full: is f2f worker running?')
    elseif backlog == 0 and not hinted then
      backup_first = 1
    end
  end
end
local function ingredient_fields(flat)
  local out = {}
  for i = 1, #flat, 2 do
    if string.byte(flat[i], 1) ~= 32 then out[#out + 1] = flat[i]; out[#out + 1] = flat[i + 1] end
  end
  return out
end
local function append_backup(sid)
  if not backup then return end
  local flat = redis.call('HGETALL', key)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  local g = table.concat(ingredient_fields(flat), '\31')
  local created = tonumber(h[' c'])
  redis.call('XADD', stream, '*', 'i', sid, 'v', h[' v'], 'c', h[' c'],
    'u', string.format('%d', created + tonumber(h[' u'])),
    'e', redis.call('PEXPIRETIME', key), 'd', h[' d'] and '1' or '0', 'g', g)
end
"""

# The session as the API reads it, rendered by Redis as the JSON array ``redis/codec.py`` decodes in
# one C call (``session_from_view``): [version, created, updated, expires, deleted,
# [{"name": ..., "added_at": ...}, ...]], times as RFC 3339 strings to the millisecond (built from the
# integer milliseconds, never through a float), ingredients in hash order.
_RENDER = r"""
-- RFC 3339 in UTC to the millisecond, from integer epoch ms (days to civil date: H. Hinnant's
-- algorithm; every division floors, so times before 1970 come out right too).
local function stamp(ms)
  local s = math.floor(ms / 1000)
  local days = math.floor(s / 86400)
  local sod = s - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  return string.format('"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ"', year, month,
    doy - math.floor((153 * mp + 2) / 5) + 1, math.floor(sod / 3600), math.floor(sod % 3600 / 60), sod % 60,
    ms - s * 1000)
end
local function render(flat, expires)
  local c, u, v, d = 0, 0, '0', 'false'
  local names, offsets = {}, {}
  for i = 1, #flat, 2 do
    local name = flat[i]
    if string.byte(name, 1) == 32 then
      if name == ' c' then c = tonumber(flat[i + 1])
      elseif name == ' u' then u = tonumber(flat[i + 1])
      elseif name == ' v' then v = flat[i + 1]
      elseif name == ' d' then d = 'true' end
    else
      names[#names + 1] = name
      offsets[#offsets + 1] = tonumber(flat[i + 1])
    end
  end
  local out = {'[', v, ',', stamp(c), ',', stamp(c + u), ',', stamp(expires), ',', d, ',['}
  for i = 1, #names do
    if i > 1 then out[#out + 1] = ',' end
    out[#out + 1] = '{"name":'
    out[#out + 1] = cjson.encode(names[i])
    out[#out + 1] = ',"added_at":'
    out[#out + 1] = stamp(c + offsets[i])
    out[#out + 1] = '}'
  end
  out[#out + 1] = ']]'
  return table.concat(out)
end
"""

# KEYS: session[, backup stream]
# ARGV: op (c create, a add, r remove, x clear, t touch, d delete), ttl ms, limit,
#       stream cap, group, session id, node stream ('' for none), names...
# Returns {1, the session rendered (``_RENDER``), changed names, backup_first} on success, {0} not
# found, {-1} id taken (create), {-2, count} over the ingredient limit.
WRITE = (
    _PRELUDE
    + _RENDER
    + r"""
local op = ARGV[1]
local ttl = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local sid = ARGV[6]
local changed = {}
if op == 'c' then
  if redis.call('EXISTS', key) == 1 then return {-1} end
  redis.call('HSET', key, ' v', 1, ' c', now, ' u', 0)
  redis.call('PEXPIREAT', key, now + ttl)
  append_backup(sid)
  return {1, render(redis.call('HGETALL', key), redis.call('PEXPIRETIME', key)), changed, backup_first}
end
local meta = redis.call('HMGET', key, ' v', ' c', ' d')
if not meta[1] or meta[3] then return {0} end
local created = tonumber(meta[2])
if op == 'a' and #ARGV < 8 then
  -- No name to add: nothing changes (no new version, the expiry stays, no backup entry), as in every store.
  return {1, render(redis.call('HGETALL', key), redis.call('PEXPIRETIME', key)), changed, 0}
end
if op == 'a' then
  local seen = {}
  local args = {}
  for i = 8, #ARGV do
    local name = ARGV[i]
    if not seen[name] and redis.call('HEXISTS', key, name) == 0 then
      seen[name] = true
      changed[#changed + 1] = name
      args[#args + 1] = name
      args[#args + 1] = now - created
    end
  end
  if #changed > 0 then
    local count = redis.call('HLEN', key) - 3
    if count + #changed > limit then return {-2, count} end
    redis.call('HSET', key, unpack(args))
  end
elseif op == 'r' then
  if redis.call('HDEL', key, ARGV[8]) == 1 then changed[1] = ARGV[8] end
elseif op == 'x' or op == 'd' then
  local names = redis.call('HKEYS', key)
  for _, name in ipairs(names) do
    if string.byte(name, 1) ~= 32 then changed[#changed + 1] = name end
  end
  for i = 1, #changed, 1000 do
    redis.call('HDEL', key, unpack(changed, i, math.min(i + 999, #changed)))
  end
  if op == 'd' then redis.call('HSET', key, ' d', 1) end
end
redis.call('HSET', key, ' v', tonumber(meta[1]) + 1, ' u', now - created)
-- A tombstone keeps the expiry the session had: it lives exactly as long as a
-- late copy of the session could still matter.
if op ~= 'd' then redis.call('PEXPIREAT', key, now + ttl) end
append_backup(sid)
return {1, render(redis.call('HGETALL', key), redis.call('PEXPIRETIME', key)), changed, backup_first}
"""
)

# KEYS: session.  Returns false, or {flat hash, expire-at ms}.
READ = r"""
local flat = redis.call('HGETALL', KEYS[1])
if #flat == 0 then return false end
return {flat, redis.call('PEXPIRETIME', KEYS[1])}
"""

# KEYS: session.  The request path's read: the same hash and expiry as READ, rendered (``_RENDER``);
# nothing (false) when the key does not exist or has no expiry.
READ_VIEW = _RENDER + r"""
local flat = redis.call('HGETALL', KEYS[1])
if #flat == 0 then return false end
local expires = redis.call('PEXPIRETIME', KEYS[1])
if expires < 0 then return false end
return render(flat, expires)
"""

# KEYS: session keys.  ARGV[k]: the copy for KEYS[k], packed as
#   "version US created US updated US expires US deleted[ US name US added ...]" (times in epoch ms),
# one argument per session so a bulk copy sends few arguments and PostgreSQL can render them.
# Returns one code per key: 1 applied, 0 not newer than what is stored, 2 newer but already
# expired (the older copy is removed). All keys of one call must share a slot on a Cluster,
# so there the store calls it with one key at a time.
APPLY_COPIES = r"""
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
      for i = 1, #args, 1000 do
        redis.call('HSET', key, unpack(args, i, math.min(i + 999, #args)))
      end
      redis.call('PEXPIREAT', key, expires)
      codes[k] = 1
    end
  end
end
return codes
"""

# KEYS: stream.  ARGV: group, entry ids.  Acknowledges the entries and deletes them:
# the stream then holds only what no worker has committed yet (XLEN is the backlog).
ACK_DELETE = r"""
local n = 0
for i = 2, #ARGV, 1000 do
  local last = math.min(i + 999, #ARGV)
  n = n + redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, i, last))
  redis.call('XDEL', KEYS[1], unpack(ARGV, i, last))
end
return n
"""

# KEYS: stream.  ARGV: group, consumer, count.  XREADGROUP of new entries in a script: on a Cluster the
# client routes EVALSHA by its declared key, where a bare XREADGROUP (movable keys) costs redis-py a
# COMMAND GETKEYS round trip per call.
READ_GROUP = r"""
return redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
"""
