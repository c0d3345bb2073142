"""What every command shares: error rendering, settings loading, JSON output.

Output rule: the consoles here never parse Rich markup, so user and system text
(paths, ids, URLs, error messages, ingredient names) prints exactly as given,
brackets included. Styling is explicit: ``styled(("error:", "bold red"), " ", message)``
or ``console.print(text, style=...)``.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import msgspec
import typer
from rich.console import Console
from rich.table import Column
from rich.text import Text
from typer.core import TyperCommand, TyperOption

from f2f_cli.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, F2FError, SchemaNotReady
from f2f_cli.settings import DEFAULT_DATABASE_URL, Settings, get_settings

P = ParamSpec("P")
R = TypeVar("R")

JSON_HELP = "Print machine-readable JSON instead of tables."
DRY_RUN_HELP = "Show what would change, change nothing."
YES_HELP = "Do not ask for confirmation."

# The options every command group spells the same way, defined once.
JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help=DRY_RUN_HELP)]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help=YES_HELP)]


# Without a terminal (a pipe, a file, ``kubectl exec`` without ``-t``) Rich would assume 80 columns and cut
# table cells to fit. Tables take only the width they need, so a wide page costs nothing and cuts nothing.
PIPE_WIDTH = 4096


def output_width(stream: Any = None) -> int | None:
    """Columns for a console on ``stream`` (default stdout): the terminal's own, or PIPE_WIDTH without one."""
    stream = sys.stdout if stream is None else stream
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError):
        tty = False
    return None if tty else PIPE_WIDTH


def stdout() -> Console:
    return Console(highlight=False, soft_wrap=True, markup=False, emoji=False, width=output_width())


def id_column(header: str, width: int = 32) -> Column:
    """A table column of ids (session ids are 32 characters): never wrapped, never cut to fit a narrow terminal,
    so an id can always be pasted into the next command."""
    return Column(header, no_wrap=True, min_width=width, overflow="ignore")


def stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)


def styled(*parts: str | tuple[str, str]) -> Text:
    """Literal text with styled spans, e.g. ``styled(("ok", "green"), " 3 rows")``; brackets stay brackets."""
    return Text.assemble(*parts)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 session``, ``2 sessions``, ``0 entries`` (pass ``many`` for irregular plurals)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def fail(message: str, code: int) -> typer.Exit:
    """Print one clean line to stderr and return the Exit to raise."""
    stderr().print(styled(("error:", "bold red"), " ", message))
    return typer.Exit(code)


def confirm(yes: bool, question: str) -> None:
    """Ask before a destructive step; no (or no terminal to answer) exits 1 with nothing changed."""
    if yes:
        return
    try:
        ok = typer.confirm(question, default=False, err=True)  # stdout stays for data (--json)
    except typer.Abort:
        ok = False
    if not ok:
        raise fail("aborted, nothing changed (use --yes to skip the question)", EXIT_FAILURE)


def cli_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn F2FError (and Ctrl-C) into one line on stderr and a meaningful exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except F2FError as exc:
            raise fail(exc.message, exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", EXIT_INTERRUPTED) from None

    return wrapper


def configure_cli_logging() -> None:
    """Logs of a CLI command go to stderr in F2F_LOG_FORMAT; quiet (warnings) unless F2F_LOG_LEVEL says otherwise."""
    from f2f_cli.logs import configure_logging

    try:
        settings = get_settings()
    except F2FError:
        return  # the command itself reports the bad setting
    configure_logging(settings.log_format, settings.log_level if "F2F_LOG_LEVEL" in os.environ else "warning")


def sqlite_file(settings: Settings) -> Path | None:
    """The file an SQLite URL names (None for PostgreSQL and in-memory SQLite)."""
    if not settings.is_sqlite:
        return None
    from sqlalchemy.engine import make_url

    database = make_url(settings.database_url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def require_database(settings: Settings) -> None:
    """Refuse, creating nothing, when the SQLite file is missing (a command run from another folder).

    Connecting would create an empty ``f2f.db`` and then fail on the first table; only
    ``f2f serve`` and ``f2f migrate db upgrade`` create the database.
    """
    path = sqlite_file(settings)
    if path is None or path.exists():
        return
    where = f"{path} (in {Path.cwd()})" if not path.is_absolute() else str(path)
    default = ", the default F2F_DATABASE_URL" if settings.database_url == DEFAULT_DATABASE_URL else ""
    raise SchemaNotReady(
        f"no database at {where}{default}: run 'f2f migrate db upgrade' (or 'f2f serve') to create it, "
        "or set F2F_DATABASE_URL to the database you mean"
    )


def load_settings(*, database: bool = True) -> Settings:
    """The settings, or exit 2 naming the bad variable.

    ``database``: the command works on the existing SQL database, so a missing SQLite
    file is refused (exit 1) instead of created; commands that create it, or need no
    database, pass False.
    """
    try:
        settings = get_settings()
    except F2FError as exc:
        raise fail(exc.message, EXIT_USAGE) from None
    if database:
        try:
            require_database(settings)
        except F2FError as exc:
            raise fail(exc.message, exc.exit_code) from None
    return settings


def print_json(data: Any) -> None:
    sys.stdout.write(msgspec.json.encode(data).decode() + "\n")
    sys.stdout.flush()


class DashIdCommand(TyperCommand):
    """A command whose one argument is a session id, which may start with '-' (ids are URL-safe base64).

    Click would read ``-8FTR…`` as short options (and ``-y…`` as --yes!), so a word that is a
    whole well-formed session id is moved behind ``--`` before parsing; anything else is left to
    click, whose error then points at ``--``.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        from f2f_cli.domain.ids import is_valid_session_id

        if "--" not in args:
            ids = [a for a in args if a.startswith("-") and is_valid_session_id(a)]
            if ids:
                args = [a for a in args if a not in ids] + ["--", *ids]
        try:
            return super().parse_args(ctx, args)
        except Exception as exc:
            # By name: typer >= 0.29 raises its vendored click's NoSuchOption, older typer click's own.
            message = getattr(exc, "message", None)
            if type(exc).__name__ == "NoSuchOption" and isinstance(message, str):
                exc.message = message + " (a session id starting with '-' goes after '--': f2f sessions inspect -- ID)"  # type: ignore[attr-defined]
            raise


def hide_flag_types() -> None:
    """Flags take no value: drop the ``<bool>`` placeholder typer's rich help shows beside them.

    (typer 0.29 prints the type column for every option, flags included; the plain click help
    already leaves it out.) Idempotent; called where the root app is built.
    """
    original: Callable[[TyperOption, Any], str | None] | None = getattr(TyperOption, "display_type_rich", None)
    if original is None or getattr(original, "_f2f_flags_hidden", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        if self.is_flag and self.metavar is None:
            return None
        return original(self, ctx)

    display_type_rich._f2f_flags_hidden = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]

