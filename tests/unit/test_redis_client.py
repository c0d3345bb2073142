"""F2F_REDIS_URL forms, key names and the explicit timeouts of the Redis client."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from f2f_cli.errors import ConfigError, StoreUnavailable
from f2f_cli.redis.client import SentinelRedis, create_redis, parse_redis_url
from f2f_cli.redis.keys import RedisKeys, slot_tags
from f2f_cli.stores.redis import RedisSessionStore
from tests.conftest import make_settings


def test_standalone_forms() -> None:
    for url in ("redis://127.0.0.1:6379/0", "rediss://:pw@cache:6380/2", "unix:///run/redis.sock?db=1"):
        target = parse_redis_url(url)
        assert target.mode == "standalone"
    assert parse_redis_url("rediss://cache").ssl


def test_sentinel_form_with_passwords_db_and_tls() -> None:
    target = parse_redis_url(
        "rediss+sentinel://:s3cret@10.0.0.1:26379,[::1]:26380,sentinel-c/mymaster/3"
        "?sentinel_password=sp&ssl_cert_reqs=none"
    )
    assert target.mode == "sentinel"
    assert target.hosts == (("10.0.0.1", 26379), ("::1", 26380), ("sentinel-c", 26379))
    assert target.service_name == "mymaster"
    assert target.password == "s3cret"
    assert target.db == 3
    assert target.ssl
    assert target.options["sentinel_password"] == "sp"
    assert "s3cret" not in target.display


def test_cluster_form() -> None:
    target = parse_redis_url("redis+cluster://app:pw@127.0.0.1:7000,127.0.0.1:7001?client_name=f2f")
    assert target.mode == "cluster"
    assert target.hosts == (("127.0.0.1", 7000), ("127.0.0.1", 7001))
    assert (target.username, target.password) == ("app", "pw")


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://host:26379",  # no master name
        "redis+cluster://host:7000/0",  # clusters have no databases
        "redis+cluster://host:7000?bogus=1",
        "redis+cluster://host:x",
        "memcached+cluster://host",
    ],
)
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_redis_url(url)


async def test_clients_carry_the_configured_timeouts() -> None:
    for url, kind in (
        ("redis://127.0.0.1:6379/0", Redis),
        ("redis+cluster://127.0.0.1:7000", RedisCluster),
        ("redis+sentinel://127.0.0.1:26379/m", SentinelRedis),
    ):
        client = create_redis(
            make_settings(F2F_REDIS_URL=url, F2F_REDIS_CONNECT_TIMEOUT="0.03", F2F_REDIS_COMMAND_TIMEOUT="0.04")
        )
        assert isinstance(client, kind)
        if isinstance(client, Redis):
            kwargs = client.connection_pool.connection_kwargs
            assert kwargs["socket_connect_timeout"] == 0.03
            assert kwargs["socket_timeout"] == 0.04
            assert type(client.connection_pool.get_encoder()).__name__ == "Encoder"
        await client.aclose()


def test_hiredis_parses_replies() -> None:
    from redis.utils import HIREDIS_AVAILABLE

    assert HIREDIS_AVAILABLE


async def test_dead_redis_is_store_unavailable() -> None:
    # 7290 is in this suite's port range and nothing listens there.
    store = RedisSessionStore.from_settings(make_settings(F2F_REDIS_URL="redis://127.0.0.1:7290/0"))
    with pytest.raises(StoreUnavailable):
        await store.get("A" * 32)
    with pytest.raises(StoreUnavailable):
        await store.create()
    await store.close()


def test_session_keys_and_slot_streams() -> None:
    keys = RedisKeys("f2f", cluster=True)
    sid = "abcdefghijklmnopqrstuvwxyz012345"
    assert keys.session(sid) == "f2f:s:{abcdefghijklmnopqrstuvwxyz012345}"
    assert keys.session_id_of(keys.session(sid).encode()) == sid
    assert key_slot(keys.backup_stream(sid).encode()) == key_slot(keys.session(sid).encode())
    streams = keys.backup_streams()
    assert len(streams) == 16384
    assert len({key_slot(s.encode()) for s in streams}) == 16384
    assert max(len(t) for t in slot_tags()) <= 3
    assert RedisKeys("f2f").backup_streams() == ("f2f:bk",)
