from __future__ import annotations

import pytest

from f2f_cli import __version__
from tests.cli.conftest import Invoke


def test_help_lists_every_group(invoke: Invoke) -> None:
    r = invoke("--help")
    assert r.exit_code == 0
    for group in ("serve", "worker", "migrate", "sessions", "recipes", "bench"):
        assert group in r.output


def test_version(invoke: Invoke) -> None:
    r = invoke("--version")
    assert r.exit_code == 0
    assert r.output.strip() == f"f2f {__version__}"


@pytest.mark.parametrize("group", ["serve", "migrate", "migrate db"])
def test_group_help(invoke: Invoke, group: str) -> None:
    r = invoke(*group.split(), "--help")
    assert r.exit_code == 0
    assert "Usage" in r.output


def test_unknown_command_is_a_usage_error(invoke: Invoke) -> None:
    assert invoke("frobnicate").exit_code == 2


def test_invalid_setting_is_one_clean_line(invoke: Invoke) -> None:
    r = invoke("migrate", "db", "current", env={"F2F_MAX_INGREDIENTS": "lots"})
    assert r.exit_code == 2
    assert "F2F_MAX_INGREDIENTS" in r.output
    assert "Traceback" not in r.output


def test_a_misspelt_setting_warns_once_with_the_closest_name(invoke: Invoke) -> None:
    r = invoke("migrate", "db", "history", env={"F2F_SESSON_TTL_SECONDS": "60"})
    assert r.exit_code == 0
    warning = "F2F_SESSON_TTL_SECONDS (set in the environment) is not an f2f setting and is ignored; " \
              "did you mean F2F_SESSION_TTL_SECONDS?"
    assert r.stderr.count(warning) == 1, r.stderr
