"""What every command shares: error rendering, settings loading, JSON output."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import msgspec
import typer
from rich.console import Console

from f2f_cli.errors import EXIT_USAGE, F2FError
from f2f_cli.settings import Settings, get_settings

P = ParamSpec("P")
R = TypeVar("R")

JSON_HELP = "Print machine-readable JSON instead of tables."
DRY_RUN_HELP = "Show what would change, change nothing."
YES_HELP = "Do not ask for confirmation."


def stdout() -> Console:
    return Console(highlight=False, soft_wrap=True)


def stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int) -> typer.Exit:
    """Print one clean line to stderr and return the Exit to raise."""
    stderr().print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(code)


def cli_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn F2FError (and Ctrl-C) into one line on stderr and a meaningful exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except F2FError as exc:
            raise fail(exc.message, exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None

    return wrapper


def configure_cli_logging() -> None:
    """Logs of a CLI command go to stderr in F2F_LOG_FORMAT; quiet (warnings) unless F2F_LOG_LEVEL says otherwise."""
    from f2f_cli.logs import configure_logging

    try:
        settings = get_settings()
    except F2FError:
        return  # the command itself reports the bad setting
    configure_logging(settings.log_format, settings.log_level if "F2F_LOG_LEVEL" in os.environ else "warning")


def load_settings() -> Settings:
    try:
        return get_settings()
    except F2FError as exc:
        raise fail(exc.message, EXIT_USAGE) from None


def print_json(data: Any) -> None:
    sys.stdout.write(msgspec.json.encode(data).decode() + "\n")
    sys.stdout.flush()
