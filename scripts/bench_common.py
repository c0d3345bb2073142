"""Helpers for the sessions benchmarks: a throwaway PostgreSQL database, COPY loaders, own servers.

Only loopback addresses; ports 7500-7599 (the sessions tools' range); the
benchmark database is created and dropped here, never the shared ``test`` tables.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

from f2f_cli.bench.http import stop_process

PG_ADMIN_URL = os.environ.get("F2F_BENCH_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")
NAMES = ["김치", "두부", "대파", "달걀", "양파", "마늘", "고추장", "감자", "애호박", "돼지고기"]


def pg_url_for(name: str) -> str:
    return PG_ADMIN_URL.rpartition("/")[0] + "/" + name


@contextmanager
def bench_database() -> Iterator[str]:
    """A fresh database at schema head (``f2f_bench_<random>``), dropped afterwards; yields its URL."""
    name = f"f2f_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_url_for(name)
    try:
        subprocess.run([sys.executable, "-m", "f2f_cli", "migrate", "db", "upgrade"], check=True,
                       env={**os.environ, "F2F_DATABASE_URL": url}, capture_output=True)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _ts(value: datetime) -> str:
    return value.isoformat()


def copy_sessions(url: str, n: int, *, ingredients: int, expires_at: datetime, prefix: str) -> list[str]:
    """COPY ``n`` sessions with ``ingredients`` each; ids are ``prefix`` + a counter (32 URL-safe chars)."""
    ids = [f"{prefix}{i:0{32 - len(prefix)}d}" for i in range(n)]
    created = expires_at - timedelta(hours=24)
    c, e = _ts(created), _ts(expires_at)
    chunk = 50_000
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        head = "COPY fridge_sessions (session_id, created_at, updated_at, expires_at, version) FROM STDIN"
        with cur.copy(head) as cp:
            for start in range(0, n, chunk):
                cp.write("".join(f"{sid}\t{c}\t{c}\t{e}\t{ingredients + 1}\n" for sid in ids[start:start + chunk]))
        if ingredients:
            names = NAMES[:ingredients]
            with cur.copy("COPY fridge_session_ingredients (session_id, name, added_at) FROM STDIN") as cp:
                for start in range(0, n, chunk):
                    cp.write("".join(f"{sid}\t{name}\t{c}\n" for sid in ids[start:start + chunk] for name in names))
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE fridge_sessions")
        conn.execute("VACUUM ANALYZE fridge_session_ingredients")
    return ids


def now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def own_process(args: list[str], *, env: dict[str, str], log: Path, ready_url: str | None = None,
                ready_port: int | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Start a process we own, wait until it answers, stop exactly it afterwards."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{args[0]} exited: {log.read_text()[-2000:]}")
            try:
                if ready_url is not None and httpx.get(ready_url, timeout=0.5).status_code == 200:
                    break
                if ready_port is not None:
                    import redis

                    if redis.Redis(host="127.0.0.1", port=ready_port, socket_timeout=0.5).ping():
                        break
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield proc
    finally:
        stop_process(proc)
