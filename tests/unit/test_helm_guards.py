"""Values that would deploy something broken fail the render (or the schema) with a message saying what to set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml

from f2f_cli.errors import ConfigError
from f2f_cli.settings import Settings
from tests.unit.helm_support import (
    CHART,
    DEFAULTS_PLUS_DB,
    RELEASE,
    deep_merge,
    find,
    load_values,
    manifests,
    render,
    vendored_redis_archive,
)

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
FULL = f"{RELEASE}-f2f"
DB_RULE = {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "db"}}}],
           "ports": [{"port": 5432, "protocol": "TCP"}]}


def ci(name: str) -> dict[str, Any]:
    return load_values(CHART / "ci" / f"{name}-values.yaml")


def with_db(override: dict[str, Any]) -> dict[str, Any]:
    return deep_merge(DEFAULTS_PLUS_DB, override)


# ---- PodDisruptionBudget and HPA ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"server": {"replicaCount": 1}}, r"minAvailable 1\) with 1 server pod"),
        ({"server": {"replicaCount": 3}, "podDisruptionBudget": {"minAvailable": 3}}, "lets no pod be evicted"),
        ({"server": {"replicaCount": 3}, "podDisruptionBudget": {"minAvailable": "100%"}}, "lets no pod be evicted"),
        ({"server": {"replicaCount": 1}, "podDisruptionBudget": {"minAvailable": "50%"}}, "lets no pod be evicted"),
        ({"podDisruptionBudget": {"maxUnavailable": 0}}, r"maxUnavailable 0\)"),
        ({"podDisruptionBudget": {"maxUnavailable": "0%"}}, "lets no pod be evicted"),
        ({"autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 5}}, "autoscaling.minReplicas"),
        ({"autoscaling": {"enabled": True, "minReplicas": 6, "maxReplicas": 3}},
         r"minReplicas \(6\) is above autoscaling.maxReplicas \(3\)"),
    ],
)
def test_contradicting_disruption_and_scaling_values_fail(override: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmError, match=message):
        render(with_db(override))


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({}, {"minAvailable": 1}),
        ({"server": {"replicaCount": 1}, "podDisruptionBudget": {"maxUnavailable": 1}}, {"maxUnavailable": 1}),
        ({"server": {"replicaCount": 1}, "podDisruptionBudget": {"maxUnavailable": "10%"}}, {"maxUnavailable": "10%"}),
        ({"server": {"replicaCount": 4}, "podDisruptionBudget": {"minAvailable": "50%"}}, {"minAvailable": "50%"}),
        ({"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 2}}, {"minAvailable": 1}),
    ],
)
def test_disruption_budgets_that_let_a_pod_go_render(override: dict[str, Any], expected: dict[str, Any]) -> None:
    pdb = find(manifests(render(with_db(override))), "PodDisruptionBudget", FULL)
    assert {k: v for k, v in pdb["spec"].items() if k != "selector"} == expected


def test_one_replica_renders_without_the_budget() -> None:
    docs = manifests(render(with_db({"server": {"replicaCount": 1}, "podDisruptionBudget": {"enabled": False}})))
    assert not [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert find(docs, "Deployment", FULL)["spec"]["replicas"] == 1


# ---- NetworkPolicy egress ------------------------------------------------------------------------


def egress_of(values: dict[str, Any]) -> list[dict[str, Any]]:
    policy = find(manifests(render(values), own=True), "NetworkPolicy", FULL)
    rules: list[dict[str, Any]] = policy["spec"]["egress"]
    return rules


def restricted(base: dict[str, Any], egress: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return deep_merge(base, {"networkPolicy": {"enabled": True, "restrictEgress": True, "egress": egress, **extra}})


@pytest.mark.parametrize("setup", ["standalone", "sentinel", "dev", "defaults"])
def test_restricted_egress_without_a_database_rule_fails_saying_what_to_add(setup: str) -> None:
    base = DEFAULTS_PLUS_DB if setup == "defaults" else ci(setup)
    with pytest.raises(helm_python.HelmError, match=r"add a rule for port 5432 to networkPolicy\.egress") as info:
        render(restricted(base, []))
    assert "namespaceSelector" in str(info.value)  # an example rule to paste
    # A rule for another port is not one for the database either.
    with pytest.raises(helm_python.HelmError, match="PostgreSQL"):
        render(restricted(base, [{"ports": [{"port": 6432, "protocol": "TCP"}]}]))


@pytest.mark.parametrize(
    "rule",
    [
        DB_RULE,
        {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]},  # no ports: every port
        {"ports": [{"port": 5000, "endPort": 6000, "protocol": "TCP"}]},
        {"ports": [{"port": "postgresql", "protocol": "TCP"}]},  # a named port cannot be checked: trusted
    ],
)
def test_any_rule_covering_the_database_port_is_enough(rule: dict[str, Any]) -> None:
    assert rule in egress_of(restricted(DEFAULTS_PLUS_DB, [rule]))


def test_database_port_can_be_moved() -> None:
    rule = {"ports": [{"port": 6432, "protocol": "TCP"}]}
    assert rule in egress_of(restricted(DEFAULTS_PLUS_DB, [rule], databasePort=6432))
    with pytest.raises(helm_python.HelmError, match="port 6432"):
        render(restricted(DEFAULTS_PLUS_DB, [DB_RULE], databasePort=6432))


@pytest.mark.parametrize(("setup", "ports"), [("standalone", [6379]), ("sentinel", [6379, 26379]), ("dev", [6379])])
def test_bundled_redis_egress_is_added(setup: str, ports: list[int]) -> None:
    rules = egress_of(restricted(ci(setup), [DB_RULE]))
    redis = [r for r in rules if r.get("to", [{}])[0].get("podSelector", {}).get("matchLabels", {}).get(
        "app.kubernetes.io/name") == "redis"]
    (rule,) = redis
    assert rule["to"] == [{"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "redis", "app.kubernetes.io/instance": RELEASE}}}]
    assert [p["port"] for p in rule["ports"]] == ports
    # DNS first, the release's own API (the helm test pod), then the user's rules.
    assert rules[0]["ports"][0]["port"] == 53
    assert {"port": "http", "protocol": "TCP"} in rules[1]["ports"]
    assert rules[-1] == DB_RULE


def test_no_redis_rule_without_the_bundled_redis() -> None:
    rules = egress_of(restricted(ci("external-cluster"), ci("external-cluster")["networkPolicy"]["egress"]))
    assert not [r for r in rules if "app.kubernetes.io/name" in json.dumps(r) and "redis" in json.dumps(r)]


def test_bitnami_client_label_only_when_its_policy_asks_for_it() -> None:
    def labels(values: dict[str, Any]) -> dict[str, str]:
        pod = find(manifests(render(values), own=True), "Deployment", FULL)["spec"]["template"]
        return dict(pod["metadata"]["labels"])

    assert "rel-redis-client" not in labels(ci("standalone"))
    closed = deep_merge(ci("standalone"), {"redis": {"networkPolicy": {"allowExternal": False}}})
    assert labels(closed)["rel-redis-client"] == "true"
    cron = find(manifests(render(closed), own=True), "CronJob", f"{FULL}-purge")
    assert cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]["rel-redis-client"] == "true"


# ---- shutdown ------------------------------------------------------------------------------------


def test_grace_period_must_cover_prestop_and_uvicorns_drain() -> None:
    with pytest.raises(helm_python.HelmError, match=r"must exceed server.preStopSleepSeconds \(5\) \+ "
                                                     r"server.gracefulShutdownSeconds \(25\) = 30"):
        render(with_db({"server": {"gracefulShutdownSeconds": 25}}))
    docs = manifests(render(with_db({"server": {"gracefulShutdownSeconds": 25, "terminationGracePeriodSeconds": 31}})))
    pod = find(docs, "Deployment", FULL)["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 31
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["F2F_GRACEFUL_SHUTDOWN_SECONDS"] == "25"


def test_default_shutdown_budget_is_consistent_with_the_code() -> None:
    server = load_values(CHART / "values.yaml")["server"]
    assert server["terminationGracePeriodSeconds"] > server["preStopSleepSeconds"] + server["gracefulShutdownSeconds"]
    assert Settings.from_env({}, env_file=None).graceful_shutdown_seconds == server["gracefulShutdownSeconds"]


def test_schema_range_of_graceful_shutdown_is_the_settings_range() -> None:
    bounds = SCHEMA["properties"]["server"]["properties"]["gracefulShutdownSeconds"]
    low, high = bounds["minimum"], bounds["maximum"]
    for ok in (low, high):
        settings = Settings.from_env({"F2F_GRACEFUL_SHUTDOWN_SECONDS": str(ok)}, env_file=None)
        assert settings.graceful_shutdown_seconds == ok
    for bad in (low - 1, high + 1):
        with pytest.raises(ConfigError, match="F2F_GRACEFUL_SHUTDOWN_SECONDS"):
            Settings.from_env({"F2F_GRACEFUL_SHUTDOWN_SECONDS": str(bad)}, env_file=None)


# ---- the hooks-off migration Job ------------------------------------------------------------------


def hooks_off_job_name(override: dict[str, Any]) -> str:
    docs = manifests(render(deep_merge(ci("hooks-off"), override)))
    (job,) = [d for d in docs if d["kind"] == "Job"]
    name: str = job["metadata"]["name"]
    return name


@pytest.mark.parametrize(
    "override",
    [
        {"image": {"digest": "sha256:" + "f" * 64}},
        {"migrations": {"resources": {"limits": {"memory": "512Mi"}}}},
        {"commonLabels": {"team": "kitchen"}},
        {"config": {"F2F_LOG_LEVEL": "debug"}},  # the ConfigMap changes, the Job does not: same name
        {"extraEnv": [{"name": "TZ", "value": "Asia/Seoul"}]},
        {"migrations": {"backoffLimit": 5}},
        {"podSecurityContext": {"runAsUser": 10002}},
    ],
)
def test_hooks_off_job_name_follows_the_whole_job(override: dict[str, Any]) -> None:
    base = hooks_off_job_name({})
    changed = hooks_off_job_name(override)
    template_changes = "config" not in override
    assert (changed != base) is template_changes, (override, base, changed)


def test_hooks_off_job_name_ignores_other_workloads() -> None:
    base = hooks_off_job_name({})
    assert hooks_off_job_name({"server": {"replicaCount": 5, "resources": {"limits": {"memory": "1Gi"}}}}) == base
    assert base.startswith(f"{FULL}-migrate-") and len(base) == len(f"{FULL}-migrate-") + 8


# ---- the schema: closed where f2f sets values ------------------------------------------------------


def _keys_of(node: dict[str, Any]) -> set[str]:
    return set(node["properties"])


@pytest.mark.skipif(vendored_redis_archive() is None, reason="no vendored Bitnami chart beside the checkout")
def test_closed_redis_sections_list_exactly_bitnamis_keys() -> None:
    import tarfile

    archive = vendored_redis_archive()
    assert archive is not None
    with tarfile.open(archive) as tar:
        member = tar.extractfile("redis/values.yaml")
        assert member is not None
        bitnami = yaml.safe_load(member.read())
    redis = SCHEMA["properties"]["redis"]
    # f2f adds `enabled` (the dependency condition); Helm adds `common` (Bitnami's library chart).
    assert _keys_of(redis) == set(bitnami) | {"enabled", "common"}
    checked = 0
    for key, sub in redis["properties"].items():
        if sub.get("additionalProperties") is False:
            assert _keys_of(sub) == set(bitnami[key]), key
            for inner, inner_sub in sub["properties"].items():
                if inner_sub.get("additionalProperties") is False:
                    assert _keys_of(inner_sub) == set(bitnami[key][inner]), f"{key}.{inner}"
                    checked += 1
            checked += 1
    # Every section f2f's values.yaml sets is closed.
    f2f_sets = load_values(CHART / "values.yaml")["redis"]
    for key, value in f2f_sets.items():
        if isinstance(value, dict):
            assert redis["properties"][key].get("additionalProperties") is False, key
    assert checked >= 15


@pytest.mark.parametrize(("definition", "kind"), [("podSecurityContext", "podsecuritycontext-v1"),
                                                   ("securityContext", "securitycontext-v1")])
def test_security_contexts_are_closed_on_the_newest_kubernetes_fields(definition: str, kind: str) -> None:
    schema_dir = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    newest = schema_dir / f"v{kubernetes_validate.latest_version()}-local-strict" / f"{kind}.json"
    fields = set(json.loads(newest.read_text())["properties"])
    ours = SCHEMA["definitions"][definition]
    assert ours["additionalProperties"] is False
    assert set(ours["properties"]) == fields
    for name in ("podSecurityContext", "securityContext"):
        assert SCHEMA["properties"][name] == {"$ref": f"#/definitions/{name}"}


def test_shipped_security_contexts_pass_and_typos_fail() -> None:
    validator = jsonschema.Draft7Validator(SCHEMA)
    values = load_values(CHART / "values.yaml")
    assert list(validator.iter_errors(values)) == []
    values["securityContext"]["runAsNonroot"] = True
    (error,) = validator.iter_errors(values)
    assert "runAsNonroot" in error.message
