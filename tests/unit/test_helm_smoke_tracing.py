"""The chart's `helm test` pod (`f2f smoke`) and its tracing values, rendered with Bitnami's real chart."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import pytest

from f2f_cli import tracing
from tests.unit.helm_support import (
    CHART,
    DEFAULTS_PLUS_DB,
    NAMESPACE,
    chart_with_redis,
    check_f2f_command,
    coalesced_values,
    containers,
    deep_merge,
    find,
    kube_validate,
    load_values,
    manifests,
    render,
)

FULL = "rel-f2f"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
KUBE_VERSIONS = ["1.27.0", kubernetes_validate.latest_version()]
TRACING = {"tracing": {"enabled": True, "endpoint": "http://otel-collector.observability:4318",
                       "samplerRatio": 0.25, "resourceAttributes": {"deployment.environment": "prod"}}}


@pytest.fixture(scope="module")
def dependency_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chart, _ = chart_with_redis(tmp_path_factory.mktemp("chart"))
    return chart


def _redis_phase(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The bundled-Redis CI values in phase redis: API, worker, migration Job and purge all render."""
    values = deep_merge(load_values(CHART / "ci" / "standalone-values.yaml"), {"phase": "redis"})
    return deep_merge(values, extra or {})


def _validate(doc: dict[str, Any]) -> None:
    for version in KUBE_VERSIONS:
        kube_validate(doc, version)


def test_helm_test_runs_one_sessions_life_as_a_locked_down_pod(dependency_chart: Path) -> None:
    docs = manifests(render(_redis_phase(), dependency_chart))
    pod = find(docs, "Pod", f"{FULL}-test-smoke")
    _validate(pod)
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert [d for d in docs if d["kind"] == "Pod"] == [pod]  # the one test hook
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["f2f", "smoke", f"http://{FULL}.{NAMESPACE}.svc:80", "--prefix", "/v1"]
    check_f2f_command(container["command"])  # a real f2f command with flags it takes
    deployment = find(docs, "Deployment", FULL)
    assert container["image"] == deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    ctx = container["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True and ctx["runAsNonRoot"] is True
    assert ctx["allowPrivilegeEscalation"] is False and ctx["capabilities"]["drop"] == ["ALL"]
    assert pod["spec"]["securityContext"]["runAsUser"] != 0
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert "env" not in container and "envFrom" not in container  # no secret reaches the test pod


def test_helm_test_follows_the_api_prefix_and_service_port() -> None:
    values = deep_merge(DEFAULTS_PLUS_DB, {"config": {"F2F_API_PREFIX": "/api"}, "service": {"port": 8080}})
    pod = find(manifests(render(values)), "Pod", f"{FULL}-test-smoke")
    command = pod["spec"]["containers"][0]["command"]
    assert command[2:] == [f"http://{FULL}.{NAMESPACE}.svc:8080", "--prefix", "/api"]


def test_tracing_is_off_by_default() -> None:
    seen = 0
    for _, container in containers(manifests(render(_redis_phase()), own=True)):
        seen += 1
        assert not [e["name"] for e in container.get("env", []) if e["name"].startswith("OTEL_")]
    assert seen


def _expand(env: list[dict[str, Any]]) -> dict[str, str]:
    """The container's variables as the kubelet sets them: downward-API fields filled, $(VAR) expanded."""
    fields = {"metadata.name": "rel-f2f-abc12", "metadata.namespace": NAMESPACE, "spec.nodeName": "node-1",
              "metadata.uid": "0f0e"}
    out: dict[str, str] = {}
    for item in env:
        if "value" in item:
            out[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: out.get(m.group(1), m.group(0)), item["value"])
        elif "fieldRef" in item.get("valueFrom", {}):
            out[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
    return out


def test_tracing_values_set_the_standard_variables_in_every_f2f_process(dependency_chart: Path) -> None:
    docs = manifests(render(_redis_phase(TRACING), dependency_chart), own=True)
    traced = {}
    for doc, container in containers(docs):
        env = _expand(container.get("env", []))
        if "OTEL_EXPORTER_OTLP_ENDPOINT" in env:
            traced[(doc["kind"], doc["metadata"]["name"])] = env
    # serve, the worker and the migration hook (f2f's other containers may carry it too: harmless).
    assert {("Deployment", FULL), ("Deployment", f"{FULL}-worker")} <= set(traced)
    assert "Job" in {kind for kind, _ in traced}
    for where, env in traced.items():
        assert tracing.check(env), where  # what f2f itself accepts, as it reads it
        assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
        assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.25"
        assert env["OTEL_SERVICE_NAME"] == FULL
        attributes = dict(pair.split("=", 1) for pair in env["OTEL_RESOURCE_ATTRIBUTES"].split(","))
        assert attributes["k8s.pod.name"] == "rel-f2f-abc12" and attributes["k8s.namespace.name"] == NAMESPACE
        assert attributes["k8s.node.name"] == "node-1" and attributes["k8s.pod.uid"] == "0f0e"
        assert attributes["deployment.environment"] == "prod" and attributes["service.version"]
    for doc in docs:
        if doc["kind"] not in ("ServiceMonitor", "PrometheusRule"):
            _validate(doc)


def test_tracing_without_an_endpoint_refuses_to_render() -> None:
    with pytest.raises(helm_python.HelmError, match=r"tracing\.endpoint"):
        render(deep_merge(DEFAULTS_PLUS_DB, {"tracing": {"enabled": True}}))


@pytest.mark.parametrize("override", [
    {"samplerRatio": 1.5},
    {"samplerRatio": -0.1},
    {"endpoint": "otel-collector:4318"},
    {"resourceAttributes": {"team": "a,b"}},
    {"serviceName": "f2f prod"},
    {"exporter": "zipkin"},
])
def test_bad_tracing_values_fail_the_schema(override: dict[str, Any]) -> None:
    values = deep_merge(DEFAULTS_PLUS_DB, {"tracing": override})
    assert list(jsonschema.Draft7Validator(SCHEMA).iter_errors(coalesced_values(values)))
