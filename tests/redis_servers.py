"""Real Redis servers the tests start and stop themselves: single nodes, a 3-node Cluster, Sentinel.

Ports are picked at random among free loopback ports (``free_port``), so several
test runs on one machine (worktrees, CI beside a developer) never collide. Processes
run in the foreground of a ``subprocess.Popen`` so teardown can stop exactly
the processes it started, by pid.
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from f2f_cli.bench.http import stop_process

HOST = "127.0.0.1"


def _wait(predicate: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what} ({last})")


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((HOST, port)) != 0


def free_port() -> int:
    """A free loopback port whose Cluster bus port (+10000) is free too, below the ephemeral range."""
    for _ in range(200):
        port = random.randint(17000, 22000)
        if port_free(port) and port_free(port + 10000):
            return port
    raise RuntimeError("no free loopback port found in 17000-22000")


@dataclass
class RedisProcess:
    """One ``redis-server`` (data node or sentinel) owned by a test."""

    port: int
    workdir: Path
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisProcess:
        if not port_free(self.port):
            raise RuntimeError(f"port {self.port} is already in use")
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            ["redis-server", *self.args], cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        _wait(self.ping, f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        with redis.Redis(host=HOST, port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5) as client:
            return bool(client.ping())

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def stop(self) -> None:
        """Stop the process this object started (SIGTERM, then SIGKILL)."""
        if self.proc is not None:
            self.resume()
            stop_process(self.proc)

    def pause(self) -> None:
        """SIGSTOP: the server keeps its data and its sockets but answers nothing (a hung node)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def data_node(port: int, workdir: Path, *extra: str) -> RedisProcess:
    args = ["--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no", "--dir", str(workdir), *extra]
    return RedisProcess(port, workdir, args)


@dataclass
class RedisClusterServers:
    """A local Cluster: ``ports`` are the primaries it was created with, ``replica_ports`` their replicas.

    Roles change when a primary dies and its replica is promoted; ``primary_ports()`` asks the Cluster.
    """

    ports: tuple[int, ...]
    nodes: list[RedisProcess] = field(default_factory=list)
    replica_ports: tuple[int, ...] = ()

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{HOST}:{p}" for p in self.ports)

    @property
    def all_ports(self) -> tuple[int, ...]:
        return self.ports + self.replica_ports

    def node(self, port: int) -> RedisProcess:
        return next(n for n in self.nodes if n.port == port)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def alive_ports(self) -> list[int]:
        return [n.port for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def _cluster_slots(self) -> list[Any]:
        """``CLUSTER SLOTS`` as the first live node that answers sees it: [start, end, [host, port, ...], ...]."""
        for port in self.alive_ports():
            try:
                with redis.Redis(host=HOST, port=port, socket_timeout=2) as client:
                    return list(client.execute_command("CLUSTER SLOTS"))
            except (redis.RedisError, OSError):
                continue
        raise RuntimeError("no live cluster node answered CLUSTER SLOTS")

    def primary_ports(self) -> list[int]:
        """The ports of the primaries that own slots, as a live node sees them."""
        return sorted({int(entry[2][1]) for entry in self._cluster_slots()})

    def replica_of(self, primary_port: int) -> int:
        """The port of the replica that follows ``primary_port`` now."""
        for port in self.alive_ports():
            if port == primary_port:
                continue
            with redis.Redis(host=HOST, port=port, socket_timeout=2) as client:
                info = client.info("replication")
            if info.get("role") == "slave" and int(info.get("master_port", 0)) == primary_port:
                return port
        raise RuntimeError(f"no live replica follows {primary_port}")

    def slots_of(self, port: int) -> set[int]:
        """The slots ``port`` serves now, as a live node sees them."""
        return {s for entry in self._cluster_slots() if int(entry[2][1]) == port
                for s in range(int(entry[0]), int(entry[1]) + 1)}

    def node_id(self, port: int) -> str:
        with redis.Redis(host=HOST, port=port, socket_timeout=5, decode_responses=True) as client:
            return str(client.execute_command("CLUSTER MYID"))

    def reshard(self, source: int, target: int, slots: int) -> None:
        """Move ``slots`` slots from one primary to another with ``redis-cli --cluster reshard`` (it takes the
        source's lowest slots first, so the first one, where f2f keeps that primary's node stream, moves).

        redis-cli refuses to start while the nodes still disagree about the slot map (gossip after a previous
        move takes a moment), so wait for ``--cluster check`` to pass first; a refusal is retried a few times
        and, if it persists, raised with what redis-cli printed."""
        command = ["redis-cli", "--cluster", "reshard", f"{HOST}:{target}", "--cluster-from", self.node_id(source),
                   "--cluster-to", self.node_id(target), "--cluster-slots", str(slots), "--cluster-yes"]  # fmt: skip
        output = ""
        for _attempt in range(5):
            _wait(self._config_agreed, "the nodes to agree about the slot map", timeout=60)
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
            if done.returncode == 0:
                return
            output = (done.stdout + done.stderr)[-2000:]
            time.sleep(1)
        raise RuntimeError(f"redis-cli --cluster reshard kept failing:\n{output}")

    def _config_agreed(self) -> bool:
        port = self.primary_ports()[0]
        check = subprocess.run(["redis-cli", "--cluster", "check", f"{HOST}:{port}"],
                               capture_output=True, text=True, timeout=60)  # fmt: skip
        return check.returncode == 0

    def wait_state_ok(self, timeout: float = 60.0) -> float:
        """Wait until every live node reports ``cluster_state:ok``; the seconds it took."""
        started = time.monotonic()
        _wait(self._state_ok, "cluster_state:ok on every live node", timeout=timeout)
        return time.monotonic() - started

    def kill(self, port: int) -> None:
        """SIGKILL one node: it loses everything it held (no persistence)."""
        self.node(port).kill()

    def restart_empty(self, port: int) -> None:
        """Start a killed node again with no data and no cluster config: it must be added back as new."""
        node = self.node(port)
        conf = node.workdir / "nodes.conf"
        conf.unlink(missing_ok=True)
        node.start()

    def wait_promoted(self, dead_port: int, timeout: float = 60.0) -> int:
        """Wait until the slots of ``dead_port`` are served by another primary and the Cluster is ok."""
        def promoted() -> bool:
            return dead_port not in self.primary_ports() and self._state_ok(exclude=(dead_port,))

        _wait(promoted, f"a replica to take over from {dead_port}", timeout=timeout)
        return len(self.primary_ports())

    def _state_ok(self, exclude: tuple[int, ...] = ()) -> bool:
        for port in self.alive_ports():
            if port in exclude:
                continue
            with redis.Redis(host=HOST, port=port, socket_timeout=2) as client:
                if client.execute_command("CLUSTER INFO").get("cluster_state") != "ok":
                    return False
        return True


def start_cluster(
    base: Path, ports: tuple[int, ...] | None = None, *, replicas: int = 0, node_timeout_ms: int | None = None,
    full_coverage: bool = True,
) -> RedisClusterServers:
    """Three primaries (``replicas`` replicas each), created with ``redis-cli --cluster create``.

    ``node_timeout_ms`` is the Cluster's ``cluster-node-timeout`` (Redis' default is 15000): how long a
    primary may be silent before its replica is promoted. ``full_coverage=False`` sets
    ``cluster-require-full-coverage no``: a shard lost with its replicas stops only its own slots (with
    Redis' default, ``yes``, the whole Cluster refuses every command).
    """
    ports = ports or (free_port(), free_port(), free_port())
    replica_ports: list[int] = []
    while len(replica_ports) < len(ports) * replicas:
        port = free_port()
        if port not in ports and port not in replica_ports:
            replica_ports.append(port)
    servers = RedisClusterServers(ports, replica_ports=tuple(replica_ports))
    extra = ["--cluster-node-timeout", str(node_timeout_ms)] if node_timeout_ms is not None else []
    if not full_coverage:
        extra += ["--cluster-require-full-coverage", "no"]
    try:
        for port in servers.all_ports:
            workdir = base / f"cluster-{port}"
            workdir.mkdir(parents=True, exist_ok=True)
            node = data_node(
                port, workdir, "--cluster-enabled", "yes", "--cluster-config-file", str(workdir / "nodes.conf"),
                *extra,
            )
            servers.nodes.append(node.start())
        # redis-cli pairs each replica with a primary from the order given: primaries first.
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"{HOST}:{p}" for p in servers.all_ports),
             "--cluster-replicas", str(replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

        def ready() -> bool:
            if not servers._state_ok():
                return False
            for port in servers.replica_ports:
                with redis.Redis(host=HOST, port=port) as client:
                    if client.info("replication").get("master_link_status") != "up":
                        return False
            return True

        _wait(ready, "cluster_state:ok and every replica in sync", timeout=60)
    except BaseException:
        servers.stop()
        raise
    return servers


@dataclass
class SentinelServers:
    master: RedisProcess
    sentinel: RedisProcess
    service: str = "f2fmaster"
    # With a replica, Sentinel can promote it when the master dies (``start_sentinel(replica=True)``).
    replica: RedisProcess | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://{HOST}:{self.sentinel.port}/{self.service}"

    def stop(self) -> None:
        self.sentinel.stop()
        if self.replica is not None:
            self.replica.stop()
        self.master.stop()

    def current_master_port(self) -> int:
        with redis.Redis(host=HOST, port=self.sentinel.port) as client:
            _host, port = client.execute_command("SENTINEL", "get-master-addr-by-name", self.service)
            return int(port)


def start_sentinel(
    base: Path, master_port: int | None = None, sentinel_port: int | None = None, *, replica: bool = False,
    down_after_ms: int = 5000,
) -> SentinelServers:
    master_port = master_port or free_port()
    sentinel_port = sentinel_port or free_port()
    master = data_node(master_port, base / f"master-{master_port}").start()
    replica_node: RedisProcess | None = None
    if replica:
        replica_port = free_port()
        try:
            replica_node = data_node(replica_port, base / f"replica-{replica_port}", "--replicaof", HOST,
                                     str(master_port)).start()
        except BaseException:
            master.stop()
            raise
    workdir = base / f"sentinel-{sentinel_port}"
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "sentinel.conf"  # sentinel rewrites its own config file, so it must be writable
    conf.write_text(
        f"port {sentinel_port}\nbind {HOST}\ndir {workdir}\n"
        f"sentinel monitor f2fmaster {HOST} {master_port} 1\n"
        f"sentinel down-after-milliseconds f2fmaster {down_after_ms}\n"
        "sentinel failover-timeout f2fmaster 10000\n"
    )
    sentinel = RedisProcess(sentinel_port, workdir, [str(conf), "--sentinel"])
    servers = SentinelServers(master, sentinel, replica=replica_node)
    try:
        sentinel.start()

        def knows_master() -> bool:
            with redis.Redis(host=HOST, port=sentinel_port) as client:
                return client.execute_command("SENTINEL", "get-master-addr-by-name", "f2fmaster") is not None

        _wait(knows_master, "sentinel to know the master")
        if replica_node is not None:
            def knows_replica() -> bool:
                with redis.Redis(host=HOST, port=sentinel_port) as client:
                    return bool(client.execute_command("SENTINEL", "replicas", "f2fmaster"))

            def in_sync() -> bool:
                with redis.Redis(host=HOST, port=replica_node.port) as client:
                    return client.info("replication").get("master_link_status") == "up"

            _wait(in_sync, "the replica to sync")
            _wait(knows_replica, "sentinel to discover the replica", timeout=30)
    except BaseException:
        servers.stop()
        raise
    return servers


def have_redis_binaries() -> bool:
    return shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None
