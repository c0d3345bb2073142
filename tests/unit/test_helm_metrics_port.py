"""``metrics.port``: /metrics on a port of its own (F2F_METRICS_PORT), and the chart follows it.

With it set, ``f2f serve`` answers 404 for /metrics on the API port, so the Deployment, the Service,
the ServiceMonitor and the NetworkPolicy must all point at the metrics port; without it nothing changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import pytest

from f2f_cli.settings import Settings
from tests.unit.helm_support import (
    CHART,
    DEFAULTS_PLUS_DB,
    NAMESPACE,
    RELEASE,
    chart_with_redis,
    coalesced_values,
    deep_merge,
    find,
    helm_lint_python,
    kube_validate,
    load_values,
    manifests,
    render,
)
from tests.unit.test_helm_chart import INFO, KUBE_VERSIONS, RENDERABLE, _check_service_monitor

FULL = f"{RELEASE}-f2f"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
PROMETHEUS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
INGRESS_NGINX = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
MONITORED: dict[str, Any] = deep_merge(DEFAULTS_PLUS_DB, {"metrics": {"serviceMonitor": {"enabled": True}}})


def with_port(base: dict[str, Any], port: Any = 9090) -> dict[str, Any]:
    return deep_merge(base, {"metrics": {"port": port}})


def policy(allow_external: bool, metrics_from: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"networkPolicy": {"enabled": True, "allowExternal": allow_external, "ingressFrom": [INGRESS_NGINX],
                              "metricsFrom": metrics_from, **extra}}


def server_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = find(docs, "Deployment", FULL)["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == "server"
    return container


def ingress_rules(values: dict[str, Any]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = find(manifests(render(values), own=True), "NetworkPolicy", FULL)["spec"]["ingress"]
    return rules


def rules_for(rules: list[dict[str, Any]], port: str) -> list[dict[str, Any]]:
    return [r for r in rules if {"port": port, "protocol": "TCP"} in r["ports"]]


@pytest.fixture(scope="module")
def dependency_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chart, _ = chart_with_redis(tmp_path_factory.mktemp("chart"))
    return chart


# ---- set: every object points at the metrics port ------------------------------------------------


def test_deployment_listens_on_the_metrics_port_and_tells_f2f() -> None:
    container = server_container(manifests(render(with_port(MONITORED))))
    assert container["ports"] == [
        {"name": "http", "containerPort": 8000, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["F2F_METRICS_PORT"] == {"name": "F2F_METRICS_PORT", "value": "9090"}
    # What the pod gets parses with the real settings code, as the port the container declares.
    assert Settings.from_env({"F2F_METRICS_PORT": env["F2F_METRICS_PORT"]["value"]}, env_file=None).metrics_port == 9090
    # Probes stay on the API port: the metrics port answers 404 for everything but /metrics.
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "http"


def test_only_the_server_gets_the_metrics_port() -> None:
    values = with_port(deep_merge(MONITORED, {"phase": "redis", "externalRedis": {"url": "redis://cache:6379/0"}}))
    for doc in manifests(render(values)):
        spec = doc.get("spec", {})
        template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template")
        if not template or doc["metadata"]["name"] == FULL:
            continue
        for container in template["spec"]["containers"]:
            assert "F2F_METRICS_PORT" not in {e["name"] for e in container.get("env", [])}, doc["metadata"]["name"]
            assert not container.get("ports"), doc["metadata"]["name"]


def test_service_and_service_monitor_follow_the_metrics_port() -> None:
    docs = manifests(render(with_port(MONITORED)))
    service = find(docs, "Service", FULL)
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"},
    ]
    monitor = find(docs, "ServiceMonitor", FULL)
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["path"] == "/metrics"
    _check_service_monitor(monitor, docs)
    # The Ingress keeps routing to the API port only.
    ingress = find(manifests(render(with_port(deep_merge(MONITORED, {"ingress": {"enabled": True}})))), "Ingress", FULL)
    backends = [p["backend"]["service"]["port"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]]
    assert backends == [{"name": "http"}]


def test_scrapers_reach_the_metrics_port_through_their_own_rule_and_not_the_api() -> None:
    rules = ingress_rules(with_port(deep_merge(DEFAULTS_PLUS_DB, policy(False, [PROMETHEUS]))))
    (api,) = rules_for(rules, "http")
    (scrape,) = rules_for(rules, "metrics")
    assert api["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert PROMETHEUS not in api["from"]
    assert INGRESS_NGINX in api["from"]
    assert scrape == {"ports": [{"port": "metrics", "protocol": "TCP"}], "from": [PROMETHEUS]}


def test_metrics_from_narrows_the_metrics_port_even_when_the_api_is_open() -> None:
    rules = ingress_rules(with_port(deep_merge(DEFAULTS_PLUS_DB, policy(True, [PROMETHEUS]))))
    assert rules == [
        {"ports": [{"port": "http", "protocol": "TCP"}]},
        {"ports": [{"port": "metrics", "protocol": "TCP"}], "from": [PROMETHEUS]},
    ]


def test_without_metrics_from_the_metrics_port_is_as_open_as_the_api() -> None:
    open_rules = ingress_rules(with_port(deep_merge(DEFAULTS_PLUS_DB, policy(True, []))))
    assert open_rules == [
        {"ports": [{"port": "http", "protocol": "TCP"}]},
        {"ports": [{"port": "metrics", "protocol": "TCP"}]},
    ]
    # Closed API, nobody named to scrape: no rule at all opens the metrics port (never an empty `from`,
    # which Kubernetes reads as "every source").
    closed_rules = ingress_rules(with_port(deep_merge(DEFAULTS_PLUS_DB, policy(False, []))))
    assert rules_for(closed_rules, "metrics") == []
    assert all(r.get("from") for r in closed_rules)


def test_restricted_egress_is_untouched_by_the_metrics_port() -> None:
    db = {"ports": [{"port": 5432, "protocol": "TCP"}]}
    values = deep_merge(DEFAULTS_PLUS_DB, policy(False, [PROMETHEUS], restrictEgress=True, egress=[db]))
    without = find(manifests(render(values), own=True), "NetworkPolicy", FULL)["spec"]["egress"]
    with_it = find(manifests(render(with_port(values)), own=True), "NetworkPolicy", FULL)["spec"]["egress"]
    assert with_it == without


@pytest.mark.parametrize(("name", "values"), RENDERABLE, ids=[c[0] for c in RENDERABLE])
def test_renders_with_a_metrics_port_are_valid_kubernetes(
    name: str, values: dict[str, Any], dependency_chart: Path
) -> None:
    """Every setup with metrics.port, the ServiceMonitor and a NetworkPolicy on, f2f's objects and Bitnami's."""
    on = deep_merge(values, {"metrics": {"serviceMonitor": {"enabled": True}}, "networkPolicy": {"enabled": True}})
    if not on["networkPolicy"].get("metricsFrom"):
        on["networkPolicy"]["metricsFrom"] = [PROMETHEUS]
    docs = manifests(render(with_port(on), dependency_chart))
    assert find(docs, "ServiceMonitor", FULL)["spec"]["endpoints"][0]["port"] == "metrics"
    assert rules_for(find(docs, "NetworkPolicy", FULL)["spec"]["ingress"], "metrics")
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":
            _check_service_monitor(doc, docs)
            continue
        if doc["kind"] == "PrometheusRule":
            continue
        for version in KUBE_VERSIONS:
            kube_validate(doc, version)
        assert doc["metadata"]["namespace"] == NAMESPACE


def test_helm_lint_strict_with_a_metrics_port(dependency_chart: Path) -> None:
    report = helm_lint_python(dependency_chart, with_port(MONITORED))
    assert [m for m in report["messages"] if m["severity"] > INFO] == []


# ---- unset: nothing changes ------------------------------------------------------------------------


@pytest.mark.parametrize("off", [None, ""], ids=["null", "empty"])
def test_without_a_metrics_port_nothing_changes(off: Any) -> None:
    base = deep_merge(MONITORED, policy(False, [PROMETHEUS]))
    docs = manifests(render(with_port(base, off)))
    assert docs == manifests(render(base))
    assert "metrics" not in {p["name"] for p in server_container(docs)["ports"]}
    assert "F2F_METRICS_PORT" not in {e["name"] for e in server_container(docs)["env"]}
    assert [p["name"] for p in find(docs, "Service", FULL)["spec"]["ports"]] == ["http"]
    assert find(docs, "ServiceMonitor", FULL)["spec"]["endpoints"][0]["port"] == "http"
    # The scrapers still come in through the API port, as before.
    (rule,) = find(docs, "NetworkPolicy", FULL)["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert PROMETHEUS in rule["from"]


def test_default_is_off() -> None:
    assert load_values(CHART / "values.yaml")["metrics"]["port"] is None
    assert coalesced_values(DEFAULTS_PLUS_DB)["metrics"].get("port") is None


# ---- refused values --------------------------------------------------------------------------------


@pytest.mark.parametrize(("server_port", "metrics_port"), [(8000, 8000), (9090, 9090)])
def test_metrics_port_equal_to_the_api_port_fails_the_render(server_port: int, metrics_port: int) -> None:
    values = deep_merge(DEFAULTS_PLUS_DB, {"server": {"port": server_port}, "metrics": {"port": metrics_port}})
    with pytest.raises(helm_python.HelmError, match=rf"metrics.port \({metrics_port}\) is server.port"):
        render(values)
    # Moving either one renders.
    assert render(deep_merge(values, {"metrics": {"port": metrics_port + 1}}))
    assert render(deep_merge(values, {"server": {"port": server_port + 1}}))


def test_metrics_port_equal_to_the_service_port_fails_the_render() -> None:
    values = deep_merge(DEFAULTS_PLUS_DB, {"service": {"port": 9090}, "metrics": {"port": 9090}})
    with pytest.raises(helm_python.HelmError, match=r"metrics.port \(9090\) is service.port"):
        render(values)
    assert render(deep_merge(values, {"metrics": {"port": 9091}}))


@pytest.mark.parametrize(
    ("port", "ok"),
    [(None, True), ("", True), (1, True), (9090, True), (65535, True),
     (0, False), (65536, False), (-1, False), ("9090", False), (90.5, False)],
)
def test_schema_takes_a_port_or_nothing(port: Any, ok: bool) -> None:
    errors = list(jsonschema.Draft7Validator(SCHEMA).iter_errors(coalesced_values(with_port(DEFAULTS_PLUS_DB, port))))
    assert (errors == []) is ok, errors


def test_schema_range_of_the_metrics_port_is_the_settings_range() -> None:
    from f2f_cli.errors import ConfigError

    for ok in (1, 65535):
        assert Settings.from_env({"F2F_METRICS_PORT": str(ok)}, env_file=None).metrics_port == ok
    for bad in (0, 65536):
        assert list(jsonschema.Draft7Validator(SCHEMA).iter_errors(coalesced_values(with_port(DEFAULTS_PLUS_DB, bad))))
        with pytest.raises(ConfigError, match="F2F_METRICS_PORT"):
            Settings.from_env({"F2F_METRICS_PORT": str(bad)}, env_file=None)
