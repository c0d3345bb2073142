"""``f2f migrate``: schema migrations (``db``) and, later, the phase move."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from f2f_cli.cli import migrate_phase
from f2f_cli.cli.common import JSON_HELP, YES_HELP, cli_errors, fail, load_settings, print_json, stdout
from f2f_cli.db import migrate as schema
from f2f_cli.errors import EXIT_FAILURE
from f2f_cli.settings import mask_url

app = typer.Typer(
    help="Schema migrations and the PostgreSQL → Redis phase move.",
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

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


@db_app.command("upgrade")
@cli_errors
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    json: JsonOpt = False,
) -> None:
    """Upgrade the schema to REVISION (default: the newest). Safe to run again."""
    settings = load_settings()
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
    yes: Annotated[bool, typer.Option("--yes", "-y", help=YES_HELP)] = False,
    json: JsonOpt = False,
) -> None:
    """Downgrade the schema to REVISION (default: one step back). Drops tables: asks first."""
    settings = load_settings()
    before = schema.state(settings.database_url)
    if not yes and not typer.confirm(
        f"Downgrade {mask_url(settings.database_url)} from {before.current} to {revision}? Data may be lost"
    ):
        raise fail("aborted, nothing changed", EXIT_FAILURE)
    schema.downgrade(settings.database_url, revision)
    after = schema.state(settings.database_url)
    if json:
        print_json({"database": mask_url(settings.database_url), "from": before.current, "to": after.current})
    else:
        stdout().print(f"schema downgraded {before.current} → {after.current or 'empty'}")


@db_app.command("current")
@cli_errors
def db_current(json: JsonOpt = False) -> None:
    """Show the database's revision and whether it is at the code's head (exit 1 when behind)."""
    settings = load_settings()
    st = schema.state(settings.database_url)
    if json:
        print_json({"database": mask_url(settings.database_url), "current": st.current, "head": st.head,
                    "at_head": st.at_head})
    else:
        mark = "[green]at head[/]" if st.at_head else "[yellow]behind: run 'f2f migrate db upgrade'[/]"
        stdout().print(f"{st.current or 'empty'} (head {st.head}) {mark}")
    if not st.at_head:
        raise typer.Exit(EXIT_FAILURE)


@db_app.command("history")
@cli_errors
def db_history(json: JsonOpt = False) -> None:
    """List the schema revisions this f2f ships, newest first."""
    revisions = schema.history()
    if json:
        print_json([{"revision": r.revision, "down_revision": r.down_revision, "message": r.message,
                     "head": r.is_head} for r in revisions])
        return
    table = Table("revision", "parent", "description", title="schema revisions")
    for r in revisions:
        table.add_row(r.revision + (" (head)" if r.is_head else ""), r.down_revision or "-", r.message)
    stdout().print(table)
