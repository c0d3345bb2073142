"""Shared fixtures: real PostgreSQL, SQLite and Redis, isolated per test run.

Every pytest run creates its own PostgreSQL database (``f2f_test_<random>``)
and uses its own Redis key prefix, so parallel runs on one machine never see
each other's rows or keys. Tables are truncated and keys deleted after each
test that touched them.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from f2f_cli.db import migrate as schema
from f2f_cli.db.schema import metadata
from f2f_cli.settings import Settings
from tests.redis_servers import RedisClusterServers, start_cluster

PG_ADMIN_URL = os.environ.get("F2F_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")
REDIS_TEST_URL = os.environ.get("F2F_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = secrets.token_hex(4)


# The fast lane (`pytest -m "not services"`) runs in-process tests only. A test joins the `services`
# lane by itself when it reaches PostgreSQL or Redis through a fixture (directly or through another
# fixture), when a parametrised backend names a server, or when it starts a server process of its own
# (`f2f serve`, `f2f worker`, podman) through the helpers in tests/servers.py or a module fixture.
SERVICE_FIXTURES = frozenset({
    "pg_database_url", "pg_url", "empty_pg_url", "redis_url", "redis_prefix",
    "redis_cluster", "redis_sentinel", "redis_mode_url", "redis_cluster_factory",
})
SERVICE_MARKERS = ("postgres", "redis", "chaos", "container", "services")
SERVER_BACKENDS = ("postgres", "redis", "dual")
SERVER_PROCESS_HELPERS = frozenset({"f2f_server", "worker_process", "server_process"})
# Modules whose tests share one server process started by a module-scoped fixture.
SERVER_PROCESS_MODULES = (
    "tests/fuzz/",
    "tests/api/test_probe_served.py",
    "tests/api/test_probe_served_edge.py",
    "tests/api/test_served_observability.py",
)


def _needs_services(item: pytest.Item) -> bool:
    if any(item.get_closest_marker(name) for name in SERVICE_MARKERS):
        return True
    if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return True
    # Parametrised fixtures (sql_url, the contract suite's store) pick their backend at run time: a backend
    # named after a server needs it, SQLite and the in-memory store do not.
    params = getattr(getattr(item, "callspec", None), "params", {})
    if any(isinstance(v, str) and v.startswith(SERVER_BACKENDS) for v in params.values()):
        return True
    function = getattr(item, "function", None)
    if function is not None and SERVER_PROCESS_HELPERS.intersection(function.__code__.co_names):
        return True
    return item.nodeid.startswith(SERVER_PROCESS_MODULES)


# The suite runs on two processes (pytest-xdist, `-n 2 --dist loadfile` in pyproject.toml): a test file's tests stay
# in one process (a module-scoped server starts once), and the fault and image tests (tests/chaos/, tests/container/),
# which start and kill servers of their own under load or build an image, count as one file: they run one after
# another in one process, beside at most one other test. (Not `loadgroup` marks: xdist 3.8 sets them on the old
# `_nodeid` attribute, which pytest 9 no longer reads, so they group nothing.)
SERIAL_DIRS = ("tests/chaos/", "tests/container/")


def xdist_scope(nodeid: str) -> str:
    """The unit the scheduler hands to one process: the test's file, or one scope for every serial test."""
    if nodeid.startswith(SERIAL_DIRS):
        return "serial: " + " ".join(SERIAL_DIRS)
    return nodeid.split("::", 1)[0]


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadfile":
        return None  # another --dist given on the command line: xdist's own scheduler
    from xdist.scheduler import LoadScopeScheduling

    class FileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_scope(nodeid)

    return FileScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _needs_services(item):
            item.add_marker(pytest.mark.services)


def _pg_url_for(dbname: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database at schema head, dropped at the end of the run (async URL)."""
    name = f"f2f_test_{RUN_ID}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = Settings.from_env({"F2F_DATABASE_URL": _pg_url_for(name)}, env_file=None).database_url
    schema.upgrade(url)
    yield url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    """A PostgreSQL database with no schema at all, dropped after the test."""
    name = f"f2f_empty_{RUN_ID}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield _pg_url_for(name)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def truncate_all(database_url: str) -> None:
    """Empty every f2f table except the control row, which goes back to phase postgres."""
    from sqlalchemy import text

    from f2f_cli.db.engine import create_sync_engine_for

    engine = create_sync_engine_for(database_url)
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            if table.name == "f2f_control":
                conn.execute(text("UPDATE f2f_control SET phase='postgres', epoch=1, redis_trusted=true, "
                                  "redis_state='ok', redis_generation=NULL, rpo_estimate=NULL, restore_done=NULL, "
                                  "restore_total=NULL"))
            elif table.name in metadata.tables:
                conn.execute(table.delete())
    engine.dispose()


@pytest.fixture
def pg_url(pg_database_url: str) -> Iterator[str]:
    """The run's PostgreSQL database, emptied after the test."""
    yield pg_database_url
    truncate_all(pg_database_url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to schema head per run, copied by ``sqlite_url`` (a migration costs ~0.1 s,
    a copy ~1 ms, and hundreds of fast-lane tests take a fresh file)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "f2f.db"
    schema.upgrade(f"sqlite+aiosqlite:///{path}")
    leftovers = [p.name for p in path.parent.iterdir() if p != path]
    assert not leftovers, f"the migrated SQLite file is not self-contained: {leftovers}"
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A new SQLite file at schema head (the test's tmp dir is removed by pytest)."""
    path = tmp_path / "f2f.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgres"])
def sql_url(request: pytest.FixtureRequest) -> str:
    """Each SQL backend in turn: SQLite file and real PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix no other test or run uses; every key under it is deleted afterwards."""
    prefix = f"f2ft{RUN_ID}{secrets.token_hex(3)}"
    yield prefix
    client = redis.Redis.from_url(REDIS_TEST_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def redis_url() -> str:
    return REDIS_TEST_URL


@pytest.fixture
def redis_cluster_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RedisClusterServers]]:
    """Start Clusters of this test's own (``start_cluster``'s arguments: ``replicas=1``, ``node_timeout_ms``).

    For tests that kill, restart or reshard nodes; every node started here is stopped afterwards.
    """
    started: list[RedisClusterServers] = []

    def start(**kwargs: Any) -> RedisClusterServers:
        servers = start_cluster(tmp_path_factory.mktemp("redis-cluster-ha"), **kwargs)
        started.append(servers)
        return servers

    yield start
    for servers in started:
        servers.stop()


def make_settings(**env: str) -> Settings:
    """Settings from an explicit mapping only (never the developer's environment or .env)."""
    return Settings.from_env(env, env_file=None)
