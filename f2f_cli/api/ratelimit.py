"""Sessions created per client per minute: a token bucket, in Redis when configured, else in memory.

Each client (IPv4 address, or IPv6 /64) has a bucket of ``per_minute`` tokens
refilled at ``per_minute / 60`` tokens a second; creating a session takes one.
In Redis the bucket is one small hash under the configured key prefix, updated
by a Lua script with Redis's own clock, so every instance shares one limit. If
Redis fails, the limit falls back to this process's memory rather than refusing
every new session (a degraded limit beats an outage); a circuit breaker keeps
a dead Redis from costing a timeout per request.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from f2f_cli.errors import F2FError
from f2f_cli.redis.client import RedisClient
from f2f_cli.settings import Settings
from f2f_cli.stores.breaker import CircuitBreaker

log = logging.getLogger("f2f.ratelimit")

# The in-memory table is bounded: rotating addresses cannot grow it without limit.
MAX_MEMORY_BUCKETS = 100_000

# KEYS[1] the bucket; ARGV[1] capacity, ARGV[2] tokens per second. Returns {allowed, seconds to wait}.
# The wait is returned as a string: Redis truncates Lua numbers to integers.
TOKEN_BUCKET_LUA = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
end
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return {allowed, tostring(wait)}
"""


class RateLimited(F2FError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0


class Limiter(Protocol):
    async def take(self, key: str) -> Decision: ...

    async def close(self) -> None: ...


class MemoryBucket:
    """Token buckets in this process (limits are per process under several workers)."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    async def take(self, key: str) -> Decision:
        return self.take_now(key)

    def take_now(self, key: str) -> Decision:
        now = self._clock()
        tokens, at = self._buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + max(0.0, now - at) * self.rate)
        decision = Decision(True) if tokens >= 1 else Decision(False, (1 - tokens) / self.rate)
        if decision.allowed:
            tokens -= 1
        self._buckets[key] = (tokens, now)  # most recently used last
        while len(self._buckets) > MAX_MEMORY_BUCKETS:
            self._buckets.popitem(last=False)
        return decision

    async def close(self) -> None:
        self._buckets.clear()


class RedisBucket:
    """Token buckets shared by every instance, one Redis hash per client."""

    def __init__(self, client: Any, key_prefix: str, per_minute: int) -> None:
        self._client = client
        self._prefix = key_prefix
        self.capacity = per_minute
        self.rate = per_minute / 60.0
        self._script = client.register_script(TOKEN_BUCKET_LUA)
        self._fallback = MemoryBucket(per_minute)
        self._breaker = CircuitBreaker(threshold=3, reset_seconds=5.0)

    def key(self, client_key: str) -> str:
        # The client key is an address rendered by ipaddress, never raw header text.
        return f"{self._prefix}:rl:{{{client_key}}}"

    async def take(self, key: str) -> Decision:
        if not self._breaker.allow():
            return self._fallback.take_now(key)
        try:
            allowed, wait = await self._script(keys=[self.key(key)], args=[self.capacity, repr(self.rate)])
        except Exception as exc:
            self._breaker.failure()
            log.warning("rate limit falls back to memory: redis %s", type(exc).__name__)
            return self._fallback.take_now(key)
        self._breaker.success()
        return Decision(bool(int(allowed)), float(wait))

    async def close(self) -> None:
        await self._client.aclose()


class SessionCreationLimit:
    """What the create-session route asks: may this client create one more session now?"""

    def __init__(self, limiter: Limiter, per_minute: int) -> None:
        self.limiter = limiter
        self.per_minute = per_minute

    async def check(self, client_key: str) -> None:
        decision = await self.limiter.take(client_key)
        if not decision.allowed:
            raise RateLimited(
                f"too many new sessions from this address (limit {self.per_minute} per minute)",
                decision.retry_after,
            )

    async def close(self) -> None:
        await self.limiter.close()


def session_creation_limit(settings: Settings, redis: RedisClient | None) -> SessionCreationLimit | None:
    """The limit for these settings: None when ``F2F_SESSIONS_PER_MINUTE=0``; shared in Redis when given one.

    The limiter closes the client it is given.
    """
    per_minute = settings.sessions_per_minute
    if per_minute == 0:
        return None
    limiter: Limiter = MemoryBucket(per_minute)
    if redis is not None:
        limiter = RedisBucket(redis, settings.redis_key_prefix, per_minute)
    return SessionCreationLimit(limiter, per_minute)
