"""``f2f serve`` as a process: it says where it serves only once the port is bound, names a URL that
answers, and ends on SIGTERM by the signal after draining (exit 143 in a shell), as the README's table says."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from f2f_cli.cli.serve import STARTUP_FAILURE, announcement


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("F2F_")}
    env["F2F_DATABASE_URL"] = f"sqlite:///{tmp_path / 'f2f.db'}"
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_a_busy_port_exits_3_without_claiming_to_serve(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "f2f_cli", "serve", "--port", str(port)], env=_env(tmp_path),
                              cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == STARTUP_FAILURE, done.stderr
    assert "serving" not in done.stdout, done.stdout
    assert "Errno 98" in done.stderr or "address already in use" in done.stderr.lower()


def test_the_announced_url_answers_and_sigterm_drains_then_ends_by_the_signal(tmp_path: Path) -> None:
    port = _free_port()
    with subprocess.Popen([sys.executable, "-m", "f2f_cli", "serve", "--port", str(port)], env=_env(tmp_path),
                          cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            url = _announced_health_url(proc)
            assert url == f"http://127.0.0.1:{port}/healthz"
            # The line comes after the bind; the app may still be starting: wait for its first answer.
            for _ in range(600):
                try:
                    answer = httpx.get(url, timeout=5)
                    break
                except httpx.TransportError:
                    threading.Event().wait(0.1)
            else:
                raise AssertionError(f"{url} never answered")
            assert answer.status_code == 200 and answer.json()["status"] == "ok"
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    # uvicorn drains, then re-raises SIGTERM so the parent sees the signal: 143 (128 + 15) in a shell.
    assert proc.returncode == -signal.SIGTERM, err


def _announced_health_url(proc: subprocess.Popen[str]) -> str:
    line: list[str] = []
    stream = proc.stdout
    assert stream is not None
    reader = threading.Thread(target=lambda: line.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout=120)
    assert line and line[0].startswith("f2f serving on"), (line, proc.poll())
    return next(word.rstrip(",") for word in line[0].split() if word.rstrip(",").endswith("/healthz"))


def test_the_announcement_names_a_reachable_address() -> None:
    assert announcement("0.0.0.0", 8000, "/v1") == (
        "f2f serving on http://127.0.0.1:8000 (listening on 0.0.0.0): health http://127.0.0.1:8000/healthz, "
        "API under /v1")
    assert "http://[::1]:9000/healthz" in announcement("::", 9000, "/v1")
    assert announcement("127.0.0.2", 80, "/api").startswith("f2f serving on http://127.0.0.2:80: health")
