"""Real ``f2f serve`` processes for tests that must go over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def f2f_server(
    env: dict[str, str], *, cwd: Path | None = None, workers: int = 1, log_level: str = "warning"
) -> Iterator[str]:
    """Start ``f2f serve`` with exactly ``env`` (plus PATH/HOME), yield its base URL, stop it."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("F2F_")}
    full_env.update(env)
    log = (cwd or Path.cwd()) / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "f2f_cli", "serve", "--port", str(port), "--workers", str(workers),
             "--log-level", log_level],
            env=full_env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"f2f serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
                try:
                    if httpx.get(f"{base}/healthz", timeout=0.5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"f2f serve did not start: {log.read_text()[-2000:]}")
                time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    log.unlink(missing_ok=True)


@contextmanager
def worker_process(
    env: dict[str, str], cwd: Path, *args: str, name: str = "worker"
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``f2f worker`` with exactly ``env`` (plus PATH/HOME) until the block ends."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("F2F_")} | env
    with (cwd / f"{name}.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "f2f_cli", "worker", "--block-ms", "100", *args],
                                env=full, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
