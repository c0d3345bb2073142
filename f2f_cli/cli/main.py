"""The root ``f2f`` command."""

from __future__ import annotations

from typing import Annotated

import typer

from f2f_cli import __version__
from f2f_cli.cli import bench, migrate, recipes, serve, session_commands, smoke, worker
from f2f_cli.cli.common import configure_cli_logging, hide_flag_types
from f2f_cli.settings import warn_unknown_variables

# Help rendering only (no I/O): flags show no '<bool>' value placeholder.
hide_flag_types()

app = typer.Typer(
    name="f2f",
    help=(
        "Fridge2Fork backend and operations toolkit.\n\n"
        "Serves the session API, moves live sessions from PostgreSQL to Redis, "
        "and gives operators tools to inspect sessions, load recipes and measure it all.\n\n"
        "Configuration comes from F2F_* environment variables (or a .env file); "
        "with none set, f2f runs on an embedded SQLite file ./f2f.db.\n\n"
        "Examples:\n\n"
        "  f2f serve --port 8000\n\n"
        "  F2F_DATABASE_URL=postgresql://app@db/f2f f2f migrate db upgrade"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"f2f {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Fridge2Fork backend and operations toolkit."""
    configure_cli_logging()
    warn_unknown_variables()  # a misspelt F2F_* name would otherwise be ignored without a word


app.command("serve")(serve.serve)
app.command("worker")(worker.worker)
app.command("smoke")(smoke.smoke)
app.add_typer(migrate.app, name="migrate")
# Each group's own help (with its examples) is what 'f2f GROUP --help' shows.
app.add_typer(session_commands.app, name="sessions")
app.add_typer(recipes.app, name="recipes")
app.add_typer(bench.app, name="bench")


def main() -> None:
    app()
