"""The API's own cost per request, without HTTP: the ASGI app called directly by concurrent tasks.

    F2F_DATABASE_URL=postgresql://root@127.0.0.1:5432/test F2F_REDIS_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python scripts/bench_asgi.py [--requests 20000] [--tasks 32] [--without access-log,metrics]

Creates its own database next to ``F2F_DATABASE_URL`` (schema at head, phase ``redis``) and a unique Redis
key prefix, starts the app's lifespan in this process, creates one session of 10 ingredients through the
app, then times ``GET /v1/sessions/{id}`` called by ``--tasks`` tasks (after an untimed warm-up). Prints
the calls per second and the microseconds per call. uvicorn, the socket and the load generator are out of
the picture, so what is left is f2f's request path and redis-py. ``--without`` switches off the access line
or the HTTP and store metrics, to see what each costs (the default logging writes one JSON access line per
request, to a buffer here).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from f2f_cli.api.app import F2FApp, create_app
from f2f_cli.bench.http import _delete_keys, _prepare_database, dedicated_database
from f2f_cli.settings import Settings, get_settings


async def _call(app: F2FApp, method: str, path: str, body: bytes = b"") -> list[dict[str, Any]]:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"bench"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def _run(database_url: str, redis_url: str, prefix: str, requests: int, tasks: int, without: set[str]) -> None:
    settings = Settings.from_env({"F2F_DATABASE_URL": database_url, "F2F_REDIS_URL": redis_url,
                                  "F2F_REDIS_KEY_PREFIX": prefix, "F2F_LOG_FORMAT": "json"}, env_file=None)
    app = create_app(settings)
    app.state.access_log.stream = io.StringIO()
    logging.getLogger("f2f.access").setLevel(logging.WARNING if "access-log" in without else logging.INFO)
    if "metrics" in without:
        app.state.metrics.observe_request = lambda *_: None
        app.state.metrics.observe_store = lambda *_: None
    async with app.router.lifespan_context(app):
        created = await _call(app, "POST", "/v1/sessions")
        sid = json.loads(created[1]["body"])["session_id"]
        names = json.dumps({"ingredients": [f"재료{i}" for i in range(10)]}).encode()
        await _call(app, "POST", f"/v1/sessions/{sid}/ingredients", names)
        path = f"/v1/sessions/{sid}"

        async def worker(n: int) -> None:
            for _ in range(n):
                sent = await _call(app, "GET", path)
                if sent[0]["status"] != 200:
                    raise SystemExit(f"GET answered {sent[0]['status']}: {sent[1]['body']!r}")

        await asyncio.gather(*(worker(max(1, 3000 // tasks)) for _ in range(tasks)))
        started = time.perf_counter()
        await asyncio.gather(*(worker(requests // tasks) for _ in range(tasks)))
        elapsed = time.perf_counter() - started
    done = requests // tasks * tasks
    off = ", ".join(sorted(without)) or "nothing"
    print(f"{done / elapsed:,.0f} calls/s, {elapsed / done * 1e6:.1f} µs per call ({tasks} tasks; switched off: {off})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--without", default="", help="comma-separated: access-log, metrics")
    args = parser.parse_args()
    without = {w.strip() for w in args.without.split(",") if w.strip()}
    unknown = without - {"access-log", "metrics"}
    if unknown or args.requests < 1 or args.tasks < 1:
        parser.error(f"unknown --without {', '.join(sorted(unknown))}" if unknown else "counts must be positive")
    env = get_settings()
    if not env.redis_url or env.is_sqlite:
        sys.exit("set F2F_DATABASE_URL to PostgreSQL and F2F_REDIS_URL (the redis phase is measured)")
    prefix = f"f2fasgi{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory(prefix="f2f-bench-asgi-") as tmp, dedicated_database(env, Path(tmp)) as url:
        _prepare_database(url, "redis")
        try:
            uvloop.run(_run(url, env.redis_url, prefix, args.requests, args.tasks, without))
        finally:
            _delete_keys(env.redis_url, prefix)


if __name__ == "__main__":
    main()
