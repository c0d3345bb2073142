"""The chart stays honest with the code: its F2F_* variables and its f2f commands are real.

Both lists come from the code at test time (``Settings.known_variables()`` and the Typer app),
so a setting or command renamed in the code fails here until the chart follows.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from f2f_cli.settings import Settings
from tests.unit.helm_support import (
    CHART,
    CI_VALUES,
    DATABASE_URL,
    DEFAULTS_PLUS_DB,
    CommandProblem,
    check_f2f_command,
    containers,
    deep_merge,
    f2f_command_lines,
    load_values,
    manifests,
    notes,
    render,
)

F2F_VAR = re.compile(r"\bF2F_[A-Z0-9_]+\b")
# Variables the chart sets from Secrets, the pod itself or its own values, never from `config`
# (F2F_GRACEFUL_SHUTDOWN_SECONDS comes from server.gracefulShutdownSeconds, which the chart checks
# against the termination grace period; F2F_METRICS_PORT from metrics.port, which the chart's ports,
# ServiceMonitor and NetworkPolicy follow).
NOT_IN_CONFIG = {
    "F2F_DATABASE_URL",
    "F2F_REDIS_URL",
    "F2F_INSTANCE_NAME",
    "F2F_GRACEFUL_SHUTDOWN_SECONDS",
    "F2F_METRICS_PORT",
}

# Everything the templates can render: every ci file, the defaults, and the optional paths on.
EVERYTHING_ON: dict[str, Any] = deep_merge(
    DEFAULTS_PLUS_DB,
    {
        "phase": "redis",
        "externalRedis": {"url": "redis://cache:6379/0", "password": "pw"},
        "server": {"logLevel": "debug", "workers": 4},
        "purge": {"olderThan": "2h"},
        "migrations": {"useHelmHooks": False},
        "ingress": {"enabled": True},
        "autoscaling": {"enabled": True},
        "networkPolicy": {
            "enabled": True,
            "restrictEgress": True,
            "egress": [{"ports": [{"port": 5432, "protocol": "TCP"}]}],
        },
        "metrics": {
            "port": 9090,
            "serviceMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True},
            "grafanaDashboard": {"enabled": True},
        },
    },
)
RENDER_VALUES: list[dict[str, Any]] = [DEFAULTS_PLUS_DB, EVERYTHING_ON, *(load_values(p) for p in CI_VALUES)]


def all_renders() -> list[dict[str, str]]:
    return [render(values) for values in RENDER_VALUES]


def rendered_command_lines() -> list[list[str]]:
    """Every f2f invocation in a rendered container, and every command line NOTES.txt shows."""
    lines: list[list[str]] = []
    for rendered in all_renders():
        for _, container in containers(manifests(rendered)):
            lines.extend(f2f_command_lines([*container.get("command", []), *container.get("args", [])]))
        for line in notes(rendered).splitlines():
            # Indented lines are commands for the operator: `kubectl exec ... -- f2f ...`.
            match = re.search(r"(?:^|\s)(f2f\s.*)$", line)
            if line.startswith("  ") and match:
                lines.extend(f2f_command_lines(["sh", "-c", match.group(1)]))
    unique: dict[str, list[str]] = {" ".join(line): line for line in lines}
    return list(unique.values())


def _starts(line: list[str], *words: str) -> bool:
    return line[1 : 1 + len(words)] == list(words)




# ---- F2F_* variables --------------------------------------------------------------------------


def test_every_f2f_variable_in_the_chart_is_a_known_setting() -> None:
    known = set(Settings.known_variables())
    found: dict[str, set[str]] = {}
    sources = [*CHART.glob("templates/**/*"), CHART / "values.yaml", *CI_VALUES]
    for path in sources:
        if path.is_file():
            for name in F2F_VAR.findall(path.read_text()):
                found.setdefault(name, set()).add(str(path.relative_to(CHART)))
    for i, rendered in enumerate(all_renders()):
        for doc in manifests(rendered):
            for name in F2F_VAR.findall(repr(doc)):
                found.setdefault(name, set()).add(f"render {i}: {doc['kind']} {doc['metadata']['name']}")
    assert found, "the chart sets no F2F_* variable at all?"
    unknown = {name: sorted(where) for name, where in found.items() if name not in known}
    assert unknown == {}, f"not in Settings.known_variables(): {unknown}"


def _example(name: str) -> str:
    """A value the setting's own parser accepts: its default, or the first candidate that parses."""
    (field,) = [f for f in fields(Settings) if f.metadata["env"] == name]
    default = field.default
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, tuple) and default:
        return ",".join(default)
    if default is not None and not isinstance(default, tuple):
        return str(default)
    for candidate in ("true", "1", "example", "https://app.example", "10.0.0.0/8"):
        try:
            field.metadata["parser"](candidate)
        except ValueError:
            continue
        return candidate
    raise AssertionError(f"no example value for {name}")


def test_every_known_setting_is_reachable_from_values() -> None:
    known = Settings.known_variables()
    config = {name: _example(name) for name in known if name not in NOT_IN_CONFIG}
    values = deep_merge(
        DEFAULTS_PLUS_DB,
        {
            "phase": "dual",
            "config": config,
            "externalRedis": {"url": "redis://cache:6379/0", "password": "pw"},
            "metrics": {"port": 9090},
        },
    )
    docs = manifests(render(values))
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap" and "helm.sh/hook" not in d["metadata"].get(
        "annotations", {})]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    for name in known:
        assert name in configmap["data"] or name in env, f"{name} cannot be set through the chart"
    # What reaches the pod parses with the real settings code.
    environ = {**configmap["data"], "F2F_DATABASE_URL": DATABASE_URL}
    environ["F2F_REDIS_URL"] = env["F2F_REDIS_URL"]["value"].replace("$(REDIS_PASSWORD)", "pw")
    environ["F2F_INSTANCE_NAME"] = "rel-f2f-5d9c7-abcde"
    environ["F2F_METRICS_PORT"] = env["F2F_METRICS_PORT"]["value"]
    settings = Settings.from_env(environ, env_file=None)
    assert settings.redis_url == "redis://:pw@cache:6379/0"
    assert settings.metrics_port == 9090


@pytest.mark.parametrize("values_path", [CHART / "values.yaml", *CI_VALUES], ids=lambda p: p.name)
def test_configured_values_parse_with_the_settings_code(values_path: Path) -> None:
    config = load_values(values_path).get("config", {})
    Settings.from_env({str(k): str(v) for k, v in config.items()}, env_file=None)


# ---- f2f commands ---------------------------------------------------------------------------


def test_the_checker_finds_commands_in_shell_scripts() -> None:
    script = ["sh", "-c", 'until f2f migrate db current >/dev/null; do echo "wait"; sleep 5; done && f2f serve']
    assert f2f_command_lines(script) == [["f2f", "migrate", "db", "current"], ["f2f", "serve"]]
    assert f2f_command_lines(["python", "-c", "print('f2f serve')"]) == []


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["f2f", "migrate", "db", "upgrad"], "no command 'migrate db upgrad'"),
        (["f2f", "serve", "--prot", "8000"], "No such option"),
        (["f2f", "serve", "--port", "eighty"], "eighty"),
        (["f2f", "migrate", "db"], "names the group"),
    ],
)
def test_the_checker_rejects_what_is_not_real(argv: list[str], problem: str) -> None:
    with pytest.raises(CommandProblem, match=problem):
        check_f2f_command(argv)


def test_chart_commands_are_found() -> None:
    lines = rendered_command_lines()
    found = {" ".join(line[:3]) for line in lines}
    assert {"f2f serve --host", "f2f migrate db", "f2f worker", "f2f sessions purge"} <= found, found


def test_every_chart_command_is_a_real_f2f_command() -> None:
    lines = rendered_command_lines()
    assert lines
    problems = []
    for line in lines:
        try:
            check_f2f_command(line)
        except CommandProblem as exc:
            problems.append(str(exc))
    assert problems == []


def test_worker_command_is_real() -> None:
    lines = [line for line in rendered_command_lines() if _starts(line, "worker")]
    assert lines
    for line in lines:
        check_f2f_command(line)


def test_purge_command_is_real() -> None:
    lines = [line for line in rendered_command_lines() if _starts(line, "sessions", "purge")]
    assert {"--batch-size", "--older-than"} <= {arg for line in lines for arg in line}
    for line in lines:
        check_f2f_command(line)
