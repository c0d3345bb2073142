"""Output through a pipe (``f2f … | grep``, ``kubectl exec`` without ``-t``): nothing is cut to 80 columns.

Each command runs as a real process whose stdout is a pipe, with the variables a pod or a CI job
has (no ``COLUMNS``): ids come out whole so they can be pasted into the next command, and every
cell of ``f2f migrate status``'s history stays on one line.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert

from f2f_cli.clock import utcnow
from f2f_cli.db.engine import create_engine_for
from f2f_cli.db.schema import f2f_phase_history
from tests.conftest import make_settings
from tests.sessions_seed import ops, seed

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
LONG_ACTOR = "root@f2f-7d9c8b6f5d-x2x9q.production.example.internal:4242 f2f migrate to dual"
LONG_REASON = ("preflight failed: Redis maxmemory-policy allkeys-lru evicts keys without a TTL; "
               "set noeviction or a volatile-* policy")


def f2f(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("F2F_") and k not in ("COLUMNS", "LINES")}
    env["F2F_DATABASE_URL"] = database_url
    return subprocess.run([sys.executable, "-m", "f2f_cli", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def test_session_ids_are_never_cut_in_a_pipe(sqlite_url: str) -> None:
    async def make() -> list[str]:
        async with ops(sqlite_url) as ctx:
            return await seed(ctx, 3, ingredients=("김치", "두부", "돼지고기 앞다리살", "대파"))

    ids = asyncio.run(make())
    listed = f2f("sessions", "list", database_url=sqlite_url)
    assert listed.returncode == 0, listed.stderr
    for sid in ids:
        (line,) = [ln for ln in listed.stdout.splitlines() if sid in ln]
        assert "…" not in line, line
        # Pasted into the next command, it finds the session.
    shown = f2f("sessions", "inspect", ids[0], database_url=sqlite_url)
    assert shown.returncode == 0 and ids[0] in shown.stdout


def test_migrate_status_history_cells_stay_whole_and_history_n_shows_more(sqlite_url: str) -> None:
    async def history(n: int) -> None:
        engine = create_engine_for(make_settings(F2F_DATABASE_URL=sqlite_url))
        try:
            start = utcnow() - timedelta(hours=1)
            async with engine.begin() as conn:
                await conn.execute(insert(f2f_phase_history), [
                    {"at": start + timedelta(minutes=i), "actor": LONG_ACTOR, "action": f"to dual refused #{i}",
                     "from_phase": "postgres", "to_phase": "dual-write", "epoch": i,
                     "detail": json.dumps({"reason": LONG_REASON, "writes_held_ms": 147.0})}
                    for i in range(n)
                ])
        finally:
            await engine.dispose()

    asyncio.run(history(8))
    status = f2f("migrate", "status", database_url=sqlite_url)
    assert status.returncode == 0, status.stderr
    rows = [ln for ln in status.stdout.splitlines() if "to dual refused #" in ln]
    assert len(rows) == 5, status.stdout  # the last five by default
    assert {r.split("#")[1].split()[0] for r in rows} == {"3", "4", "5", "6", "7"}
    for row in rows:
        assert LONG_ACTOR in row and LONG_REASON in row and "dual-write" in row and "147 ms" in row, row
        assert "…" not in row
    assert "--history N for more" in status.stdout

    more = f2f("migrate", "status", "--history", "8", database_url=sqlite_url)
    assert len([ln for ln in more.stdout.splitlines() if "to dual refused #" in ln]) == 8
    assert "--history N for more" not in more.stdout
    as_json = json.loads(f2f("migrate", "status", "--json", "--history", "2", database_url=sqlite_url).stdout)
    assert [h["action"] for h in as_json["history"]] == ["to dual refused #7", "to dual refused #6"]


def test_recipe_tables_are_not_cut_in_a_pipe(sqlite_url: str) -> None:
    assert f2f("recipes", "import", str(FIXTURES / "cookrcp01_simple.json"), database_url=sqlite_url).returncode == 0
    listed = f2f("recipes", "list", "--size", "100", "--json", database_url=sqlite_url)
    longest = max(json.loads(listed.stdout)["items"], key=lambda r: len(r["title"]))
    table = f2f("recipes", "list", "--size", "100", database_url=sqlite_url)
    (line,) = [ln for ln in table.stdout.splitlines() if longest["title"] in ln]
    assert f"{longest['source']}:{longest['source_id']}" in line and "…" not in table.stdout


def test_only_a_terminal_sets_the_width() -> None:
    from f2f_cli.cli.common import PIPE_WIDTH, output_width

    class Stream:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    assert output_width(Stream(False)) == PIPE_WIDTH and output_width(object()) == PIPE_WIDTH
    assert output_width(Stream(True)) is None  # Rich asks the terminal
