"""The session-creation token bucket, in memory and in the real Redis."""

from __future__ import annotations

import pytest
import redis
from redis.asyncio import Redis

from f2f_cli.api.ratelimit import MemoryBucket, RateLimited, RedisBucket, SessionCreationLimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_bucket_refills_at_the_configured_rate() -> None:
    clock = Clock()
    bucket = MemoryBucket(6, clock=clock)  # one token every 10 s
    assert all([(await bucket.take("a")).allowed for _ in range(6)])
    denied = await bucket.take("a")
    assert not denied.allowed and denied.retry_after == pytest.approx(10.0)
    assert (await bucket.take("b")).allowed  # other clients have their own bucket
    clock.now += 10
    assert (await bucket.take("a")).allowed
    assert not (await bucket.take("a")).allowed


async def test_memory_bucket_table_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from f2f_cli.api import ratelimit

    monkeypatch.setattr(ratelimit, "MAX_MEMORY_BUCKETS", 10)
    bucket = MemoryBucket(1, clock=Clock())
    for i in range(50):
        await bucket.take(f"client-{i}")
    assert len(bucket._buckets) == 10


@pytest.mark.redis
async def test_redis_bucket_is_shared_and_keys_stay_under_the_prefix(redis_url: str, redis_prefix: str) -> None:
    one = RedisBucket(Redis.from_url(redis_url), redis_prefix, 3)
    two = RedisBucket(Redis.from_url(redis_url), redis_prefix, 3)  # another instance
    try:
        limit = SessionCreationLimit(one, 3)
        await limit.check("198.51.100.7")
        await limit.check("198.51.100.7")
        assert (await two.take("198.51.100.7")).allowed
        with pytest.raises(RateLimited) as info:
            await limit.check("198.51.100.7")
        assert info.value.http_status == 429 and 1 <= info.value.retry_after <= 20
        assert (await two.take("2001:db8::/64")).allowed
    finally:
        await one.close()
        await two.close()
    sync = redis.Redis.from_url(redis_url)
    keys = sorted(k.decode() for k in sync.scan_iter(match=f"{redis_prefix}*"))
    assert keys == [f"{redis_prefix}:rl:{{198.51.100.7}}", f"{redis_prefix}:rl:{{2001:db8::/64}}"]
    assert 0 < sync.pttl(keys[0]) <= 61_000  # buckets expire on their own
    sync.close()


async def test_redis_down_falls_back_to_memory() -> None:
    bucket = RedisBucket(Redis.from_url("redis://127.0.0.1:7699/0", socket_connect_timeout=0.2), "f2fdown", 2)
    try:
        results = [(await bucket.take("198.51.100.7")).allowed for _ in range(3)]
    finally:
        await bucket.close()
    assert results == [True, True, False]
