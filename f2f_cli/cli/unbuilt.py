"""Command groups that this build lists but does not provide yet.

They exist so ``f2f --help`` shows the whole tool, and answer with a clear
message and exit code 2 instead of crashing. Each placeholder's callback
carries :data:`UNBUILT_ATTR`, so tooling (the Helm chart's honesty test) can
tell a placeholder from a real command: a placeholder accepts any arguments.
"""

from __future__ import annotations

from typing import Annotated

import typer

from f2f_cli.cli.common import fail
from f2f_cli.errors import EXIT_USAGE

UNBUILT_ATTR = "__f2f_unbuilt__"


def add_unbuilt(app: typer.Typer, name: str, summary: str) -> None:
    def _unbuilt(args: Annotated[list[str] | None, typer.Argument(hidden=True)] = None) -> None:
        raise fail(f"'f2f {name}' is not available in this build of f2f yet", EXIT_USAGE)

    # Typer wraps the callback with functools.update_wrapper, which copies __dict__: the mark survives.
    setattr(_unbuilt, UNBUILT_ATTR, True)
    app.command(
        name,
        help=f"{summary} (not available in this build yet).",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )(_unbuilt)


def is_unbuilt(command: object) -> bool:
    """True when ``command`` (a command object from ``typer.main.get_command``) is a placeholder."""
    return bool(getattr(getattr(command, "callback", None), UNBUILT_ATTR, False))
