"""Every command's help: an example, literal text, no value placeholder on flags (issue #16, item 6)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import typer
from rich.text import Text

from f2f_cli.cli.main import app
from tests.cli.conftest import Invoke


def _walk(command: object, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    found: list[tuple[tuple[str, ...], object]] = [(path, command)]
    for name, sub in (getattr(command, "commands", None) or {}).items():
        found.extend(_walk(sub, (*path, name)))
    return found


TREE = _walk(typer.main.get_command(app))
COMMANDS = [" ".join(path) for path, _ in TREE]


def test_the_walk_sees_the_whole_tree() -> None:
    for name in ("", "serve", "worker", "migrate db downgrade", "migrate repair", "sessions import", "recipes show",
                 "bench recommend"):
        assert name in COMMANDS
    assert len(COMMANDS) >= 35


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(invoke: Invoke, command: str) -> None:
    r = invoke(*command.split(), "--help")
    assert r.exit_code == 0, r.output
    assert re.search(r"Examples?:", r.output), f"'f2f {command} --help' shows no example"
    assert "f2f " in r.output.split("Example", 1)[1]
    assert "<bool>" not in r.output


@pytest.mark.parametrize(("path", "command"), TREE, ids=COMMANDS)
def test_help_text_is_printed_literally(path: tuple[str, ...], command: object) -> None:
    """Typer renders help as Rich markup: a bracket in help text must be escaped or it vanishes."""
    texts = [getattr(command, "help", None) or ""]
    texts += [getattr(p, "help", None) or "" for p in getattr(command, "params", [])]
    for text in texts:
        assert Text.from_markup(text).plain == text.replace("\\[", "["), f"f2f {' '.join(path)}: {text!r}"


def test_brackets_in_help_survive(invoke: Invoke) -> None:
    assert "f2f[plot]" in invoke("bench", "sessions", "--help").output
    assert "[to] PHASE" in invoke("migrate", "plan", "--help").output


@pytest.mark.parametrize(("command", "flags"), [
    ("migrate db downgrade", ["--dry-run", "--yes"]),
    ("migrate repair", ["--dry-run", "--yes", "--json"]),
    ("migrate to", ["--dry-run", "--yes", "--json"]),
    ("migrate rollback", ["--dry-run", "--yes", "--json"]),
    ("sessions purge", ["--dry-run", "--yes", "--json"]),
    ("sessions delete", ["--dry-run", "--yes", "--json"]),
])
def test_destructive_commands_have_dry_run_and_yes(invoke: Invoke, command: str, flags: list[str]) -> None:
    out = invoke(*command.split(), "--help").output
    for flag in flags:
        assert flag in out


def test_help_in_a_real_process() -> None:
    r = subprocess.run([sys.executable, "-m", "f2f_cli", "sessions", "delete", "--help"], capture_output=True,
                       text=True, timeout=60, env={**os.environ, "COLUMNS": "100"})
    assert r.returncode == 0
    assert "Example" in r.stdout and "--dry-run" in r.stdout and "<bool>" not in r.stdout


def _examples(help_text: str) -> list[str]:
    """The example command lines of a help text (``f2f …``, maybe after ``F2F_…=…`` or ``Example:``)."""
    found = []
    for line in help_text.splitlines():
        line = line.strip().removeprefix("Examples:").removeprefix("Example:").strip()
        if line.startswith(("f2f ", "F2F_")) and "f2f" in line:
            found.append(" ".join(line.split()))
    return found


def test_examples_are_found() -> None:
    assert _examples("Do it.\n\nExamples:\n\n  f2f a b\n\n  F2F_X=1 f2f c\n\nExample: f2f d --e") == [
        "f2f a b", "F2F_X=1 f2f c", "f2f d --e"]


@pytest.mark.parametrize(("path", "command"), TREE, ids=COMMANDS)
def test_help_examples_never_wrap_at_80_columns(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, path: tuple[str, ...], command: object,
) -> None:
    """A wrapped example cannot be pasted: at 80 columns each one stays on one line of the help."""
    monkeypatch.setenv("COLUMNS", "80")
    examples = _examples(getattr(command, "help", None) or "")
    r = invoke(*path, "--help")
    assert r.exit_code == 0, r.output
    assert max(map(len, r.output.splitlines()), default=0) <= 80
    lines = [" ".join(line.strip(" │|").split()) for line in r.output.splitlines()]
    for example in examples:
        assert any(example in line for line in lines), f"'f2f {' '.join(path)} --help' wraps: {example}"
