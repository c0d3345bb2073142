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

# Shared head of every write: clock, backup-stream guard.
_PRELUDE = r"""
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local backup = KEYS[2] ~= nil
if backup then
  if redis.call('EXISTS', KEYS[2]) == 0 then
    -- The group exists before the first entry, so no entry is ever added unseen by it.
    redis.call('XGROUP', 'CREATE', KEYS[2], ARGV[5], '0', 'MKSTREAM')
  elseif redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[4]) then
    return redis.error_reply('F2FBACKUPFULL the backup stream is full: is f2f worker running?')
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
  redis.call('XADD', KEYS[2], '*', 'i', sid, 'v', h[' v'], 'c', h[' c'],
    'u', string.format('%d', created + tonumber(h[' u'])),
    'e', redis.call('PEXPIRETIME', key), 'd', h[' d'] and '1' or '0', 'g', g)
end
"""

# KEYS: session[, backup stream]
# ARGV: op (c create, a add, r remove, x clear, t touch, d delete), ttl ms, limit,
#       stream cap, group, session id, names...
WRITE = (
    _PRELUDE
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
  return {1, redis.call('HGETALL', key), redis.call('PEXPIRETIME', key), changed}
end
local meta = redis.call('HMGET', key, ' v', ' c', ' d')
if not meta[1] or meta[3] then return {0} end
local created = tonumber(meta[2])
if op == 'a' then
  local seen = {}
  local args = {}
  for i = 7, #ARGV do
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
  if redis.call('HDEL', key, ARGV[7]) == 1 then changed[1] = ARGV[7] end
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
return {1, redis.call('HGETALL', key), redis.call('PEXPIRETIME', key), changed}
"""
)

# KEYS: session.  Returns false, or {flat hash, expire-at ms}.
READ = r"""
local flat = redis.call('HGETALL', KEYS[1])
if #flat == 0 then return false end
return {flat, redis.call('PEXPIRETIME', KEYS[1])}
"""

# KEYS: session.  ARGV: version, created ms, updated ms, expires ms, deleted (0/1), name, added ms, ...
# Returns 1 applied, 0 not newer than what is stored, 2 newer but already expired (older copy removed).
APPLY_COPY = r"""
local key = KEYS[1]
local version = tonumber(ARGV[1])
local current = redis.call('HGET', key, ' v')
if current and tonumber(current) >= version then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expires = tonumber(ARGV[4])
redis.call('DEL', key)
if expires <= now then return 2 end
local created = tonumber(ARGV[2])
local args = {' v', version, ' c', created, ' u', tonumber(ARGV[3]) - created}
if ARGV[5] == '1' then
  args[#args + 1] = ' d'
  args[#args + 1] = 1
else
  for i = 6, #ARGV, 2 do
    args[#args + 1] = ARGV[i]
    args[#args + 1] = tonumber(ARGV[i + 1]) - created
  end
end
for i = 1, #args, 1000 do
  redis.call('HSET', key, unpack(args, i, math.min(i + 999, #args)))
end
redis.call('PEXPIREAT', key, expires)
return 1
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
