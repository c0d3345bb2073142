"""The README's reference tables say what the code has: each metric once, and the command synopses whole."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from f2f_cli.api.metrics import Metrics
from f2f_cli.cli.main import app

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _documented_metrics() -> list[str]:
    """Every name in the metrics table; ``_suffix`` after a full name replaces that name's last part."""
    names: list[str] = []
    for row in README.splitlines():
        if not row.startswith("| `f2f_"):
            continue
        first = row.split("|")[1]
        base = ""
        for name in re.findall(r"`([a-z0-9_]+)`", first):
            if name.startswith("_"):
                names.append(base + name)
            else:
                names.append(name)
                base = name.rsplit("_", 1)[0]
    return names


def _registered_metrics() -> set[str]:
    registry = Metrics(refresh_seconds=5).registry
    found = set()
    for family in registry.collect():
        if family.name.startswith("f2f_"):
            found.add(family.name + ("_total" if family.type == "counter" else ""))
    return found


def test_the_suffix_shorthand_reads_as_meant() -> None:
    assert "f2f_backup_stream_undelivered" in _documented_metrics()
    assert "f2f_recommender_index_build_seconds" in _documented_metrics()


def test_every_metric_is_documented_once() -> None:
    documented = _documented_metrics()
    twice = sorted({n for n in documented if documented.count(n) > 1})
    assert not twice, f"listed more than once in the README: {twice}"
    missing = sorted(_registered_metrics() - set(documented))
    assert not missing, f"registered but not in the README's metrics table: {missing}"


def _options(*path: str) -> set[str]:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return {opt for p in command.params for opt in p.opts if opt.startswith("--") and opt != "--help"}


def _synopsis(command: str) -> set[str]:
    block = README.split("## Commands", 1)[1].split("```", 2)[1]
    line = next(row for row in block.splitlines() if row.startswith(f"f2f {command} "))
    return set(re.findall(r"--[a-z][a-z-]*", line.split("(", 1)[0]))


def test_the_worker_and_serve_synopses_name_every_option() -> None:
    for command in ("worker", "serve", "smoke"):
        assert _synopsis(command) == _options(command), f"README synopsis of 'f2f {command}'"
