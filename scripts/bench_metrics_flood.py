#!/usr/bin/env python3
"""Session GET latency while 4 connections loop on ``/metrics`` (issue #18, finding 1).

For each configuration it starts its own ``f2f serve`` (the embedded default in a temporary directory,
creation rate limit off), creates one session with a few ingredients, and measures sequential
``GET /v1/sessions/{id}`` (and ``GET /v1/recipes?size=1``) from one keep-alive connection: first idle,
then while ``wrk -c 4`` loops on ``GET /metrics``. It prints p50/p99 of each window and the ratio
flooded/idle. The configurations run side by side in the same invocation:

- ``cached``: the default, ``F2F_METRICS_CACHE_SECONDS=5`` (one rendering serves every scrape for 5 s);
- ``uncached``: ``F2F_METRICS_CACHE_SECONDS=0``, every scrape renders (how /metrics behaved before).

    .venv/bin/python scripts/bench_metrics_flood.py --seconds 8 [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from f2f_cli.bench.loadgen import LoadResult, run_wrk, wrk_version
from tests.servers import f2f_server

# (name, environment, flooded path)
CONFIGS: list[tuple[str, dict[str, str], str]] = [
    ("cached", {"F2F_METRICS_CACHE_SECONDS": "5"}, "/metrics"),
    ("uncached", {"F2F_METRICS_CACHE_SECONDS": "0"}, "/metrics"),
    # The floor on this machine: the same flood on the cheapest endpoint there is.
    ("healthz", {}, "/healthz"),
]
FLOOD_CONNECTIONS = 4


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def measure(base: str, paths: list[str], seconds: float) -> dict[str, list[float]]:
    """Sequential GETs on one keep-alive connection, the paths in turn, for ``seconds``."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    lat: dict[str, list[float]] = {p: [] for p in paths}
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            for path in paths:
                t = time.perf_counter()
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                lat[path].append(time.perf_counter() - t)
                if resp.status != 200:
                    raise SystemExit(f"GET {path} answered {resp.status}")
    finally:
        conn.close()
    return lat


def prime(base: str, sid: str) -> None:
    """Requests over every route and the usual statuses, so the exposition has the label sets (and
    the ~100 KB size) of a process that has served real traffic."""
    import httpx

    with httpx.Client(base_url=base, timeout=10) as http:
        for _ in range(3):
            for path in ("/healthz", "/readyz", "/openapi.json", "/nope", "/v1/recipes", "/v1/recipes?size=0",
                         "/v1/recipes/1", "/v1/ingredients?search=ㄷ", f"/v1/sessions/{sid}",
                         f"/v1/sessions/{sid}/ingredients", f"/v1/sessions/{sid}/recommendations",
                         "/v1/sessions/bad", "/v1/sessions/current", "/v1/sessions/" + "A" * 32):
                http.get(path)
                http.delete(path)
                http.post(path, content=b"{}", headers={"Content-Type": "text/plain"})
                http.put(path)


def one_config(name: str, env: dict[str, str], flooded_path: str, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="f2f-flood-") as tmp, \
            f2f_server({"F2F_SESSIONS_PER_MINUTE": "0", **env}, cwd=Path(tmp)) as base:
        import httpx

        prime(base, httpx.post(f"{base}/v1/sessions", timeout=10).json()["session_id"])
        sid = httpx.post(f"{base}/v1/sessions", timeout=10).json()["session_id"]
        httpx.post(f"{base}/v1/sessions/{sid}/ingredients", json={"ingredients": ["두부", "대파", "김치"]}, timeout=10)
        paths = [f"/v1/sessions/{sid}", "/v1/recipes?size=1"]
        metrics_bytes = len(httpx.get(f"{base}/metrics", timeout=10).content)
        measure(base, paths, 1.0)  # warm-up
        idle = measure(base, paths, seconds)
        flood: dict[str, LoadResult] = {}

        def run() -> None:
            flood["result"] = run_wrk(base, "GET", [flooded_path], [""], duration=seconds + 2,
                                      connections=FLOOD_CONNECTIONS)

        flooder = threading.Thread(target=run)
        flooder.start()
        time.sleep(1.0)  # the flood is at full rate before the window opens
        flooded = measure(base, paths, seconds)
        flooder.join()
    result: dict[str, Any] = {"config": name, "env": env, "flooded": flooded_path, "metrics_bytes": metrics_bytes,
                              "flood_requests_per_second": round(flood["result"].requests_per_second),
                              "flood_p50_ms": round(flood["result"].p50_ms, 2)}
    for label, path in (("session_get", paths[0]), ("recipes_size_1", paths[1])):
        i, f = idle[path], flooded[path]
        result[label] = {
            "idle_p50_ms": round(pct(i, 0.5), 3), "idle_p99_ms": round(pct(i, 0.99), 3),
            "flood_p50_ms": round(pct(f, 0.5), 3), "flood_p99_ms": round(pct(f, 0.99), 3),
            "p50_ratio": round(statistics.median(f) / statistics.median(i), 2),
            "samples": [len(i), len(f)],
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each window (idle, flooded)")
    parser.add_argument("--json", action="store_true", help="one JSON document instead of lines")
    args = parser.parse_args()
    if wrk_version() is None:
        raise SystemExit("wrk is needed for the flood (apt-get install wrk)")
    results = [one_config(name, env, path, args.seconds) for name, env, path in CONFIGS]
    if args.json:
        print(json.dumps({"seconds": args.seconds, "flood_connections": FLOOD_CONNECTIONS, "results": results},
                         indent=2))
        return
    for r in results:
        s, c = r["session_get"], r["recipes_size_1"]
        print(f"{r['config']:9s} {r['flooded']} flood {r['flood_requests_per_second']} req/s "
              f"(/metrics {r['metrics_bytes']} B) | "
              f"session GET p50 {s['idle_p50_ms']} -> {s['flood_p50_ms']} ms (x{s['p50_ratio']}), "
              f"p99 {s['idle_p99_ms']} -> {s['flood_p99_ms']} ms | "
              f"recipes?size=1 p50 {c['idle_p50_ms']} -> {c['flood_p50_ms']} ms (x{c['p50_ratio']})")


if __name__ == "__main__":
    main()
