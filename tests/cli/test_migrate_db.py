from __future__ import annotations

import json
from pathlib import Path

from f2f_cli.db import migrate as schema
from tests.cli.conftest import Invoke


def test_upgrade_current_downgrade_on_sqlite(invoke: Invoke, tmp_path: Path) -> None:
    env = {"F2F_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    r = invoke("migrate", "db", "current", env=env)
    assert r.exit_code == 1  # no database yet: said so, and nothing created
    assert "no database at" in r.output and "f2f migrate db upgrade" in r.output
    assert not (tmp_path / "cli.db").exists()
    r = invoke("migrate", "db", "upgrade", env=env)
    assert r.exit_code == 0, r.output
    assert "upgraded" in r.output
    r = invoke("migrate", "db", "upgrade", env=env)
    assert "already at" in r.output
    r = invoke("migrate", "db", "current", "--json", env=env)
    assert r.exit_code == 0
    data = json.loads(r.output)
    assert data["at_head"] is True
    assert data["current"] == schema.head_revision()
    r = invoke("migrate", "db", "downgrade", "base", env=env, input="n\n")
    assert r.exit_code == 1  # declined: nothing changed
    assert schema.state(env["F2F_DATABASE_URL"].replace("sqlite:", "sqlite+aiosqlite:")).at_head
    r = invoke("migrate", "db", "downgrade", "base", "--yes", env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(invoke("migrate", "db", "current", "--json", env=env).output)["current"] is None
    r = invoke("migrate", "db", "current", env=env)
    assert r.exit_code == 1  # an empty schema: behind head
    assert "behind" in r.output


def test_upgrade_and_current_on_postgres(invoke: Invoke, pg_url: str) -> None:
    env = {"F2F_DATABASE_URL": pg_url.replace("postgresql+psycopg://", "postgres://")}
    r = invoke("migrate", "db", "upgrade", "--json", env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["to"] == schema.head_revision()
    assert invoke("migrate", "db", "current", env=env).exit_code == 0


def test_history_lists_revisions(invoke: Invoke) -> None:
    r = invoke("migrate", "db", "history", "--json")
    assert r.exit_code == 0
    revisions = json.loads(r.output)
    assert revisions[-1]["revision"] == "0001"
    assert sum(1 for rev in revisions if rev["head"]) == 1


def test_unreachable_database_is_one_line(invoke: Invoke) -> None:
    r = invoke("migrate", "db", "upgrade", env={"F2F_DATABASE_URL": "postgresql://u:secret@127.0.0.1:1/x"})
    assert r.exit_code == 1
    assert "secret" not in r.output
    assert "Traceback" not in r.output
    assert r.output.strip().count("\n") == 0


def test_serve_refuses_a_postgres_schema_behind_head(invoke: Invoke, empty_pg_url: str) -> None:
    r = invoke("serve", "--port", "1", env={"F2F_DATABASE_URL": empty_pg_url})
    assert r.exit_code == 1
    assert "f2f migrate db upgrade" in r.output
    assert "Traceback" not in r.output
