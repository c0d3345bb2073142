"""Starting ``f2f`` loads no store client, no numerical library: each command imports what it uses when it runs.

Every ``f2f`` process (a Helm hook, a CronJob, ``f2f serve``, the suite's own spawns) paid for numpy, scipy,
SQLAlchemy, alembic and redis-py before it parsed its arguments when the CLI imported every command's module
eagerly: about a second each (issue 26). These tests fail when an import at the top of a CLI module brings one
back.
"""

from __future__ import annotations

import json
import subprocess
import sys

# Libraries no command needs before it runs; any of them at start-up is a regression of `f2f`'s start time.
HEAVY = ("numpy", "scipy", "sqlalchemy", "alembic", "redis", "psycopg", "asyncpg", "aiosqlite", "uvicorn",
         "starlette", "opentelemetry", "prometheus_client", "httpx", "f2f_cli.api", "f2f_cli.backup")

# In a fresh interpreter: import the entry point, render the root help and every command's help (what
# `f2f X --help` does), then list what is loaded.
PROBE = """
import json, sys
import typer.main
from typer.testing import CliRunner
import f2f_cli.__main__
from f2f_cli.cli.main import app

def walk(command, path=()):
    yield path
    for name, sub in (getattr(command, "commands", None) or {}).items():
        yield from walk(sub, (*path, name))

after_import = sorted(sys.modules)
runner = CliRunner()
codes = {" ".join(p): runner.invoke(app, [*p, "--help"]).exit_code for p in walk(typer.main.get_command(app))}
print(json.dumps({"after_import": after_import, "after_help": sorted(sys.modules), "codes": codes}))
"""


def _heavy(modules: list[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY))


def test_starting_f2f_and_every_help_import_no_store_or_numerical_library() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert len(seen["codes"]) >= 35 and set(seen["codes"].values()) == {0}, seen["codes"]
    assert _heavy(seen["after_import"]) == [], "imported by `import f2f_cli.cli.main`; import it inside the command"
    assert _heavy(seen["after_help"]) == [], "imported while rendering help; import it inside the command"


def test_the_probe_would_see_a_heavy_import() -> None:
    """The check itself works: a library imported in the probe's process is reported."""
    assert _heavy(["numpy.linalg", "sqlalchemy", "f2f_cli.api.app", "typer", "rich.table"]) == [
        "f2f_cli.api.app", "numpy.linalg", "sqlalchemy"]


def test_defaults_written_out_in_the_cli_match_their_source() -> None:
    """Option defaults the CLI spells out (so its help needs no import) are the values the code uses."""
    from f2f_cli.cli import recipes, session_commands
    from f2f_cli.ops.purge import DEFAULT_BATCH
    from f2f_cli.recipes.formats import SOURCE_SIMPLE

    assert recipes.SOURCE_SIMPLE == SOURCE_SIMPLE
    assert session_commands.DEFAULT_BATCH == DEFAULT_BATCH
