"""The chart README's commands name objects the chart really renders, for the release it installs.

The README installs one release in one namespace and then runs ``kubectl`` against
``deploy/…``, ``svc/…``, ``job/…`` and Secrets. Those names come from ``_helpers.tpl`` (release
``f2f`` gets Deployments ``f2f`` and ``f2f-worker``, not ``f2f-f2f``), so this test renders the
chart with the README's own release name and namespace, with every part the runbook turns on
(bundled Redis with the runbook's Secret, phase ``redis`` for the worker), and checks each name.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import helm_python
import pytest

from tests.unit.helm_support import CHART, chart_with_redis, manifests

README = (CHART / "README.md").read_text()
# kubectl short kinds the README may use -> the object kind they name.
KINDS = {
    "deploy": "Deployment", "deployment": "Deployment", "deployments": "Deployment",
    "svc": "Service", "service": "Service", "job": "Job", "cronjob": "CronJob", "cm": "ConfigMap",
    "configmap": "ConfigMap", "pod": "Pod", "statefulset": "StatefulSet", "sts": "StatefulSet",
}


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def commands(text: str) -> list[list[str]]:
    """Every command line of the README's bash blocks (continuations joined, ``$F2F`` expanded)."""
    out: list[list[str]] = []
    f2f_prefix: list[str] = []
    for block in shell_blocks(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" # ")[0].strip()
            if not line or line.startswith("#"):
                continue
            for part in re.split(r"\s&&\s", line):
                argv = shlex.split(part, comments=True)
                if not argv:
                    continue
                if argv[0].startswith("F2F="):
                    f2f_prefix = shlex.split(argv[0][len("F2F="):])
                    out.append(f2f_prefix)
                    continue
                if argv[0] == "$F2F":
                    argv = [*f2f_prefix, *argv[1:]]
                out.append(argv)
    return out


def option(argv: list[str], *names: str) -> str | None:
    for i, word in enumerate(argv):
        if word in names and i + 1 < len(argv):
            return argv[i + 1]
        for name in names:
            if name.startswith("--") and word.startswith(name + "="):
                return word.split("=", 1)[1]
    return None


COMMANDS = commands(README)
INSTALLS = [c for c in COMMANDS if c[:3] == ["helm", "upgrade", "--install"]]
KUBECTL = [c for c in COMMANDS if c and c[0] == "kubectl"]


def test_the_readme_installs_one_release_in_one_namespace_and_creates_it() -> None:
    assert INSTALLS, "the README shows no helm upgrade --install"
    releases = {c[3] for c in INSTALLS}
    namespaces = {option(c, "-n", "--namespace") for c in INSTALLS}
    assert releases == {"f2f"}, releases
    assert namespaces == {"f2f"}, namespaces
    for c in INSTALLS:
        assert "--create-namespace" in c, shlex.join(c)


def test_every_kubectl_and_helm_command_names_the_namespace() -> None:
    assert KUBECTL
    for c in KUBECTL:
        if c[1:3] in (["create", "namespace"], ["delete", "namespace"]):
            continue
        assert option(c, "-n", "--namespace") == "f2f", f"no -n f2f: {shlex.join(c)}"
    for c in COMMANDS:
        if c and c[0] == "helm" and c[1] in ("upgrade", "install", "uninstall", "test", "rollback", "status"):
            assert option(c, "-n", "--namespace") == "f2f", f"no -n f2f: {shlex.join(c)}"


def named_objects(cmds: list[list[str]]) -> set[tuple[str, str]]:
    """(kind, name) of every ``kind/name`` a kubectl command targets."""
    found: set[tuple[str, str]] = set()
    for c in cmds:
        for word in c[1:]:
            match = re.fullmatch(r"([a-z]+)/([a-z0-9][-a-z0-9.]*)", word)
            if match and match.group(1) in KINDS:
                found.add((KINDS[match.group(1)], match.group(2)))
    return found


def secrets_named(cmds: list[list[str]]) -> set[str]:
    """Secrets the README creates or deletes with kubectl."""
    names: set[str] = set()
    for c in cmds:
        args = [w for w in c if not w.startswith("-")]
        if "secret" in args:
            after = args[args.index("secret") + 1:]
            if after and after[0] == "generic":
                after = after[1:]
            names.update(w for w in after if re.fullmatch(r"[a-z0-9][-a-z0-9]*", w) and w != "f2f")
    return names


def set_values(cmds: list[list[str]]) -> dict[str, Any]:
    """Every ``--set`` of the README's helm commands, as one values tree (later ones win)."""
    values: dict[str, Any] = {}
    for c in cmds:
        if c[0] != "helm":
            continue
        for i, word in enumerate(c):
            if word == "--set":
                key, raw = c[i + 1].split("=", 1)
                value: Any = {"true": True, "false": False}.get(raw, int(raw) if raw.isdigit() else raw)
                node = values
                *parents, leaf = key.split(".")
                for part in parents:
                    node = node.setdefault(part, {})
                node[leaf] = value
    return values


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    chart, real = chart_with_redis(tmp_path_factory.mktemp("runbook"))
    values = set_values(COMMANDS)
    # The runbook ends in phase postgres; its furthest point (phase redis, worker on) names the most objects.
    values["phase"] = "redis"
    values.setdefault("worker", {})["replicaCount"] = 2
    assert values["database"]["existingSecret"] == "f2f-database"
    assert values["redis"]["enabled"] is True
    with helm_python.Chart.load(Path(chart)) as loaded:
        out: dict[str, str] = loaded.render(values, name=INSTALLS[0][3], namespace="f2f", is_install=True)
    docs = manifests(out)
    if not real:
        pytest.skip("no vendored Bitnami chart: the Redis objects cannot be rendered")
    return docs


def test_every_object_the_readme_targets_is_rendered(rendered: list[dict[str, Any]]) -> None:
    names = named_objects(KUBECTL)
    assert ("Deployment", "f2f") in names and ("Deployment", "f2f-worker") in names, names
    present = {(d["kind"], d["metadata"]["name"]) for d in rendered}
    missing = sorted(names - present)
    assert not missing, f"the README names objects the chart does not render for release f2f: {missing}"
    for d in rendered:
        assert d["metadata"].get("namespace", "f2f") == "f2f", d["metadata"]


def referenced_secrets(docs: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("secretKeyRef") or node.get("secretRef")
            if isinstance(ref, dict) and "name" in ref:
                found.add(ref["name"])
            if "secret" in node and isinstance(node["secret"], dict) and "secretName" in node["secret"]:
                found.add(node["secret"]["secretName"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(docs)
    return found


def test_every_secret_the_readme_creates_is_the_one_the_pods_read(rendered: list[dict[str, Any]]) -> None:
    created = secrets_named(KUBECTL)
    assert {"f2f-database", "f2f-redis"} <= created, created
    used = referenced_secrets(rendered) | {d["metadata"]["name"] for d in rendered if d["kind"] == "Secret"}
    unknown = sorted(created - used)
    assert not unknown, f"the README creates Secrets nothing in the render reads: {unknown}"


def test_the_names_the_readme_promises_for_release_f2f_are_the_rendered_ones(
    rendered: list[dict[str, Any]],
) -> None:
    present = {(d["kind"], d["metadata"]["name"]) for d in rendered}
    for kind, name in re.findall(r"(Deployments?|Service|Job) `(f2f[-a-z]*)`", README):
        assert (kind.rstrip("s"), name) in present, (kind, name)
    assert ("Job", "f2f-migrate") in present


def test_the_parser_reads_what_the_readme_writes() -> None:
    sample = 'F2F="kubectl -n x exec deploy/a --"\n$F2F f2f migrate status\nkubectl -n x logs job/b && echo\n'
    cmds = commands(f"```bash\n{sample}```")
    assert ["kubectl", "-n", "x", "exec", "deploy/a", "--", "f2f", "migrate", "status"] in cmds
    assert named_objects(cmds) == {("Deployment", "a"), ("Job", "b")}
    assert secrets_named([["kubectl", "-n", "x", "create", "secret", "generic", "s1", "--from-literal=a=b"]]) == {"s1"}
