"""Command groups that this build lists but does not provide yet.

They exist so ``f2f --help`` shows the whole tool, and answer with a clear
message and exit code 2 instead of crashing.
"""

from __future__ import annotations

from typing import Annotated

import typer

from f2f_cli.cli.common import fail
from f2f_cli.errors import EXIT_USAGE


def add_unbuilt(app: typer.Typer, name: str, summary: str) -> None:
    @app.command(
        name,
        help=f"{summary} (not available in this build yet).",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
    def _unbuilt(args: Annotated[list[str] | None, typer.Argument(hidden=True)] = None) -> None:
        raise fail(f"'f2f {name}' is not available in this build of f2f yet", EXIT_USAGE)
