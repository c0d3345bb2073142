"""The chart's alerts and dashboard: rendered where asked, and every metric they read is one f2f exports."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from starlette.testclient import TestClient

from f2f_cli.api.app import create_app
from f2f_cli.db import migrate as schema
from tests.conftest import make_settings
from tests.unit.helm_support import CHART, DEFAULTS_PLUS_DB, NAMESPACE, RELEASE, deep_merge, find, manifests, render

FULL = f"{RELEASE}-f2f"
ON: dict[str, Any] = deep_merge(
    DEFAULTS_PLUS_DB,
    {"metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
                 "grafanaDashboard": {"enabled": True}}},
)
ALERTS = {
    "F2FBackupStreamLag",
    "F2FRedisUntrusted",
    "F2FRedisCircuitOpen",
    "F2FHighErrorRatio",
    "F2FInstanceOnOldEpoch",
    "F2FRedisAutoFailover",
    "F2FRedisShardDown",
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every series name a real app's GET /metrics exposes (after some traffic), histogram/counter suffixes included."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('metrics') / 'f2f.db'}"
    schema.upgrade(url)
    app = create_app(make_settings(F2F_DATABASE_URL=url, F2F_METRICS_REFRESH_SECONDS="0.001"))
    with TestClient(app) as client:
        created = client.post("/v1/sessions")
        assert created.status_code == 201, created.text
        sid = created.json()["session_id"]
        assert client.post(f"/v1/sessions/{sid}/ingredients", json={"ingredients": ["두부"]}).status_code == 200
        assert client.get(f"/v1/sessions/{sid}").status_code == 200
        # Loads the recommender's index (its labelled counter has no series before that).
        assert client.get(f"/v1/sessions/{sid}/recommendations").status_code == 200
        text = client.get("/metrics").text
    names: set[str] = set()
    # A counter's TYPE line already names its _total series; a histogram's names the family.
    suffixes = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.update(name + suffix for suffix in suffixes.get(kind, ("",)))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects, from Prometheus's own grammar (promql-parser); a syntax error fails.

    Grafana's ``$__rate_interval`` is replaced by a duration first (``$namespace`` and the like only
    appear inside label-value strings, which PromQL takes as they are).
    """
    import promql_parser

    tree = promql_parser.parse(expr.replace("$__rate_interval", "5m"))
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql_parser.walk(tree, visit)
    return names


def test_the_extractor_finds_metrics_and_nothing_else() -> None:
    expr = ('sum by (route) (rate(f2f_http_requests_total{status=~"5..",job="$job"}[$__rate_interval])) / on (job) '
            "group_left max(f2f_phase_epoch offset 5m) > bool 0.05")
    assert metric_names(expr) == {"f2f_http_requests_total", "f2f_phase_epoch"}
    with pytest.raises(ValueError, match="parenthesis"):
        metric_names("sum by (route (rate(f2f_http_requests_total[5m]))")


def rule_docs(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in manifests(render(values)) if d["kind"] == "PrometheusRule"]


def test_nothing_is_rendered_unless_asked() -> None:
    docs = manifests(render(DEFAULTS_PLUS_DB))
    assert not [d for d in docs if d["kind"] == "PrometheusRule"]
    assert not [d for d in docs if d["metadata"].get("labels", {}).get("grafana_dashboard")]


def test_prometheus_rule_has_the_alerts_the_operators_need() -> None:
    (rule,) = rule_docs(deep_merge(ON, {"metrics": {"prometheusRule": {"labels": {"release": "prometheus"}}}}))
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    rules = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    assert {r["alert"] for r in rules} == ALERTS
    for r in rules:
        assert r["labels"]["severity"] in ("warning", "critical")
        assert r["annotations"]["summary"] and r["annotations"]["description"]
        # Scoped to this release's series, as the ServiceMonitor labels them (job = the Service name).
        assert f'namespace="{NAMESPACE}",job="{FULL}"' in r["expr"], r["alert"]
    by_name = {r["alert"]: r for r in rules}
    assert by_name["F2FBackupStreamLag"]["expr"].endswith("> 30")
    # Per shard (a Redis primary), so one lagging primary fires though the others are drained.
    assert "by (namespace, job, shard)" in by_name["F2FBackupStreamLag"]["expr"]
    assert "$labels.shard" in by_name["F2FBackupStreamLag"]["annotations"]["summary"]
    assert by_name["F2FRedisCircuitOpen"]["expr"].count('state="open"') == 1
    assert "f2f_redis_failovers_total" in by_name["F2FRedisAutoFailover"]["expr"]
    assert "for" not in by_name["F2FRedisAutoFailover"]  # an event: fire at once
    assert "$labels.pod" in by_name["F2FInstanceOnOldEpoch"]["annotations"]["summary"]
    assert 'f2f_redis_shard_state{' in by_name["F2FRedisShardDown"]["expr"]
    assert 'state!="ok"' in by_name["F2FRedisShardDown"]["expr"]
    assert "$labels.shard" in by_name["F2FRedisShardDown"]["annotations"]["summary"]


# The PrometheusRule spec as the Prometheus Operator's CRD (monitoring.coreos.com/v1) types it: no CRD
# schema ships with kubernetes-validate, so the fields the chart uses are checked here.
DURATION = "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
RULE_SPEC = {
    "type": "object",
    "additionalProperties": False,
    "required": ["groups"],
    "properties": {"groups": {"type": "array", "minItems": 1, "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "rules"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "interval": {"type": "string", "pattern": DURATION},
            "rules": {"type": "array", "minItems": 1, "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["alert", "expr"],
                "properties": {
                    "alert": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                    "expr": {"type": "string", "minLength": 1},
                    "for": {"type": "string", "pattern": DURATION},
                    "keep_firing_for": {"type": "string", "pattern": DURATION},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            }},
        },
    }}},
}


def test_prometheus_rule_matches_the_operators_crd() -> None:
    import jsonschema

    (rule,) = rule_docs(ON)
    assert set(rule) == {"apiVersion", "kind", "metadata", "spec"}
    jsonschema.validate(rule["spec"], RULE_SPEC)
    names = [r["alert"] for group in rule["spec"]["groups"] for r in group["rules"]]
    assert len(names) == len(set(names))


def test_rule_thresholds_and_selector_come_from_values() -> None:
    values = deep_merge(ON, {"metrics": {"prometheusRule": {
        "selector": 'app="f2f"', "backupLagSeconds": 120, "errorRatio": 0.01, "for": "10m"}}})
    (rule,) = rule_docs(values)
    rules = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert rules["F2FBackupStreamLag"]["expr"].endswith("> 120")
    assert rules["F2FHighErrorRatio"]["expr"].rstrip().endswith("> 0.01")
    assert rules["F2FRedisUntrusted"]["for"] == "10m"
    assert 'f2f_redis_trusted{app="f2f"}' in rules["F2FRedisUntrusted"]["expr"]
    assert 'f2f_redis_circuit_state{app="f2f",state="open"}' in rules["F2FRedisCircuitOpen"]["expr"]


def test_every_metric_in_the_rules_is_exported(exported: set[str]) -> None:
    (rule,) = rule_docs(ON)
    used = set()
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            names = metric_names(r["expr"])
            assert names, r["alert"]
            used |= names
    assert used - exported == set()
    assert {"f2f_backup_shard_oldest_age_seconds", "f2f_redis_trusted", "f2f_redis_circuit_state",
            "f2f_http_requests_total", "f2f_phase_epoch", "f2f_redis_failovers_total",
            "f2f_redis_shard_state"} <= used


def dashboard_configmap() -> dict[str, Any]:
    return find(manifests(render(ON)), "ConfigMap", f"{FULL}-dashboard")


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def test_dashboard_configmap_is_found_by_grafanas_sidecar() -> None:
    configmap = dashboard_configmap()
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    (name,) = configmap["data"]
    dashboard = json.loads(configmap["data"][name])
    assert dashboard == json.loads((CHART / "dashboards" / "f2f.json").read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace", "job"} <= variables
    for expr in dashboard_exprs(dashboard):
        assert 'namespace="$namespace",job="$job"' in expr, expr


def test_dashboard_covers_what_the_issue_lists() -> None:
    dashboard = json.loads((CHART / "dashboards" / "f2f.json").read_text())
    exprs = "\n".join(dashboard_exprs(dashboard))
    wanted = {
        "request rate by route": "sum by (method, route) (rate(f2f_http_requests_total",
        "latency by route": "sum by (route, le) (rate(f2f_http_request_duration_seconds_bucket",
        "store latency by backend": "sum by (backend, operation, le) (rate(f2f_store_operation_duration_seconds_bucket",
        "phase": "f2f_phase{",
        "epoch": "f2f_phase_epoch{",
        "backup lag per shard": "max by (shard) (f2f_backup_shard_oldest_age_seconds",
        "backup backlog per shard": "max by (shard) (f2f_backup_shard_backlog",
        "breaker": "f2f_redis_circuit_state",
        "sessions": "f2f_sessions{",
        "recommender": "f2f_recommender_index_recipes",
    }
    missing = [topic for topic, needle in wanted.items() if needle not in exprs]
    assert missing == []


def test_every_metric_in_the_dashboard_is_exported(exported: set[str]) -> None:
    dashboard = json.loads((CHART / "dashboards" / "f2f.json").read_text())
    used: set[str] = set()
    for expr in dashboard_exprs(dashboard):
        names = metric_names(expr)
        assert names, expr
        used |= names
    for variable in dashboard["templating"]["list"]:
        query = variable.get("definition", "")
        match = re.match(r"label_values\((.*),\s*\w+\)$", query)
        if match:
            used |= metric_names(match.group(1))
    assert used - exported == set()
    assert len(used) >= 15


def test_the_exported_set_is_real(exported: set[str]) -> None:
    """The fixture reads a live /metrics: a name f2f never declares is not in it."""
    assert "f2f_http_requests_total" in exported
    assert "f2f_http_request_duration_seconds_bucket" in exported
    assert "f2f_no_such_metric" not in exported
