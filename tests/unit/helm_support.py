"""Rendering and linting the Helm chart offline with the real Helm engine, for the chart tests.

Two libraries embed Helm's Go code: ``helm_python`` (helm-python-sdk: render, lint with
values, schema validation, value coalescing) and ``helm_sdkpy`` (helm-sdkpy: lint of a chart
directory). Neither talks to a cluster or the network.

The Bitnami ``redis`` dependency cannot be downloaded here (no chart repository is reachable).
The real chart is vendored beside the checkout, in ``../shared/vendor/charts/redis-<version>.tgz``
(Bitnami redis 21.2.19 with its ``common`` dependency, unmodified): ``chart_with_redis`` extracts
it into a temporary copy of the chart's ``charts/``, so the chart renders as a new user's
``helm dependency update && helm template`` would. Only a checkout without ``../shared`` falls back
to ``chart_with_redis_stand_in``: an empty subchart named ``redis``, so Helm's own dependency
handling (the ``redis.enabled`` condition, subchart value scoping, the lint dependency check)
still runs, though nothing of Bitnami's is rendered.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import re
import shlex
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "f2f"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "rel"
NAMESPACE = "shop"
DATABASE_URL = "postgresql://f2f:s3cret@postgresql.db.svc:5432/f2f"
# The defaults need a database; everything else in them is rendered as shipped.
DEFAULTS_PLUS_DB: dict[str, Any] = {"database": {"url": DATABASE_URL}}

# Helm lint severities (helm.sh/helm/v4/pkg/chart/common/lint/support).
INFO, WARNING, ERROR = 1, 2, 3
MISSING_REDIS = "chart directory is missing these dependencies: redis"
# libyaml's loader (same YAML 1.1 safe schema as yaml.safe_load, ~10x faster on the renders).
SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Where CI and every developer checkout find the vendored Bitnami chart: ``<repo>/../shared``.
VENDORED_CHARTS = ROOT.parent / "shared" / "vendor" / "charts"


def load_values(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(), Loader=SAFE_LOADER)
    assert isinstance(data, dict), f"{path} is not a mapping"
    return data


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def declared_redis_version() -> str:
    declared = yaml.safe_load((CHART / "Chart.yaml").read_text())["dependencies"]
    (redis,) = [d for d in declared if d["name"] == "redis"]
    return str(redis["version"])


def vendored_redis_archive() -> Path | None:
    """The vendored Bitnami chart of the version Chart.yaml pins, or None in a checkout without it."""
    archive = VENDORED_CHARTS / f"redis-{declared_redis_version()}.tgz"
    return archive if archive.is_file() else None


def chart_with_redis_stand_in(dest: Path) -> Path:
    """A copy of the chart whose ``charts/`` holds an empty chart named like the dependency."""
    chart = dest / "f2f"
    shutil.copytree(CHART, chart)
    sub = chart / "charts" / "redis"
    sub.mkdir(parents=True)
    (sub / "Chart.yaml").write_text(
        yaml.safe_dump({
            "apiVersion": "v2",
            "name": "redis",
            "version": declared_redis_version(),
            "description": "Test stand-in for the Bitnami redis chart: no templates, no values.",
        })
    )
    return chart


def chart_with_real_redis(dest: Path, archive: Path) -> Path:
    """A copy of the chart with Bitnami's chart extracted into ``charts/``, as ``helm dependency update`` leaves it."""
    chart = dest / "f2f"
    shutil.copytree(CHART, chart)
    (chart / "charts").mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(chart / "charts", filter="data")
    assert (chart / "charts" / "redis" / "Chart.yaml").is_file(), f"{archive} holds no redis/Chart.yaml"
    return chart


def chart_with_redis(dest: Path) -> tuple[Path, bool]:
    """(chart copy with its redis dependency, whether that is Bitnami's real chart).

    The stand-in only in a checkout without ../shared.
    """
    archive = vendored_redis_archive()
    if archive is None:
        return chart_with_redis_stand_in(dest), False
    return chart_with_real_redis(dest, archive), True


def is_subchart_template(path: str) -> bool:
    """A rendered template of a dependency (``f2f/charts/redis/templates/...``)."""
    return "/charts/" in path


# Successful renders of the shipped chart, by (values, release). Only ``CHART`` itself is cached: its
# templates draw nothing random (no rand*/now/uuid/lookup), so a render is a function of its inputs, and
# the cached text is immutable (each caller gets its own dict of str). Copies with the Bitnami subchart
# are never cached: Bitnami generates passwords, and tests compare two of its renders.
_RENDERS: dict[tuple[str, str], dict[str, str]] = {}


def _render_key(values: dict[str, Any] | None, release: str) -> tuple[str, str] | None:
    try:
        return json.dumps(values or {}, sort_keys=True), release
    except (TypeError, ValueError):  # values JSON cannot spell exactly: render afresh
        return None


def render(values: dict[str, Any] | None, chart: Path = CHART, release: str = RELEASE) -> dict[str, str]:
    """Template path -> rendered text, as ``helm template`` would produce (hooks and tests included)."""
    import helm_python

    key = _render_key(values, release) if chart == CHART else None
    if key is not None and key in _RENDERS:
        return dict(_RENDERS[key])
    with helm_python.Chart.load(chart) as loaded:
        rendered: dict[str, str] = loaded.render(values or {}, name=release, namespace=NAMESPACE, is_install=True)
    if key is not None:
        _RENDERS[key] = dict(rendered)
    return rendered


def manifests(rendered: dict[str, str], *, own: bool = False) -> list[dict[str, Any]]:
    """Every Kubernetes object in a render (NOTES.txt left out); ``own``: f2f's objects only, not Bitnami's."""
    docs: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt") or (own and is_subchart_template(path)):
            continue
        for doc in yaml.load_all(text, Loader=SAFE_LOADER):
            if doc:
                assert isinstance(doc, dict), f"{path} rendered a non-object document"
                docs.append(doc)
    return docs


def notes(rendered: dict[str, str]) -> str:
    """f2f's own NOTES.txt (a subchart's is rendered too, but Helm shows only the parent's)."""
    return next(
        text
        for path, text in rendered.items()
        if path.endswith("templates/NOTES.txt") and not is_subchart_template(path)
    )


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(object, pod spec) for every object that runs pods."""
    for doc in docs:
        kind = doc["kind"]
        if kind == "Pod":
            yield doc, doc["spec"]
        elif kind in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
            yield doc, doc["spec"]["template"]["spec"]
        elif kind == "CronJob":
            yield doc, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def containers(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for doc, spec in pod_specs(docs):
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            yield doc, container


def helm_lint_python(chart: Path, values: dict[str, Any] | None) -> dict[str, Any]:
    """``helm lint --strict`` with values, through helm-python-sdk."""
    import helm_python

    report: dict[str, Any] = helm_python.lint(chart, values, strict=True, namespace=NAMESPACE)
    return report


def helm_lint_sdkpy(chart: Path) -> dict[str, Any]:
    """``helm lint`` of a chart directory (its own values.yaml), through helm-sdkpy."""
    import helm_sdkpy

    config = helm_sdkpy.Configuration(namespace=NAMESPACE)
    report: dict[str, Any] = asyncio.run(helm_sdkpy.Lint(config).run(str(chart)))
    return report


def coalesced_values(values: dict[str, Any]) -> dict[str, Any]:
    """The chart defaults with ``values`` over them, coalesced by Helm itself."""
    import helm_python

    with helm_python.Chart.load(CHART) as loaded:
        merged: dict[str, Any] = loaded.merge_values(values)
    return merged


# ---- f2f command lines ----------------------------------------------------------------------

_SHELLS = {"sh", "/bin/sh", "bash", "/bin/bash"}
_SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", "\n"}
_KEYWORDS = {"if", "then", "else", "elif", "fi", "until", "while", "do", "done", "for", "in", "!"}


def f2f_command_lines(argv: list[str]) -> list[list[str]]:
    """The ``f2f ...`` invocations in a container's command+args, including inside ``sh -c``."""
    if not argv:
        return []
    if Path(argv[0]).name == "f2f":
        return [argv]
    if argv[0] in _SHELLS and "-c" in argv[1:]:
        script = argv[argv.index("-c") + 1]
        lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lines: list[list[str]] = []
        current: list[str] = []
        for token in [*lexer, ";"]:
            if token in _SEPARATORS or (not current and token in _KEYWORDS):
                if current and current[0] == "f2f":
                    lines.append(current)
                current = []
                continue
            # A redirection ends the arguments f2f sees.
            if token.startswith((">", "<")) or token in ("2>", "1>"):
                if current and current[0] == "f2f":
                    lines.append(current)
                current = ["<redirect>"]
                continue
            current.append(token)
        return lines
    return []


def _cli_errors() -> tuple[type[Exception], ...]:
    """Usage errors of the click that Typer uses (vendored as typer._click since Typer 0.2x)."""
    errors: list[type[Exception]] = []
    if hasattr(typer, "TyperException"):
        errors.append(typer.TyperException)
    try:
        import click
    except ImportError:  # pragma: no cover - Typer no longer needs click itself
        pass
    else:
        errors.append(click.ClickException)
    return tuple(errors)


def is_group(command: Any) -> bool:
    return hasattr(command, "get_command") and hasattr(command, "list_commands")


class CommandProblem(Exception):
    """A command line that is not a real f2f command (or passes flags it does not take)."""


def check_f2f_command(argv: list[str]) -> Any:
    """Resolve ``f2f ...`` through the real Typer app and parse its flags; raise CommandProblem."""
    from f2f_cli.cli.main import app

    assert argv and Path(argv[0]).name == "f2f", argv
    root: Any = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="f2f")
    command = root
    args = list(argv[1:])
    path: list[str] = []
    while is_group(command):
        if not args or args[0].startswith("-"):
            raise CommandProblem(f"'{shlex.join(argv)}' names the group 'f2f {' '.join(path)}', not a command")
        name = args.pop(0)
        sub = command.get_command(ctx, name)
        if sub is None:
            raise CommandProblem(f"'{shlex.join(argv)}': f2f has no command '{' '.join([*path, name])}'")
        path.append(name)
        ctx = sub.context_class(sub, info_name=name, parent=ctx)
        command = sub
    try:
        # Parses and type-checks every option and argument without running the command.
        command.make_context(path[-1], args, parent=ctx.parent)
    except _cli_errors() as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        raise CommandProblem(f"'{shlex.join(argv)}': {message}") from None
    return command


# ---- Kubernetes API schemas -----------------------------------------------------------------


@functools.cache
def _kube_validator(version: str, kind: str, api_version: str) -> Any:
    """kubernetes-validate's validator for one kind, built once: its ``validate`` reads and parses the
    schema and the (large) shared definitions again on every call."""
    import jsonschema
    from kubernetes_validate.utils import schema_contents

    schema_dir = f"v{version}-local-strict"
    from referencing import Registry, Resource

    schema = schema_contents(f"kubernetes-json-schema/{schema_dir}/{kind}-{api_version}.json", version)
    definitions = schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", version)
    registry: Registry[Any] = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def kube_validate(doc: dict[str, Any], desired_version: str) -> str:
    """``kubernetes_validate.validate(doc, desired_version, strict=True)``, with the validators cached.

    Same schema choice (the newest schema not newer than ``desired_version``, the strict variant) and the
    same errors (``kubernetes_validate.ValidationError``, ``SchemaNotFoundError``); returns the version used.
    """
    import jsonschema
    import kubernetes_validate
    from kubernetes_validate.utils import major_minor

    versions = _kube_versions()
    if major_minor(desired_version) > versions[-1]:
        raise kubernetes_validate.utils.VersionNotSupportedError(version=major_minor(desired_version))
    version = [v for v in versions if major_minor(v) <= major_minor(desired_version)][-1]
    api_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", doc["apiVersion"])
    try:
        validator = _kube_validator(version, doc["kind"].lower(), api_version)
    except FileNotFoundError:
        raise kubernetes_validate.SchemaNotFoundError(
            version=major_minor(desired_version), kind=doc["kind"], api_version=doc["apiVersion"]
        ) from None
    try:
        validator.validate(doc)
    except jsonschema.ValidationError as e:
        raise kubernetes_validate.ValidationError(e, version=major_minor(version)) from e
    return major_minor(version)


@functools.cache
def _kube_versions() -> list[str]:
    from kubernetes_validate.utils import all_versions

    return list(all_versions())
