"""HTTP load on loopback: ``wrk`` when installed, a built-in asyncio keep-alive client otherwise.

Both rotate through the same list of request paths (and bodies), keep
``connections`` connections busy for ``duration`` seconds and report requests/s
and latency percentiles. wrk is written in C and leaves the CPU to the server
under test; the built-in client is Python and competes with it, so its figures
are lower bounds: the output says which one ran.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec
import numpy as np

from f2f_cli.errors import F2FError


class LoadError(F2FError):
    code = "load_generator_failed"


class LoadResult(msgspec.Struct):
    requests: int
    errors: int  # connect/read/write errors and timeouts
    non_2xx: int  # HTTP status >= 400 (wrk counts > 399)
    seconds: float
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float


def wrk_version() -> str | None:
    path = shutil.which("wrk")
    if path is None:
        return None
    proc = subprocess.run([path, "-v"], capture_output=True, text=True, check=False)
    first = (proc.stdout or proc.stderr).strip().splitlines()
    return first[0].split(" [")[0] if first else "wrk"


def _lua_string(value: str) -> str:
    level = "=" * 4
    return f"[{level}[{value}]{level}]"


_WRK_SCRIPT = """
local paths = {%(paths)s}
local bodies = {%(bodies)s}
local method = "%(method)s"
local headers = {["Content-Type"] = "application/json"}
local i = 0
request = function()
  i = i + 1
  local path = paths[(i %% #paths) + 1]
  if #bodies > 0 then
    return wrk.format(method, path, headers, bodies[(i %% #bodies) + 1])
  end
  return wrk.format(method, path)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'F2FBENCH {"requests":%%d,"duration_us":%%d,"errors":%%d,"status":%%d,' ..
    '"p50":%%d,"p90":%%d,"p95":%%d,"p99":%%d,"max":%%d,"mean":%%f}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean))
end
"""


def run_wrk(
    base_url: str, method: str, paths: Sequence[str], bodies: Sequence[str], *, duration: float, connections: int,
    threads: int = 1,
) -> LoadResult:
    path = shutil.which("wrk")
    if path is None:
        raise LoadError("wrk is not installed")
    script = _WRK_SCRIPT % {
        "paths": ", ".join(_lua_string(p) for p in paths),
        "bodies": ", ".join(_lua_string(b) for b in bodies),
        "method": method,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False, encoding="utf-8") as fh:
        fh.write(script)
        script_path = Path(fh.name)
    try:
        proc = subprocess.run(
            [path, "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(duration))}s",
             "--timeout", "5s", "-s", str(script_path), base_url],
            capture_output=True, text=True, check=False, timeout=duration + 60,
        )
    finally:
        script_path.unlink(missing_ok=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("F2FBENCH ")), None)
    if proc.returncode != 0 or line is None:
        raise LoadError(f"wrk failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-300:]}")
    d = json.loads(line.removeprefix("F2FBENCH "))
    seconds = d["duration_us"] / 1e6
    return LoadResult(
        requests=d["requests"], errors=d["errors"], non_2xx=d["status"], seconds=seconds,
        requests_per_second=d["requests"] / seconds if seconds else 0.0,
        p50_ms=d["p50"] / 1000, p90_ms=d["p90"] / 1000, p95_ms=d["p95"] / 1000, p99_ms=d["p99"] / 1000,
        max_ms=d["max"] / 1000, mean_ms=d["mean"] / 1000,
    )


async def _client(
    host: str, port: int, requests: list[bytes], deadline: float, start: int, latencies: list[int], counts: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = start
    try:
        while time.monotonic() < deadline:
            payload = requests[i % len(requests)]
            i += 1
            began = time.perf_counter_ns()
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter_ns() - began)
            if status >= 400:
                counts[1] += 1
    except (OSError, asyncio.IncompleteReadError, ValueError):
        counts[0] += 1
    finally:
        writer.close()


def run_python_client(
    base_url: str, method: str, paths: Sequence[str], bodies: Sequence[str], *, duration: float, connections: int,
) -> LoadResult:
    """The fallback load generator: ``connections`` keep-alive connections in one asyncio loop."""
    rest = base_url.removeprefix("http://")
    host, _, port_text = rest.partition(":")
    port = int(port_text.rstrip("/") or 80)
    requests: list[bytes] = []
    for i, path in enumerate(paths):
        body = bodies[i % len(bodies)].encode() if bodies else b""
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        if bodies:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        requests.append(head.encode() + b"\r\n" + body)
    latencies: list[int] = []
    counts = [0, 0]

    async def drive() -> float:
        began = time.monotonic()
        deadline = began + duration
        await asyncio.gather(*(_client(host, port, requests, deadline, c, latencies, counts)
                               for c in range(connections)))
        return time.monotonic() - began

    seconds = asyncio.run(drive())
    if not latencies:
        raise LoadError(f"no request succeeded against {base_url}")
    ms = np.asarray(latencies, dtype=np.float64) / 1e6
    p50, p90, p95, p99 = (float(v) for v in np.percentile(ms, [50, 90, 95, 99]))
    return LoadResult(
        requests=len(latencies), errors=counts[0], non_2xx=counts[1], seconds=seconds,
        requests_per_second=len(latencies) / seconds, p50_ms=p50, p90_ms=p90, p95_ms=p95, p99_ms=p99,
        max_ms=float(np.max(ms)), mean_ms=float(ms.mean()),
    )
