"""The ``f2f`` command: one Typer sub-app per command group, each thin."""
