"""Real ``f2f serve`` processes for tests that must go over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from f2f_cli.bench.http import server_process, stop_process


@contextmanager
def f2f_server(
    env: dict[str, str], *, cwd: Path | None = None, workers: int = 1, log_level: str = "warning"
) -> Iterator[str]:
    """Start ``f2f serve`` with exactly ``env`` (plus PATH/HOME), yield its base URL, stop it."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("F2F_")} | env
    argv = [sys.executable, "-m", "f2f_cli", "serve", "--workers", str(workers), "--log-level", log_level]
    with server_process(argv, full_env, cwd or Path.cwd(), "f2f serve") as base:
        yield base


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
            stop_process(proc, grace=15)  # a worker finishes its batch on SIGTERM
