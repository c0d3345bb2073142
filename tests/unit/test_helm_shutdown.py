"""The chart's shutdown budget holds in the real server: `f2f serve` stops draining after F2F_GRACEFUL_SHUTDOWN_SECONDS.

The chart renders terminationGracePeriodSeconds > preStop sleep + F2F_GRACEFUL_SHUTDOWN_SECONDS
(test_helm_guards.py). That only means something if uvicorn really gives up on an unfinished
request after that many seconds instead of waiting for it until the kubelet's SIGKILL.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from f2f_cli.bench.http import stop_process
from f2f_cli.db import migrate as schema


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_healthy(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(300):
        assert proc.poll() is None, log.read_text(errors="replace")[-800:]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                if conn.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("f2f serve did not become healthy")


def _create_session(port: int) -> str:
    import json
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/sessions", method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        session: str = json.loads(response.read())["session_id"]
    return session


def test_serve_cuts_an_unfinished_request_off_after_the_graceful_shutdown_seconds(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'f2f.db'}"
    schema.upgrade(url)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("F2F_")} | {
        "F2F_DATABASE_URL": url,
        "F2F_GRACEFUL_SHUTDOWN_SECONDS": "1",
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "f2f_cli", "serve", "--port", str(port), "--log-level", "info"],
            env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
        )
        try:
            _wait_healthy(port, proc, log)
            session = _create_session(port)
            # A request whose body never finishes arriving: the app waits for it for as long as it is let.
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                client.sendall(
                    f"POST /v1/sessions/{session}/ingredients HTTP/1.1\r\nHost: t\r\n".encode()
                    + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"ingredients\": ["
                )
                time.sleep(0.5)  # let the server start on the request
                proc.send_signal(signal.SIGTERM)
                # Without the setting uvicorn waits for this client forever (checked by hand: the wait
                # below then times out); 60 s only guards the suite against that hang.
                code = proc.wait(timeout=60)
        finally:
            stop_process(proc)
    text = log.read_text(errors="replace")
    # uvicorn re-raises the SIGTERM it handled once it is done, so the process ends "killed by SIGTERM".
    assert code in (0, -signal.SIGTERM), text[-800:]
    assert "timeout graceful shutdown exceeded" in text, text[-800:]
