"""``f2f migrate``: schema migrations (``db``) and, later, the phase move."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from f2f_cli.cli import migrate_phase
from f2f_cli.cli.common import (
    DryRunOpt,
    JsonOpt,
    YesOpt,
    cli_errors,
    confirm,
    load_settings,
    print_json,
    stdout,
    styled,
)
from f2f_cli.errors import EXIT_FAILURE
from f2f_cli.settings import mask_url

app = typer.Typer(
    help=(
        "Schema migrations and the PostgreSQL → Redis phase move.\n\n"
        "Examples:\n\n  f2f migrate db upgrade\n\n  f2f migrate status\n\n  f2f migrate plan to dual"
    ),
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(
    help=(
        "Alembic schema migrations of the SQL database (F2F_DATABASE_URL).\n\n"
        "Examples:\n\n  f2f migrate db upgrade\n\n  f2f migrate db current --json\n\n"
        "  f2f migrate db downgrade 0001 --yes"
    ),
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(db_app, name="db")
migrate_phase.register(app)


@db_app.command("upgrade")
@cli_errors
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    json: JsonOpt = False,
) -> None:
    """Upgrade the schema to REVISION (default: the newest), creating an SQLite file if missing. Safe to run again.

    Examples:

      f2f migrate db upgrade

      F2F_DATABASE_URL=postgresql://app@db/f2f f2f migrate db upgrade --json
    """
    from f2f_cli.db import migrate as schema

    settings = load_settings(database=False)
    before = schema.state(settings.database_url)
    schema.upgrade(settings.database_url, revision)
    after = schema.state(settings.database_url)
    if json:
        print_json({"database": mask_url(settings.database_url), "from": before.current, "to": after.current})
        return
    if before.current == after.current:
        stdout().print(f"schema already at {after.current} ({mask_url(settings.database_url)})")
    else:
        stdout().print(
            f"schema upgraded {before.current or 'empty'} → {after.current} ({mask_url(settings.database_url)})"
        )


@db_app.command("downgrade")
@cli_errors
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, or 'base' for an empty schema.")] = "-1",
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    json: JsonOpt = False,
) -> None:
    """Downgrade the schema to REVISION: -N steps back (default -1), 'base', or a revision id.

    Undoing a revision drops the tables it created, with their data: asks first.

    Examples:

      f2f migrate db downgrade --dry-run

      f2f migrate db downgrade 0001 --yes
    """
    from f2f_cli.db import migrate as schema

    settings = load_settings()
    before = schema.state(settings.database_url)
    undo = schema.downgrade_steps(before.current, revision)
    to = undo[-1].down_revision if undo else before.current
    target = f"{to} ({_describe(to)})" if to else "an empty schema"
    undone = ", ".join(f"{r.revision} ({r.message.rstrip('.')})" for r in undo)
    db = mask_url(settings.database_url)
    if not undo:
        message = f"schema already at {before.current}: nothing to downgrade ({db})"
    elif dry_run:
        message = f"would downgrade {db} from {before.current} to {target}, undoing {undone}"
    else:
        confirm(yes, f"Downgrade {db} from {before.current} to {target}, undoing {undone}? "
                     "Their tables are dropped with their data")
        schema.downgrade(settings.database_url, revision)
        message = f"schema downgraded {before.current} → {schema.state(settings.database_url).current or 'empty'}"
    if json:
        print_json({"database": db, "from": before.current, "to": to, "undo": [r.revision for r in undo],
                    "dry_run": dry_run})
    else:
        stdout().print(message)


def _describe(revision: str) -> str:
    from f2f_cli.db import migrate as schema

    return next((r.message.rstrip(".") for r in schema.history() if r.revision == revision), "")


@db_app.command("current")
@cli_errors
def db_current(json: JsonOpt = False) -> None:
    """Show the database's revision and whether it is at the code's head (exit 1 when behind).

    Example:

      f2f migrate db current --json
    """
    from f2f_cli.db import migrate as schema

    settings = load_settings()
    st = schema.state(settings.database_url)
    if json:
        print_json({"database": mask_url(settings.database_url), "current": st.current, "head": st.head,
                    "at_head": st.at_head})
    else:
        mark = ("at head", "green") if st.at_head else ("behind: run 'f2f migrate db upgrade'", "yellow")
        stdout().print(styled(f"{st.current or 'empty'} (head {st.head}) ", mark))
    if not st.at_head:
        raise typer.Exit(EXIT_FAILURE)


@db_app.command("history")
@cli_errors
def db_history(json: JsonOpt = False) -> None:
    """List the schema revisions this f2f ships, newest first.

    Example:

      f2f migrate db history
    """
    from f2f_cli.db import migrate as schema

    revisions = schema.history()
    if json:
        print_json([{"revision": r.revision, "down_revision": r.down_revision, "message": r.message,
                     "head": r.is_head} for r in revisions])
        return
    table = Table("revision", "parent", "description", title="schema revisions")
    for r in revisions:
        table.add_row(r.revision + (" (head)" if r.is_head else ""), r.down_revision or "-", r.message)
    stdout().print(table)
