"""``f2f bench http``: ``f2f serve`` against a bare Starlette baseline doing the same single store call.

Isolation: a dedicated SQL database (``f2f_bench_<random>`` on the PostgreSQL
server of ``F2F_DATABASE_URL``, or a temporary SQLite file) migrated to head with
the requested phase set in its ``f2f_control`` before ``f2f serve`` starts, and
a unique Redis key prefix. Both are removed at the end, whatever happens.

Both servers run one uvicorn worker with the same options and serve the same
sessions (the baseline reads the hashes and rows f2f wrote). ``f2f serve`` runs
with its default logging: ``F2F_LOG_LEVEL`` unset (``info``: one access line per
request) and ``F2F_LOG_FORMAT=json`` as the Helm chart sets it; its lines go to a
file, and the result says how many access lines it wrote. The baseline logs nothing. Only one of them
is under load at a time; the order alternates by round, and each scenario gets
one short untimed warm-up per server first.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec

from f2f_cli.bench import redis_admin
from f2f_cli.bench.host import Machine, describe_machine
from f2f_cli.bench.loadgen import LoadResult, run_python_client, run_wrk, wrk_version
from f2f_cli.bench.stats import ratio
from f2f_cli.errors import ConfigError, F2FError, StoreUnavailable
from f2f_cli.settings import Settings

PHASES = ("postgres", "redis")
F2F_LOG_FORMAT = "json"
F2F_LOGGING = "default: F2F_LOG_LEVEL=info (one access line per request), F2F_LOG_FORMAT=json (the chart's), to a file"
TARGETS = {"get": 0.85, "add": 0.70}
_EXTRA_NAMES = ("양파", "대파", "마늘", "달걀", "두부", "김치", "감자", "당근", "애호박", "버섯")
_FILL_NAMES = tuple(f"재료{i:03d}" for i in range(200))

Progress = Callable[[str], None]


class BenchFailed(F2FError):
    code = "bench_failed"


class HttpScenario(msgspec.Struct):
    name: str
    label: str
    target: float  # f2f requests/s must reach this share of the baseline's
    f2f: LoadResult  # median of the runs, field by field
    baseline: LoadResult
    ratio: float | None  # f2f requests/s / baseline requests/s
    meets_target: bool | None
    f2f_runs: list[LoadResult]
    baseline_runs: list[LoadResult]


class HttpBenchResult(msgspec.Struct):
    machine: Machine
    phase: str
    duration: float
    connections: int
    rounds: int
    sessions: int
    ingredients: int
    seed: int
    load_generator: str
    database: str  # the dedicated database (dropped at the end) or "sqlite (temporary file)"
    f2f_logging: str  # how f2f serve logged during the run
    f2f_access_lines: int  # access lines f2f serve wrote (0 would mean logging was off)
    scenarios: list[HttpScenario]
    notes: list[str]
    cleanup: dict[str, int]


def _median(runs: list[LoadResult]) -> LoadResult:
    fields = {f: statistics.median(getattr(r, f) for r in runs) for f in LoadResult.__struct_fields__}
    for f in ("requests", "errors", "non_2xx"):
        fields[f] = int(fields[f])
    return LoadResult(**fields)


def _request(url: str, method: str = "GET", body: Any = None, timeout: float = 5.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds: how every process f2f's tools own is stopped."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def server_process(argv: list[str], env: dict[str, str], workdir: Path, name: str) -> Iterator[str]:
    """Start a server subprocess on a free loopback port, wait for /healthz, yield its base URL, stop it.

    The test suite starts its ``f2f serve`` processes with this too.
    """
    port = _free_port()
    log_path = workdir / f"{name.replace(' ', '-')}-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([*argv, "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                cwd=workdir)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    tail = log_path.read_text(errors="replace")[-600:]
                    raise BenchFailed(f"{name} exited with {proc.returncode}: {tail}")
                try:
                    if _request(f"{base}/healthz", timeout=0.5)[0] == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise BenchFailed(f"{name} did not start within 30 s")
                time.sleep(0.1)
            yield base
        finally:
            stop_process(proc)


@contextmanager
def dedicated_database(settings: Settings, workdir: Path) -> Iterator[str]:
    """A new, empty SQL database next to ``F2F_DATABASE_URL`` (async URL), dropped afterwards."""
    if settings.is_sqlite:
        yield f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"f2f_bench_{secrets.token_hex(4)}"
    url = make_url(settings.database_url)
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        raise StoreUnavailable(f"cannot create the bench database {name} (needs CREATEDB): {exc}") from None
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _prepare_database(url: str, phase: str) -> None:
    from f2f_cli.control.phase import Phase, set_phase
    from f2f_cli.db import migrate as schema
    from f2f_cli.db.engine import create_engine_for

    schema.upgrade(url)
    if phase == Phase.POSTGRES.value:
        return

    async def set_it() -> None:
        engine = create_engine_for(Settings.from_env({"F2F_DATABASE_URL": url}, env_file=None))
        try:
            await set_phase(engine, Phase(phase), actor="f2f bench http", action="bench")
        finally:
            await engine.dispose()

    asyncio.run(set_it())


def _versions(settings: Settings, database_url: str) -> tuple[str | None, str | None]:
    redis_version = postgres_version = None
    if settings.redis_url:
        redis_version = asyncio.run(redis_admin.redis_version(settings))
    if not database_url.startswith("sqlite"):
        import psycopg
        from sqlalchemy.engine import make_url

        url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            postgres_version = str(row[0]) if row else None
    return redis_version, postgres_version


def run_http_bench(
    settings: Settings,
    *,
    phase: str = "redis",
    duration: float = 10.0,
    connections: int = 16,
    rounds: int = 2,
    sessions: int = 50,
    ingredients: int = 10,
    seed: int = 42,
    loadgen: str = "auto",
    warmup: float = 2.0,
    progress: Progress | None = None,
) -> HttpBenchResult:
    """Run the bench (blocking, a few × duration seconds) and return its result."""
    say = progress or (lambda _m: None)
    if phase not in PHASES:
        raise ConfigError(f"--phase must be one of {', '.join(PHASES)}")
    if phase == "redis" and not settings.redis_url:
        raise ConfigError("F2F_REDIS_URL is not set: the redis phase needs it")
    if ingredients + len(_EXTRA_NAMES) > settings.max_ingredients:
        raise ConfigError(f"--ingredients must be at most {settings.max_ingredients - len(_EXTRA_NAMES)}")
    wrk = wrk_version()
    if loadgen == "wrk" and wrk is None:
        raise ConfigError("--loadgen wrk: wrk is not installed (apt-get install wrk)")
    use_wrk = wrk is not None and loadgen in ("auto", "wrk")
    generator = wrk if use_wrk and wrk else "built-in asyncio client (Python; competes with the server for CPU)"
    prefix = f"{settings.redis_key_prefix}:bench:{secrets.token_hex(4)}"
    rng = random.Random(seed)
    notes: list[str] = []
    cleanup = {"redis_keys": 0, "databases": 0}
    with tempfile.TemporaryDirectory(prefix="f2f-bench-http-") as tmp:
        workdir = Path(tmp)
        try:
            with dedicated_database(settings, workdir) as db_url:
                database = "sqlite (temporary file)" if settings.is_sqlite else db_url.rpartition("/")[2]
                say(f"preparing a dedicated database in phase {phase}")
                _prepare_database(db_url, phase)
                redis_version, postgres_version = _versions(settings, db_url)
                env = {k: v for k, v in os.environ.items() if not k.startswith("F2F_")}
                env.update({
                    "F2F_DATABASE_URL": db_url, "F2F_REDIS_KEY_PREFIX": prefix, "F2F_LOG_FORMAT": F2F_LOG_FORMAT,
                    "F2F_SESSION_TTL_SECONDS": str(settings.session_ttl_seconds),
                    "F2F_MAX_INGREDIENTS": str(settings.max_ingredients),
                    "F2F_DB_POOL_SIZE": str(settings.db_pool_size),
                })
                if settings.redis_url:
                    env["F2F_REDIS_URL"] = settings.redis_url
                say("starting f2f serve and the baseline app (one worker each)")
                f2f_argv = [sys.executable, "-m", "f2f_cli", "serve", "--workers", "1"]
                base_argv = [sys.executable, "-m", "f2f_cli.bench.baseline_app"]
                with server_process(f2f_argv, env, workdir, "f2f serve") as f2f_url, \
                        server_process(base_argv, {**env, "F2F_BENCH_PHASE": phase}, workdir, "baseline") as base_url:
                    status, ready = _request(f"{f2f_url}/readyz")
                    if status != 200 or ready.get("phase") != phase:
                        raise BenchFailed(f"f2f serve is not ready in phase {phase}: {ready}")
                    ids = _create_sessions(f2f_url, sessions, ingredients, rng, say)
                    scenarios = _scenarios(ids, rng)
                    results = []
                    for name, label, method, paths, bodies in scenarios:
                        results.append(_measure(
                            name, label, method, paths, bodies, {"f2f": f2f_url, "baseline": base_url},
                            duration=duration, connections=connections, rounds=rounds, warmup=warmup,
                            use_wrk=use_wrk, say=say,
                        ))
                    for scenario in results:
                        for who, runs in (("f2f", scenario.f2f_runs), ("baseline", scenario.baseline_runs)):
                            bad = sum(r.non_2xx + r.errors for r in runs)
                            if bad:
                                notes.append(f"{scenario.label} on {who}: {bad} failed requests (non-2xx or socket)")
                cleanup["databases"] = 0 if settings.is_sqlite else 1
                access_lines = sum(
                    text.count('"logger":"f2f.access"')
                    for text in (p.read_text(errors="replace") for p in workdir.glob("f2f-serve-*.log"))
                )
        finally:
            if settings.redis_url:
                cleanup["redis_keys"] = asyncio.run(redis_admin.delete_prefix(settings, prefix))
    if phase == "redis":
        notes.append("redis phase: every f2f write also appends its backup-stream entry (no f2f worker drains it "
                     "during the run); the baseline does not")
    machine = describe_machine(redis=redis_version, postgresql=postgres_version,
                               sql_backend="sqlite" if settings.is_sqlite else "postgresql", load_generator=generator)
    return HttpBenchResult(
        machine=machine, phase=phase, duration=duration, connections=connections, rounds=rounds, sessions=sessions,
        ingredients=ingredients, seed=seed, load_generator=generator, database=database, f2f_logging=F2F_LOGGING,
        f2f_access_lines=access_lines, scenarios=results, notes=notes, cleanup=cleanup,
    )


def _create_sessions(base: str, count: int, k: int, rng: random.Random, say: Progress) -> list[str]:
    say(f"creating {count} sessions with {k} ingredients each through the f2f API")
    ids: list[str] = []
    for _ in range(count):
        status, body = _request(f"{base}/v1/sessions", "POST", {})
        if status != 201:
            raise BenchFailed(f"POST /v1/sessions answered {status}: {body}")
        session_id = body["session_id"]
        if k:
            status, body = _request(f"{base}/v1/sessions/{session_id}/ingredients", "POST",
                                    {"ingredients": rng.sample(_FILL_NAMES, k)})
            if status != 200:
                raise BenchFailed(f"POST .../ingredients answered {status}: {body}")
        ids.append(session_id)
    return ids


def _scenarios(ids: list[str], rng: random.Random) -> list[tuple[str, str, str, list[str], list[str]]]:
    order = ids[:]
    rng.shuffle(order)
    bodies = [json.dumps({"ingredients": [name]}, ensure_ascii=False) for name in _EXTRA_NAMES]
    return [
        ("get", "GET /v1/sessions/{id}", "GET", [f"/v1/sessions/{i}" for i in order], []),
        ("add", "POST /v1/sessions/{id}/ingredients", "POST", [f"/v1/sessions/{i}/ingredients" for i in order],
         bodies),
    ]


def _measure(
    name: str, label: str, method: str, paths: list[str], bodies: list[str], servers: dict[str, str], *,
    duration: float, connections: int, rounds: int, warmup: float, use_wrk: bool, say: Progress,
) -> HttpScenario:
    def load(url: str, seconds: float) -> LoadResult:
        if use_wrk:
            return run_wrk(url, method, paths, bodies, duration=seconds, connections=connections)
        return run_python_client(url, method, paths, bodies, duration=seconds, connections=connections)

    if warmup > 0:
        for who, url in servers.items():
            say(f"{label}: warm-up of {who}")
            load(url, warmup)
    runs: dict[str, list[LoadResult]] = {who: [] for who in servers}
    names = list(servers)
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for who in order:
            say(f"{label}: round {r + 1}/{rounds}, {who}, {duration:g} s × {connections} connections")
            runs[who].append(load(servers[who], duration))
    f2f, baseline = _median(runs["f2f"]), _median(runs["baseline"])
    q = ratio(f2f.requests_per_second, baseline.requests_per_second)
    target = TARGETS[name]
    return HttpScenario(
        name=name, label=label, target=target, f2f=f2f, baseline=baseline, ratio=q,
        meets_target=None if q is None else q >= target, f2f_runs=runs["f2f"], baseline_runs=runs["baseline"],
    )
