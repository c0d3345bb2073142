from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import Result
from typer.testing import CliRunner

from f2f_cli.cli.main import app

Invoke = Callable[..., Result]


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> Invoke:
    """Run ``f2f ARGS`` in-process with only the given F2F_* variables set."""
    for key in [k for k in __import__("os").environ if k.startswith("F2F_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), env=env or {}, input=input, catch_exceptions=False)

    return run
