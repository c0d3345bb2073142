"""``f2f smoke`` (the chart's ``helm test``) against a real ``f2f serve``."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from f2f_cli.ops.smoke import PROBE_INGREDIENT
from tests.cli.conftest import Invoke
from tests.servers import f2f_server

STEPS = ["create session", "add ingredient", "read back", "delete session", "deleted session is gone", "readyz"]


def test_one_sessions_life_passes_against_a_running_server(invoke: Invoke, sqlite_url: str, tmp_path: Path) -> None:
    with f2f_server({"F2F_DATABASE_URL": sqlite_url}, cwd=tmp_path) as base:
        r = invoke("smoke", base, "--json")
        assert r.exit_code == 0, r.output
        assert [s["name"] for s in json.loads(r.output)["steps"]] == STEPS
        r = invoke("smoke", base + "/")
        assert r.exit_code == 0, r.output
        assert "ok read back: 200" in r.output
        # The wrong prefix: the first step fails, named, with the server's answer.
        r = invoke("smoke", base, "--prefix", "/v9")
        assert r.exit_code == 1
        assert "create session" in r.output and "404" in r.output and "Traceback" not in r.output
    # Every session the checks made is gone again.
    from sqlalchemy import create_engine, text

    engine = create_engine(sqlite_url.replace("+aiosqlite", ""))
    with engine.connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM fridge_session_ingredients WHERE name = :n"),
                            {"n": PROBE_INGREDIENT}).scalar()
    assert left == 0
    engine.dispose()


def test_unreachable_or_bad_urls_fail_cleanly(invoke: Invoke) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connection refused
        r = invoke("smoke", f"http://127.0.0.1:{port}", "--timeout", "2")
    assert r.exit_code == 1
    assert "create session" in r.output and "Traceback" not in r.output
    for bad in ("f2f.shop.svc", "ftp://host", "http://", "http://host/?x=1"):
        r = invoke("smoke", bad)
        assert r.exit_code == 2, (bad, r.output)
        assert "base URL" in r.output
