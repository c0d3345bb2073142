"""What a newcomer meets on the command line (issue #16, items 1-5 and 7): literal text, honest dry runs,
a missing database said plainly, one exit-code table.

CliRunner for the breadth, real ``f2f`` processes where the process boundary matters (exit codes, stderr).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from f2f_cli.api.app import create_app
from f2f_cli.cli.bench import _mark
from f2f_cli.clock import utcnow
from f2f_cli.db import migrate as schema
from f2f_cli.db.engine import create_engine_for
from f2f_cli.domain.ids import new_session_id
from f2f_cli.domain.model import Ingredient, Session
from f2f_cli.ops.jsonl import encode_line
from f2f_cli.settings import MAX_SESSION_TTL_SECONDS, Settings
from f2f_cli.stores.sql import SqlSessionStore
from tests.cli.conftest import Invoke
from tests.unit.test_settings import numeric_settings

TRICKY = ["[/]", "garbage[x]", "a[bold]b.json", "[/x].json", ":smile: [red]x[/red]"]


def _f2f(*args: str, env: dict[str, str] | None = None, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A real ``f2f`` process with only the given F2F_* variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("F2F_")}
    return subprocess.run([sys.executable, "-m", "f2f_cli", *args], env={**clean, **(env or {})}, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def db(invoke: Invoke, tmp_path: Path, sqlite_template: Path) -> dict[str, str]:
    """A migrated SQLite database for the commands that need one: a copy of the run's file at schema head
    (what `f2f migrate db upgrade` leaves, tests/cli/test_migrate_db.py runs that command itself)."""
    path = tmp_path / "contract.db"
    shutil.copyfile(sqlite_template, path)
    env = {"F2F_DATABASE_URL": f"sqlite:///{path}"}
    return env


def _store(env: dict[str, str]) -> tuple[Settings, SqlSessionStore]:
    settings = Settings.from_env(env, env_file=None)
    engine = create_engine_for(settings)
    return settings, SqlSessionStore(engine, ttl_seconds=settings.session_ttl_seconds,
                                     max_ingredients=settings.max_ingredients)


def _create_sessions(env: dict[str, str], n: int, *, ago: timedelta = timedelta(0)) -> list[Session]:
    """``n`` sessions with two ingredients each, made ``ago`` in the past (expired when ago > TTL)."""

    async def go() -> list[Session]:
        settings, store = _store(env)
        store = SqlSessionStore(store.engine, ttl_seconds=settings.session_ttl_seconds,
                                max_ingredients=settings.max_ingredients, clock=lambda: utcnow() - ago)
        try:
            made = []
            for _ in range(n):
                s = await store.create()
                made.append((await store.add_ingredients(s.session_id, ["두부", "[/]"])).session)
            return made
        finally:
            await store.engine.dispose()

    return asyncio.run(go())


# -- 1. user and system text is printed literally -----------------------------------------------------------


@pytest.mark.parametrize("value", TRICKY)
def test_config_values_are_echoed_literally(invoke: Invoke, value: str) -> None:
    r = invoke("sessions", "list", env={"F2F_DATABASE_URL": value})
    assert r.exit_code == 2
    assert value in r.output
    assert "Traceback" not in r.output and "MarkupError" not in r.output


@pytest.mark.parametrize("name", TRICKY)
@pytest.mark.parametrize("command", [("recipes", "import"), ("sessions", "import")])
def test_paths_are_echoed_literally(invoke: Invoke, db: dict[str, str], name: str, command: tuple[str, str]) -> None:
    r = invoke(*command, name, env=db)
    assert r.exit_code == 2, r.output
    assert name in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("value", TRICKY)
def test_bad_ids_are_one_clean_line(invoke: Invoke, value: str) -> None:
    r = invoke("sessions", "inspect", value)
    assert r.exit_code == 2
    assert "Traceback" not in r.output and "MarkupError" not in r.output


def test_stored_text_is_printed_literally(invoke: Invoke, db: dict[str, str]) -> None:
    """Ingredient names come from users: '[/]' in a fridge prints as '[/]' in every table."""
    (session,) = _create_sessions(db, 1)
    r = invoke("sessions", "inspect", session.session_id, env=db)
    assert r.exit_code == 0, r.output
    assert "[/]" in r.output
    assert invoke("recipes", "seed", env=db).exit_code == 0  # an empty catalog is an error of its own
    r = invoke("recipes", "recommend", "-i", "[/]", "-i", "a[bold]b", env=db)
    assert r.exit_code == 0, r.output
    assert "not used by any recipe: [/], a[bold]b" in r.output


def test_hard_coded_brackets_survive(invoke: Invoke, db: dict[str, str]) -> None:
    r = invoke("migrate", "plan", "to", "nowhere", env=db)
    assert r.exit_code == 2
    assert "f2f migrate plan [to] dual|redis|postgres" in r.output


def test_literal_text_in_a_real_process(tmp_path: Path) -> None:
    r = _f2f("sessions", "list", env={"F2F_DATABASE_URL": "[/]"}, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "error: F2F_DATABASE_URL='[/]' is invalid: expected a URL such as postgresql://user@host/db or "
        "sqlite:///./f2f.db"
    )
    r = _f2f("recipes", "import", "a[bold]b.json", cwd=tmp_path)
    assert "a[bold]b.json" in r.stderr and "Traceback" not in r.stderr


# -- 2. sessions import --dry-run is the real run -------------------------------------------------------------


def _line(s: Session, **changes: object) -> bytes:
    data = {f: getattr(s, f) for f in s.__struct_fields__}
    data.update(changes)
    return encode_line(Session(**data))  # type: ignore[arg-type]


def test_import_dry_run_counts_what_the_import_does(invoke: Invoke, db: dict[str, str], tmp_path: Path) -> None:
    held = _create_sessions(db, 3)
    now = utcnow()
    fresh = Session(new_session_id(), now, now, now + timedelta(hours=1), 4, (Ingredient("김치", now),))
    gone = Session(new_session_id(), now - timedelta(days=2), now - timedelta(days=2), now - timedelta(days=1), 2)
    lines = [
        _line(held[0]),                                # same version as stored: not newer
        _line(held[1], version=held[1].version - 1),   # older: not newer
        _line(held[2], version=held[2].version + 5),   # newer: applied
        encode_line(fresh),                             # unknown: applied
        _line(fresh, version=2),                       # the file's own earlier line is newer: not newer
        encode_line(gone),                              # expired
        b'{"session_id": "nope"}\n',                    # bad
    ]
    path = tmp_path / "sessions.jsonl"
    path.write_bytes(b"".join(lines))

    def counts(*flags: str) -> tuple[dict[str, int], str]:
        r = invoke("sessions", "import", str(path), *flags, env=db)
        assert r.exit_code == 1, r.output  # one bad line
        human = r.stdout.strip().splitlines()[-1]
        return {k: v for k, v in json.loads(r.stdout).items() if k in ("applied", "not_newer", "expired")} \
            if "--json" in flags else {}, human

    planned, _ = counts("--dry-run", "--json")
    assert planned == {"applied": 2, "not_newer": 3, "expired": 1}
    _, said = counts("--dry-run")
    assert said == "would apply 2 of 7 lines (3 not newer, 1 expired, 1 bad)"
    done, _ = counts("--json")
    assert done == planned
    again, _ = counts("--dry-run", "--json")
    assert again == {"applied": 0, "not_newer": 5, "expired": 1}
    _, said = counts()
    assert said == "applied 0 of 7 lines (5 not newer, 1 expired, 1 bad)"


# -- 4. run from another folder --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ("sessions", "list"), ("sessions", "stats"), ("sessions", "purge", "--dry-run"), ("recipes", "list"),
    ("recipes", "seed"), ("migrate", "status"), ("migrate", "db", "current"), ("migrate", "plan", "to", "dual"),
])
def test_commands_needing_a_database_create_none(invoke: Invoke, tmp_path: Path, command: tuple[str, ...]) -> None:
    r = invoke(*command)
    assert r.exit_code == 1, r.output
    assert f"no database at f2f.db (in {tmp_path})" in r.output
    assert "f2f migrate db upgrade" in r.output
    assert not (tmp_path / "f2f.db").exists()


def test_another_folder_in_a_real_process(tmp_path: Path) -> None:
    r = _f2f("sessions", "list", cwd=tmp_path)
    assert r.returncode == 1
    assert "no database at f2f.db" in r.stderr and r.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
    assert _f2f("migrate", "db", "upgrade", cwd=tmp_path).returncode == 0  # what the message says to run
    assert _f2f("sessions", "list", cwd=tmp_path).returncode == 0


def test_an_empty_database_file_says_what_to_run(invoke: Invoke, tmp_path: Path) -> None:
    (tmp_path / "f2f.db").write_bytes(b"")
    r = invoke("sessions", "list")
    assert r.exit_code == 1
    assert "the SQL schema is missing" in r.output and "f2f migrate db upgrade" in r.output


# -- 5. exit codes ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ("worker",), ("worker", "--lag"), ("sessions", "list", "--store", "redis"),
    ("bench", "recommend", "--redis", "--recipes", "10"), ("bench", "sessions", "--store", "redis"),
    ("migrate", "to", "dual", "--yes"), ("migrate", "repair", "--yes"), ("migrate", "repair", "--dry-run"),
])
def test_missing_redis_url_is_exit_2_everywhere(invoke: Invoke, db: dict[str, str], command: tuple[str, ...]) -> None:
    r = invoke(*command, env=db)
    assert r.exit_code == 2, r.output
    assert "F2F_REDIS_URL is not set" in r.output


def test_recipes_import_exits_1_when_every_row_is_skipped(invoke: Invoke, db: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "recipes.json"
    path.write_text(json.dumps([{"id": "1"}, "not a recipe"]))
    r = invoke("recipes", "import", str(path), env=db)
    assert r.exit_code == 1, r.output
    assert "nothing to import, every row was skipped" in r.output


def test_inspecting_a_deleted_session_exits_1(invoke: Invoke, db: dict[str, str]) -> None:
    (session,) = _create_sessions(db, 1)
    assert invoke("sessions", "inspect", session.session_id, env=db).exit_code == 0
    assert invoke("sessions", "delete", session.session_id, "--yes", env=db).exit_code == 0
    r = invoke("sessions", "inspect", session.session_id, env=db)
    assert r.exit_code == 1
    assert "deleted" in r.output


def test_serve_on_a_busy_port_exits_3(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        r = _f2f("serve", "--port", str(busy.getsockname()[1]), cwd=tmp_path)
    assert r.returncode == 3
    assert "address already in use" in r.stderr.lower()


def test_the_readme_has_one_exit_code_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    for row in ("| `0` |", "| `1` |", "| `2` |", "| `3` |", "| `130` |"):
        assert row in table


# -- 6. ids that start with '-' ---------------------------------------------------------------------------------


def test_ids_starting_with_a_dash_are_ids(invoke: Invoke, db: dict[str, str]) -> None:
    dash_id = "-y" + "A" * 30  # '-y' must not be read as --yes
    r = invoke("sessions", "inspect", dash_id, "--json", env=db)
    assert r.exit_code == 1, r.output  # parsed as an id: no store has it
    assert json.loads(r.stdout)["session_id"] == dash_id
    r = invoke("sessions", "delete", dash_id, env=db, input="n\n")
    assert r.exit_code == 1
    assert "aborted, nothing changed" in r.output  # asked first: the id did not turn into --yes


def test_a_malformed_dash_argument_points_at_double_dash(invoke: Invoke) -> None:
    r = invoke("sessions", "inspect", "-8FTR")
    assert r.exit_code == 2
    assert "'--'" in r.output


# -- 7. wording ---------------------------------------------------------------------------------------------------


def test_plurals_in_purge(invoke: Invoke, db: dict[str, str]) -> None:
    _create_sessions(db, 1, ago=timedelta(days=2))
    r = invoke("sessions", "purge", "--dry-run", env=db)
    assert r.exit_code == 0, r.output
    assert r.output.startswith("would delete 1 session and 2 ingredient rows")


def test_downgrade_names_real_revisions(invoke: Invoke, db: dict[str, str]) -> None:
    r = invoke("migrate", "db", "downgrade", "--dry-run", env=db)
    assert r.exit_code == 0, r.output
    assert " to -1" not in r.output
    head, parent = schema.history()[:2]
    assert "would downgrade" in r.output
    assert f"from {head.revision} to {parent.revision} ({parent.message.rstrip('.')})" in r.output
    assert f"undoing {head.revision} (" in r.output
    assert json.loads(invoke("migrate", "db", "current", "--json", env=db).output)["current"] == head.revision
    r = invoke("migrate", "db", "downgrade", "7", env=db)
    assert r.exit_code == 2 and "not a revision" in r.output


def test_bench_says_missed_target() -> None:
    assert _mark(False).plain == "missed target"
    assert _mark(True).plain == "ok"


def test_status_explains_the_postgres_phase_on_sqlite(invoke: Invoke, db: dict[str, str]) -> None:
    r = invoke("migrate", "status", env={**db, "F2F_REDIS_URL": "redis://127.0.0.1:1"})
    assert r.exit_code == 0, r.output
    assert "on SQLite the 'postgres' phase means" in r.output
    assert "Redis Redis" not in r.output


def test_healthz_names_the_phase(db: dict[str, str]) -> None:
    with TestClient(create_app(Settings.from_env(db, env_file=None))) as client:
        assert client.get("/healthz").json()["phase"] == "postgres"


# -- 3. settings ranges, at start and at the far end ------------------------------------------------------------


def test_serve_refuses_an_out_of_range_setting_at_start(tmp_path: Path) -> None:
    r = _f2f("serve", "--port", "1", env={"F2F_SESSION_TTL_SECONDS": "999999999999"}, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("error: F2F_SESSION_TTL_SECONDS='999999999999' is invalid: must be between")
    assert list(tmp_path.iterdir()) == []


def test_the_longest_ttl_still_serves(db: dict[str, str]) -> None:
    """The top of the range is usable: a session with the longest TTL is created and read (no overflow, no 500)."""
    env = {**db, "F2F_SESSION_TTL_SECONDS": str(MAX_SESSION_TTL_SECONDS)}
    with TestClient(create_app(Settings.from_env(env, env_file=None))) as client:
        created = client.post("/v1/sessions")
        assert created.status_code == 201, created.text
        sid = created.json()["session_id"]
        added = client.post(f"/v1/sessions/{sid}/ingredients", json={"ingredients": ["두부"]})
        assert added.status_code == 200, added.text
        assert client.get(f"/v1/sessions/{sid}").status_code == 200


@pytest.mark.parametrize("args", [
    ("sessions", "export", "-o", "/nonexistent/sessions.jsonl"),
    ("migrate", "db", "upgrade", "9999"),
    ("migrate", "db", "downgrade", "+1", "--yes"),
    ("bench", "sessions", "--store", "sql", "--ops", "1", "--plot", "/nonexistent/chart.png"),
    ("sessions", "list", "--expiring-within", "[/]"),
])
def test_bad_input_is_one_line_and_exit_2(invoke: Invoke, db: dict[str, str], args: tuple[str, ...]) -> None:
    r = invoke(*args, env=db)
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error: ") and r.output.count("\n") == 1


def test_no_markup_tags_in_cli_sources() -> None:
    """The CLI consoles print literally (markup off), so a '[bold]…[/]' tag in a message would show as text:
    style with ``styled(...)``, ``Text`` or ``style=``. Catches tags that come back with a merge."""
    tag = re.compile(r"\[/?(bold|dim|italic|red|green|yellow|cyan|blue|magenta)\b[^\]]*\]|\[/\]")
    cli = Path(__file__).resolve().parents[2] / "f2f_cli" / "cli"
    found = [f"{path.name}:{n}: {line.strip()}" for path in sorted(cli.glob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), start=1)
             if tag.search(line)]
    assert found == []


@pytest.mark.parametrize("name", numeric_settings())
def test_every_numeric_setting_out_of_range_is_exit_2_naming_it(invoke: Invoke, name: str) -> None:
    r = invoke("sessions", "list", env={name: "999999999999"})
    assert r.exit_code == 2
    assert r.output.startswith(f"error: {name}='999999999999' is invalid: ")
