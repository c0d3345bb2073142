"""Build a ``redis.asyncio`` client from ``F2F_REDIS_URL``, and run commands on every primary.

Accepted forms (the README documents each):

- standalone: ``redis://[[user]:password@]host[:6379][/db][?opts]``, ``rediss://...`` (TLS),
  ``unix://[[user]:password@]/path/to/redis.sock[?db=0]``;
- Sentinel: ``redis+sentinel://[[user]:password@]host:26379[,host2:26379]/mymaster[/db][?opts]``
  (``rediss+sentinel://`` for TLS to the data nodes); the userinfo password is the data nodes'
  password, ``?sentinel_password=`` / ``?sentinel_username=`` authenticate to the sentinels;
- Cluster: ``redis+cluster://[[user]:password@]host:7000[,host2:7001][?opts]``
  (``rediss+cluster://`` for TLS); any reachable node is enough, the rest are discovered.

Options for the Sentinel and Cluster forms: ``ssl_cert_reqs``, ``ssl_ca_certs``,
``ssl_certfile``, ``ssl_keyfile``, ``ssl_check_hostname``, ``client_name``, and
``db`` (Sentinel only). Standalone URLs go through ``redis.asyncio.from_url``, which
accepts the same TLS options.

Timeouts are explicit: ``settings.redis_connect_timeout`` bounds opening a
connection and ``settings.redis_command_timeout`` every command, and the only retry
is one on a refused or dropped connection (a restarted Redis leaves dead connections in
the pool), so a dead or blackholed Redis costs a request about connect + command
timeout (~1 s with the 500 ms defaults, chosen from measurement: see ``settings``).
hiredis parses replies when installed (it is a dependency: ``redis[hiredis]``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias
from urllib.parse import parse_qsl, unquote

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, RedisClusterException, RedisError

from f2f_cli.errors import ConfigError
from f2f_cli.settings import Settings, mask_url

# What a Redis call can raise when Redis, or the path to it, fails: a Cluster with no reachable node
# raises RedisClusterException, which is not a RedisError. Callers turn these into StoreUnavailable.
REDIS_FAILURES: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)

RedisClient: TypeAlias = "Redis | RedisCluster"
Mode = Literal["standalone", "sentinel", "cluster"]

DEFAULT_MAX_CONNECTIONS = 100
POOL_WAIT_SECONDS = 2.0
TOPOLOGY_REFRESH_SECONDS = 0.25
_TLS_OPTIONS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname")


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """What an ``F2F_REDIS_URL`` names, parsed once."""

    mode: Mode
    url: str
    hosts: tuple[tuple[str, int], ...] = ()
    service_name: str | None = None
    username: str | None = None
    password: str | None = None
    db: int = 0
    ssl: bool = False
    options: dict[str, str] = field(default_factory=dict)

    @property
    def display(self) -> str:
        return mask_url(self.url)


def _hosts(netloc: str, default_port: int, url: str) -> tuple[tuple[str, int], ...]:
    hostpart = netloc.rpartition("@")[2]
    hosts: list[tuple[str, int]] = []
    for item in hostpart.split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith("["):  # [::1]:26379
            host, _, rest = item[1:].partition("]")
            port_text = rest.removeprefix(":")
        else:
            host, _, port_text = item.partition(":")
        try:
            port = int(port_text) if port_text else default_port
        except ValueError:
            raise ConfigError(f"F2F_REDIS_URL={mask_url(url)!r}: bad port in {item!r}") from None
        hosts.append((host, port))
    if not hosts:
        raise ConfigError(f"F2F_REDIS_URL={mask_url(url)!r} names no host")
    return tuple(hosts)


def _credentials(netloc: str) -> tuple[str | None, str | None]:
    userinfo, at, _ = netloc.rpartition("@")
    if not at:
        return None, None
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if colon else None)


def parse_redis_url(url: str) -> RedisTarget:
    """Parse any accepted ``F2F_REDIS_URL`` form; raise ``ConfigError`` on anything else."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ConfigError(f"F2F_REDIS_URL={mask_url(url)!r} is not a URL")
    if scheme in ("redis", "rediss", "unix"):
        return RedisTarget(mode="standalone", url=url, ssl=scheme == "rediss")
    base, _, kind = scheme.partition("+")
    if base not in ("redis", "rediss") or kind not in ("sentinel", "cluster"):
        raise ConfigError(f"F2F_REDIS_URL={mask_url(url)!r}: unsupported scheme {scheme!r}")
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    if "?" in netloc:  # redis+cluster://host:7000?opt=1 (no path)
        netloc, _, query = netloc.partition("?")
    username, password = _credentials(netloc)
    options = dict(parse_qsl(query, keep_blank_values=True))
    allowed = {*_TLS_OPTIONS, "client_name"}
    if kind == "sentinel":
        allowed |= {"db", "sentinel_password", "sentinel_username"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"F2F_REDIS_URL={mask_url(url)!r}: unknown option(s) {', '.join(unknown)}")
    db = 0
    service: str | None = None
    if kind == "sentinel":
        parts = [p for p in path.split("/") if p]
        if not parts:
            raise ConfigError(
                f"F2F_REDIS_URL={mask_url(url)!r}: name the master, e.g. redis+sentinel://host:26379/mymaster"
            )
        service = unquote(parts[0])
        db_text = parts[1] if len(parts) > 1 else options.pop("db", "0")
        try:
            db = int(db_text)
        except ValueError:
            raise ConfigError(f"F2F_REDIS_URL={mask_url(url)!r}: database must be a number") from None
    elif path.strip("/"):
        raise ConfigError(f"F2F_REDIS_URL={mask_url(url)!r}: Redis Cluster has no databases, drop the path")
    return RedisTarget(
        mode="cluster" if kind == "cluster" else "sentinel",
        url=url,
        hosts=_hosts(netloc, 26379 if kind == "sentinel" else 6379, url),
        service_name=service,
        username=username,
        password=password,
        db=db,
        ssl=base == "rediss",
        options=options,
    )


def tls_kwargs(target: RedisTarget) -> dict[str, Any]:
    if not target.ssl:
        return {}
    kwargs: dict[str, Any] = {"ssl": True}
    for name in _TLS_OPTIONS:
        if name in target.options:
            value: Any = target.options[name]
            if name == "ssl_check_hostname":
                value = value.lower() in ("1", "true", "yes", "on")
            kwargs[name] = value
    return kwargs


def create_redis(
    settings: Settings,
    *,
    command_timeout: float | None = None,
    max_connections: int | None = None,
) -> RedisClient:
    """A client for ``settings.redis_url``; nothing connects until the first command.

    ``command_timeout`` overrides ``settings.redis_command_timeout`` for callers
    that block on purpose (the backup worker's XREADGROUP ... BLOCK).
    """
    if not settings.redis_url:
        raise ConfigError("F2F_REDIS_URL is not set")
    return create_redis_for_url(
        settings.redis_url,
        connect_timeout=settings.redis_connect_timeout,
        command_timeout=settings.redis_command_timeout if command_timeout is None else command_timeout,
        max_connections=max_connections,
    )


def create_redis_for_url(
    url: str,
    *,
    connect_timeout: float,
    command_timeout: float,
    max_connections: int | None = None,
) -> RedisClient:
    target = parse_redis_url(url)
    common: dict[str, Any] = {
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": command_timeout,
        # One retry, on a refused or dropped connection only: after a Redis restart the pool still holds
        # connections to the old process, and each would fail one request; a retry on a fresh connection
        # costs nothing when Redis is back and a refused connect when it is not. Never on a timeout, which
        # would double what a hung Redis costs a request.
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    }
    if max_connections is not None:
        common["max_connections"] = max_connections
    if target.mode == "standalone":
        # A burst beyond the pool waits briefly for a free connection instead of failing.
        pool = WaitingPool.from_url(
            url, timeout=POOL_WAIT_SECONDS, **{"max_connections": DEFAULT_MAX_CONNECTIONS, **common}
        )
        return Redis.from_pool(pool)
    auth: dict[str, Any] = {"username": target.username, "password": target.password}
    if "client_name" in target.options:
        common["client_name"] = target.options["client_name"]
    if target.mode == "cluster":
        common.pop("max_connections", None)
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.hosts],
            **auth,
            **tls_kwargs(target),
            **common,
            max_connections=max_connections or 100,
            # A dead primary's slots move to its replica once the Cluster promotes it; writes held for that
            # shard (stores/backed.py) land as soon as the client sees the new slot map, so refresh it
            # sooner than redis-py's 1 s. One CLUSTER SLOTS per interval at most, however many commands fail.
            topology_refresh_min_interval=TOPOLOGY_REFRESH_SECONDS,
        )
    sentinel_kwargs: dict[str, Any] = {
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": command_timeout,
        "username": target.options.get("sentinel_username"),
        "password": target.options.get("sentinel_password"),
        **tls_kwargs(target),
    }
    sentinel = Sentinel(
        list(target.hosts), sentinel_kwargs=sentinel_kwargs, **common, **tls_kwargs(target)
    )
    assert target.service_name is not None
    client = sentinel.master_for(target.service_name, redis_class=SentinelRedis, db=target.db, **auth)
    assert isinstance(client, SentinelRedis)
    client.f2f_sentinel = sentinel
    return client


class WaitingPool(BlockingConnectionPool):
    """A ``BlockingConnectionPool`` that only pays for blocking when it has to.

    redis-py's version takes an ``asyncio.Condition`` and arms an ``asyncio.timeout`` for every
    command, even when a connection sits idle: about 10 µs a request on this path, a tenth of
    what a bare app spends on a whole GET. Here a command finds a connection the plain
    ``ConnectionPool`` way while the pool has room and nobody waits; only a burst beyond
    ``max_connections`` takes the waiting path. Waiters are served first: while one waits, new
    callers queue behind it, and every release notifies.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waiting = 0

    async def get_connection(self, command_name: Any = None, *keys: Any, **options: Any) -> AbstractConnection:
        if not self._waiting and self.can_get_connection():
            try:
                connection: AbstractConnection = await ConnectionPool.get_connection(self)  # type: ignore[no-untyped-call]
                return connection
            except MaxConnectionsError:
                pass  # another caller took the last slot meanwhile: wait like the rest
        self._waiting += 1
        try:
            connection = await super().get_connection()  # type: ignore[no-untyped-call]
        finally:
            self._waiting -= 1
        return connection

    async def release(self, connection: AbstractConnection) -> None:
        if self._waiting:
            await super().release(connection)
        else:
            await ConnectionPool.release(self, connection)


class SentinelRedis(Redis):
    """A master client that also closes its connections to the sentinels."""

    f2f_sentinel: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.f2f_sentinel is not None:
            for node in self.f2f_sentinel.sentinels:
                await node.aclose()


def is_cluster(client: RedisClient) -> bool:
    return isinstance(client, RedisCluster)


async def close_redis(client: RedisClient) -> None:
    await client.aclose()


async def for_each_primary(client: RedisClient, *command: Any) -> dict[str, Any]:
    """Run ``command`` on every primary (one node unless Cluster); results by ``host:port``."""
    if isinstance(client, RedisCluster):
        results: dict[str, Any] = {}
        await client.initialize()
        for node in client.get_primaries():
            results[node.name] = await client.execute_command(*command, target_nodes=node)
        return results
    kwargs = client.get_connection_kwargs()  # type: ignore[no-untyped-call]
    name = kwargs.get("path") or (f"{kwargs['host']}:{kwargs['port']}" if "host" in kwargs else "primary")
    return {str(name): await client.execute_command(*command)}  # type: ignore[no-untyped-call]


async def primaries(client: RedisClient) -> list[ClusterNode] | None:
    """The cluster's primary nodes, or ``None`` for a single-primary client."""
    if isinstance(client, RedisCluster):
        await client.initialize()
        return client.get_primaries()
    return None


async def scan_keys(
    client: RedisClient, match: str, *, count: int = 1000, type_: str | None = None
) -> AsyncIterator[bytes]:
    """Every key matching ``match`` on every primary (SCAN, so it never blocks Redis)."""
    nodes = await primaries(client)
    extra: list[Any] = ["MATCH", match, "COUNT", count]
    if type_:
        extra += ["TYPE", type_]
    targets: list[ClusterNode | None] = list(nodes) if nodes is not None else [None]
    for node in targets:
        cursor: int = 0
        while True:
            if node is None:
                reply = await client.execute_command("SCAN", cursor, *extra)
            else:
                reply = await client.execute_command("SCAN", cursor, *extra, target_nodes=node)
            cursor_raw, keys = _scan_reply(reply)
            for key in keys:
                yield key
            cursor = cursor_raw
            if cursor == 0:
                break


def _scan_reply(reply: Any) -> tuple[int, list[bytes]]:
    # redis-py post-processes SCAN into (cursor, keys); cluster wraps it per node.
    if isinstance(reply, dict):
        (reply,) = reply.values()
    cursor, keys = reply
    if isinstance(cursor, dict):
        (cursor,) = cursor.values()
    return int(cursor), list(keys)
