"""The baseline of ``f2f bench http``: bare Starlette doing the single store call, nothing on top.

Same routes and the same sessions as f2f (it reads the hashes and rows f2f
wrote), same uvicorn settings, but no phase runtime, no validation, no model:

- ``redis``: ``GET /v1/sessions/{id}`` is one HGETALL; ``POST .../ingredients``
  is one HSET + EXPIRE (one pipelined round trip).
- ``postgres``: the GET is one primary-key SELECT (the session row joined with
  its ingredients); the POST is one INSERT ... ON CONFLICT DO NOTHING.

Run as ``python -m f2f_cli.bench.baseline_app --port N`` with ``F2F_DATABASE_URL``,
``F2F_REDIS_URL``, ``F2F_REDIS_KEY_PREFIX`` and ``F2F_BENCH_PHASE`` (redis or postgres).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_encode = msgspec.json.Encoder().encode
_SQL_GET = (
    "SELECT s.session_id, s.created_at, s.updated_at, s.expires_at, s.version, i.name, i.added_at "
    "FROM fridge_sessions s LEFT JOIN fridge_session_ingredients i ON i.session_id = s.session_id "
    "WHERE s.session_id = %s"
)
_SQL_ADD = (
    "INSERT INTO fridge_session_ingredients (session_id, name, added_at) VALUES (%s, %s, now()) "
    "ON CONFLICT DO NOTHING"
)
TTL_SECONDS = 86400


def _json(content: Any, status: int = 200) -> Response:
    return Response(_encode(content), status_code=status, media_type="application/json")


class _Pool:
    """A fixed set of autocommit psycopg connections handed out one request at a time."""

    def __init__(self) -> None:
        self.free: asyncio.Queue[Any] = asyncio.Queue()
        self.all: list[Any] = []

    async def open(self, url: str, size: int) -> None:
        import psycopg

        for _ in range(size):
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
            self.all.append(conn)
            self.free.put_nowait(conn)

    async def execute(self, query: str, args: tuple[Any, ...], fetch: bool) -> list[Any]:
        conn = await self.free.get()
        try:
            cursor = await conn.execute(query, args)
            rows: list[Any] = await cursor.fetchall() if fetch else []
            return rows
        finally:
            self.free.put_nowait(conn)

    async def close(self) -> None:
        for conn in self.all:
            await conn.close()


def _redis_client(url: str) -> Any:
    """One Redis: redis-py's bare client, as before. A Cluster or a Sentinel group needs the client that
    follows slots or the current master; f2f's own factory builds it the way ``f2f serve`` does."""
    from redis.asyncio import Redis

    from f2f_cli.redis.client import create_redis_for_url, parse_redis_url

    if parse_redis_url(url).mode == "standalone":
        return Redis.from_url(url)
    return create_redis_for_url(url, connect_timeout=5, command_timeout=5)


def create_app(phase: str, *, redis_url: str | None, database_url: str | None, prefix: str,
               pool_size: int = 10) -> Starlette:
    state: dict[str, Any] = {}

    def key(request: Request) -> str:
        return f"{prefix}:s:{{{request.path_params['session_id']}}}"

    async def get_redis(request: Request) -> Response:
        flat = await state["redis"].hgetall(key(request))
        if not flat:
            return _json({"error": "session_not_found"}, 404)
        return _json({"session_id": request.path_params["session_id"],
                      "fields": {k.decode(): v.decode() for k, v in flat.items()}})

    async def add_redis(request: Request) -> Response:
        body = msgspec.json.decode(await request.body())
        k = key(request)
        now_ms = int(time.time() * 1000)
        pipe = state["redis"].pipeline(transaction=False)
        pipe.hset(k, mapping={name: now_ms for name in body["ingredients"]})
        pipe.expire(k, TTL_SECONDS)
        added, _ = await pipe.execute()
        return _json({"session_id": request.path_params["session_id"], "added": added})

    async def get_sql(request: Request) -> Response:
        rows = await state["pool"].execute(_SQL_GET, (request.path_params["session_id"],), True)
        if not rows:
            return _json({"error": "session_not_found"}, 404)
        head = rows[0]
        return _json({"session_id": head[0], "created_at": head[1], "updated_at": head[2], "expires_at": head[3],
                      "version": head[4], "ingredients": [{"name": r[5], "added_at": r[6]} for r in rows if r[5]]})

    async def add_sql(request: Request) -> Response:
        body = msgspec.json.decode(await request.body())
        session_id = request.path_params["session_id"]
        await state["pool"].execute(_SQL_ADD, (session_id, body["ingredients"][0]), False)
        return _json({"session_id": session_id, "added": body["ingredients"][:1]})

    async def healthz(_request: Request) -> Response:
        return _json({"status": "ok"})

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if phase == "redis":
            assert redis_url is not None
            state["redis"] = _redis_client(redis_url)
        else:
            assert database_url is not None
            pool = _Pool()
            await pool.open(database_url, pool_size)
            state["pool"] = pool
        try:
            yield
        finally:
            if "redis" in state:
                await state["redis"].aclose()
            if "pool" in state:
                await state["pool"].close()

    get, add = (get_redis, add_redis) if phase == "redis" else (get_sql, add_sql)
    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/v1/sessions/{session_id}", get, methods=["GET"]),
            Route("/v1/sessions/{session_id}/ingredients", add, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def app_from_environment() -> Starlette:
    database_url = os.environ.get("F2F_DATABASE_URL")
    if database_url:
        database_url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    return create_app(
        os.environ.get("F2F_BENCH_PHASE", "redis"),
        redis_url=os.environ.get("F2F_REDIS_URL"),
        database_url=database_url,
        prefix=os.environ.get("F2F_REDIS_KEY_PREFIX", "f2f"),
        pool_size=int(os.environ.get("F2F_DB_POOL_SIZE", "10")),
    )


def main(argv: list[str] | None = None) -> None:
    """Serve the baseline with the uvicorn options ``f2f serve`` uses (one worker)."""
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m f2f_cli.bench.baseline_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(
        "f2f_cli.bench.baseline_app:app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=1,
        log_level="warning",
        proxy_headers=True,
        server_header=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
