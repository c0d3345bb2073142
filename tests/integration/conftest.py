"""Redis servers this suite owns (3-node Cluster, Sentinel) and Redis store fixtures.

The Cluster and the Sentinel setup start once per run on free loopback ports
and are stopped at the end; the shared Redis on 6379 is used with a
per-test key prefix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.db.engine import create_engine_for
from f2f_cli.settings import Settings
from f2f_cli.stores.redis import RedisSessionStore
from tests.conftest import make_settings
from tests.redis_servers import RedisClusterServers, SentinelServers, start_cluster, start_sentinel

REDIS_MODES = ["standalone", "cluster", "sentinel"]


@pytest.fixture
async def engine(sql_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on each SQL backend (a module may bind it to one backend with its own fixture)."""
    eng = create_engine_for(make_settings(F2F_DATABASE_URL=sql_url))
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    servers = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield servers
    servers.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelServers]:
    servers = start_sentinel(tmp_path_factory.mktemp("redis-sentinel"))
    yield servers
    servers.stop()


def redis_url_for(request: pytest.FixtureRequest, mode: str) -> str:
    if mode == "cluster":
        return request.getfixturevalue("redis_cluster").url  # type: ignore[no-any-return]
    if mode == "sentinel":
        return request.getfixturevalue("redis_sentinel").url  # type: ignore[no-any-return]
    return request.getfixturevalue("redis_url")  # type: ignore[no-any-return]


@pytest.fixture(params=REDIS_MODES)
def redis_mode_url(request: pytest.FixtureRequest) -> str:
    """The F2F_REDIS_URL of each connection mode in turn."""
    return redis_url_for(request, request.param)


@pytest.fixture
def redis_settings(redis_mode_url: str, redis_prefix: str) -> Settings:
    return make_settings(
        F2F_REDIS_URL=redis_mode_url,
        F2F_REDIS_KEY_PREFIX=redis_prefix,
        # Generous on purpose: the test machine is shared and busy, correctness is what is checked here.
        F2F_REDIS_COMMAND_TIMEOUT="5",
        F2F_REDIS_CONNECT_TIMEOUT="5",
    )


@pytest.fixture
async def redis_store(redis_settings: Settings) -> AsyncIterator[RedisSessionStore]:
    store = RedisSessionStore.from_settings(redis_settings)
    yield store
    await store.close()


@pytest.fixture
async def redis_backup_store(redis_settings: Settings) -> AsyncIterator[RedisSessionStore]:
    store = RedisSessionStore.from_settings(redis_settings, backup_stream=True)
    yield store
    await store.close()
