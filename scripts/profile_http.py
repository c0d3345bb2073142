"""Profile ``f2f serve`` under wrk with py-spy and print the top frames.

    F2F_DATABASE_URL=postgresql://root@127.0.0.1:5432/test \
        .venv/bin/python scripts/profile_http.py [--phase redis] [--seconds 15] [--connections 32] [--top 25]

Runs ``f2f serve --workers 1`` with its default logging (``F2F_LOG_LEVEL`` unset,
so ``info``: one access line per request; ``F2F_LOG_FORMAT=json``) on a dedicated
database (next to ``F2F_DATABASE_URL``; SQLite when unset) in the requested phase,
drives ``GET /v1/sessions/{id}`` and then ``POST .../ingredients`` with wrk
while ``py-spy record`` samples the server, and prints for each scenario the
frames with the most samples: "self" (the frame itself was on top of the stack)
and "total" (anywhere on the stack).
Needs wrk and py-spy (``pip install py-spy``); py-spy needs ptrace rights.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from f2f_cli.bench.http import (
    _create_sessions,
    _prepare_database,
    _scenarios,
    dedicated_database,
    server_process,
)
from f2f_cli.bench.loadgen import run_wrk
from f2f_cli.settings import Settings


def _server_pid(workdir: Path, base: str) -> int:
    """The uvicorn worker: ``f2f serve --workers 1`` serves in the process it started (no supervisor)."""
    port = base.rpartition(":")[2]
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    pid = out.split("pid=")[1].split(",")[0]
    return int(pid)


def _top(raw: Path, n: int) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue  # a frame name with a space or stray bytes: not worth a crash
        count = int(count_text)
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  if " (" in f else f for f in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    # Frames on (nearly) every stack are the process's start-up chain (typer, uvicorn.run, asyncio.run): skip them.
    root = max(total.values(), default=0)
    inner = [(f, c) for f, c in total.most_common() if c < 0.97 * root]
    return (
        [(f, 100 * c / samples) for f, c in own.most_common(n)],
        [(f, 100 * c / samples) for f, c in inner[:n]],
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--phase", default="redis", choices=("redis", "postgres"))
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    if shutil.which("py-spy") is None and not (Path(sys.executable).parent / "py-spy").exists():
        sys.exit("py-spy is not installed: pip install py-spy")
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    settings = Settings.from_env({**os.environ, "F2F_REDIS_URL": os.environ.get(
        "F2F_REDIS_URL", "redis://127.0.0.1:6379/0")}, env_file=None)
    prefix = f"f2f:profile:{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="f2f-profile-") as tmp:
        workdir = Path(tmp)
        with dedicated_database(settings, workdir) as db_url:
            _prepare_database(db_url, args.phase)
            env = {k: v for k, v in os.environ.items() if not k.startswith("F2F_")}
            env.update({"F2F_DATABASE_URL": db_url, "F2F_REDIS_KEY_PREFIX": prefix, "F2F_LOG_FORMAT": "json"})
            if settings.redis_url:
                env["F2F_REDIS_URL"] = settings.redis_url
            argv = [sys.executable, "-m", "f2f_cli", "serve", "--workers", "1"]
            with server_process(argv, env, workdir, "f2f serve") as base:
                ids = _create_sessions(base, 20, 10, random.Random(1), lambda _m: None)
                pid = _server_pid(workdir, base)
                for name, label, method, paths, bodies in _scenarios(ids, random.Random(2)):
                    run_wrk(base, method, paths, bodies, duration=2, connections=args.connections)
                    raw = workdir / f"{name}.txt"
                    spy_proc = subprocess.Popen(
                        [spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(raw),
                         "--duration", str(args.seconds + 1), "--rate", "200", "--nonblocking"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    )
                    result = run_wrk(base, method, paths, bodies, duration=args.seconds,
                                     connections=args.connections)
                    spy_proc.wait(timeout=args.seconds + 60)
                    own, total = _top(raw, args.top)
                    print(f"\n== {label}: {result.requests_per_second:,.0f} req/s under py-spy "
                          f"(p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms)")
                    print("-- self %")
                    for frame, pct in own:
                        print(f"{pct:5.1f}  {frame}")
                    print("-- total %")
                    for frame, pct in total:
                        print(f"{pct:5.1f}  {frame}")
        if settings.redis_url:
            from f2f_cli.bench.http import _delete_keys

            _delete_keys(settings.redis_url, prefix)


if __name__ == "__main__":
    main()
