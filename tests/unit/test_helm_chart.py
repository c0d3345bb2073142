"""The Helm chart: schema, lint and offline render with the real Helm engine, Kubernetes validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.unit.helm_support import (
    CHART,
    CI_VALUES,
    DATABASE_URL,
    DEFAULTS_PLUS_DB,
    ERROR,
    INFO,
    MISSING_REDIS,
    NAMESPACE,
    RELEASE,
    VENDORED_CHARTS,
    WARNING,
    chart_with_redis,
    coalesced_values,
    containers,
    declared_redis_version,
    deep_merge,
    find,
    helm_lint_python,
    helm_lint_sdkpy,
    kube_validate,
    load_values,
    manifests,
    notes,
    pod_specs,
    render,
    vendored_redis_archive,
)

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
CASES: list[tuple[str, dict[str, Any]]] = [("defaults", {}), *((p.name, load_values(p)) for p in CI_VALUES)]
# What the chart can render: the defaults need a database URL (the chart refuses to guess one).
RENDERABLE = [(name, values or DEFAULTS_PLUS_DB) for name, values in CASES]
FULL = f"{RELEASE}-f2f"
# The chart's kubeVersion floor and the newest schema kubernetes-validate ships.
KUBE_VERSIONS = ["1.27.0", kubernetes_validate.latest_version()]


@pytest.fixture(scope="module")
def dependency_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart with Bitnami's real redis chart in charts/ (the empty stand-in only without ../shared)."""
    chart, _ = chart_with_redis(tmp_path_factory.mktemp("chart"))
    return chart


def ci(name: str) -> dict[str, Any]:
    return load_values(CHART / "ci" / f"{name}-values.yaml")


def server_env(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    deployment = find(docs, "Deployment", FULL)
    env: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    return env


def env_value(env: list[dict[str, Any]], name: str) -> Any:
    (entry,) = [e for e in env if e["name"] == name]
    return entry.get("value", entry.get("valueFrom"))


# ---- the ci values files and the schema ------------------------------------------------------


def test_ci_values_cover_the_five_setups() -> None:
    assert {p.name for p in CI_VALUES} == {
        "standalone-values.yaml",
        "sentinel-values.yaml",
        "external-cluster-values.yaml",
        "hooks-off-values.yaml",
        "dev-values.yaml",
    }


def test_ci_renders_with_bitnamis_real_chart(tmp_path: Path) -> None:
    """CI's clone has ../shared beside it: the stand-in must never stand in silently there."""
    import os

    archive = vendored_redis_archive()
    if os.environ.get("CI") == "true":
        assert archive is not None, f"CI without {VENDORED_CHARTS}/redis-{declared_redis_version()}.tgz"
    chart, real = chart_with_redis(tmp_path)
    assert real is (archive is not None)
    sub = yaml.safe_load((chart / "charts" / "redis" / "Chart.yaml").read_text())
    assert sub["version"] == declared_redis_version()
    if real:
        assert (chart / "charts" / "redis" / "charts" / "common" / "Chart.yaml").is_file()
        assert (chart / "charts" / "redis" / "templates").is_dir()


def test_schema_is_a_valid_strict_draft7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    assert SCHEMA["additionalProperties"] is False
    # Every section the chart owns is closed; only Kubernetes objects and the subchart pass through.
    for key, sub in SCHEMA["properties"].items():
        owned = key not in ("global", "redis", "config", "commonLabels")
        if owned and sub.get("type") == "object" and "properties" in sub:
            assert sub["additionalProperties"] is False, key


@pytest.mark.parametrize(("name", "values"), CASES, ids=[c[0] for c in CASES])
def test_values_pass_the_schema(name: str, values: dict[str, Any]) -> None:
    merged = coalesced_values(values)
    errors = [e.message for e in jsonschema.Draft7Validator(SCHEMA).iter_errors(merged)]
    assert errors == []
    with helm_python.Chart.load(CHART) as chart:
        chart.validate_schema(values)  # Helm's own validator agrees


BROKEN: list[tuple[str, dict[str, Any]]] = [
    ("unknown phase", {"phase": "cassandra"}),
    ("typo at the top level", {"replicaCount": 3}),
    ("typo inside a section", {"server": {"replicas": 3}}),
    ("number where a count is expected", {"server": {"replicaCount": "3"}}),
    ("credential in the ConfigMap", {"config": {"F2F_DATABASE_URL": "postgresql://x@db/f2f"}}),
    ("non-F2F key in config", {"config": {"LOG_LEVEL": "info"}}),
    ("bad log level", {"config": {"F2F_LOG_LEVEL": "verbose"}}),
    ("unquoted number in config", {"config": {"F2F_MAX_INGREDIENTS": 100}}),
    ("F2F setting through extraEnv", {"extraEnv": [{"name": "F2F_LOG_LEVEL", "value": "debug"}]}),
    ("password inside externalRedis.url", {"externalRedis": {"url": "redis://:pw@cache:6379/0"}}),
    ("unsupported Redis scheme", {"externalRedis": {"url": "memcached://cache:11211"}}),
    ("evicting maxmemory-policy", {"redis": {"master": {"extraFlags": ["--maxmemory-policy allkeys-lru"]}}}),
    ("worker.enabled not a switch", {"worker": {"enabled": "yes"}}),
    ("typo under redis", {"redis": {"archtecture": "replication"}}),
    ("typo under redis.auth", {"redis": {"auth": {"existingSecert": "f2f-redis"}}}),
    ("typo under redis.sentinel", {"redis": {"sentinel": {"quorom": 2}}}),
    ("typo under redis.master", {"redis": {"master": {"resource": {}}}}),
    ("typo in a Redis image", {"redis": {"image": {"repo": "bitnamilegacy/redis"}}}),
    ("typo in podSecurityContext", {"podSecurityContext": {"runAsNonroot": True}}),
    ("typo in securityContext", {"securityContext": {"readOnlyRootFilesytem": True}}),
    ("typo in seccompProfile", {"securityContext": {"seccompProfile": {"typ": "RuntimeDefault"}}}),
    ("typo in resources", {"server": {"resources": {"limit": {"memory": "1Gi"}}}}),
    ("graceful shutdown out of range", {"server": {"gracefulShutdownSeconds": 301}}),
    ("PDB as a fraction", {"podDisruptionBudget": {"minAvailable": "0.5"}}),
    ("release name override with a dot", {"fullnameOverride": "team.f2f"}),
    ("graceful shutdown through config", {"config": {"F2F_GRACEFUL_SHUTDOWN_SECONDS": "10"}}),
    ("metrics port through config", {"config": {"F2F_METRICS_PORT": "9090"}}),
    ("metrics port 0", {"metrics": {"port": 0}}),
    ("metrics port above 65535", {"metrics": {"port": 65536}}),
    ("metrics port as a string", {"metrics": {"port": "9090"}}),
]


@pytest.mark.parametrize(("name", "override"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_values_are_rejected(name: str, override: dict[str, Any]) -> None:
    for base_name, base in CASES:
        values = deep_merge(base, override)
        merged = coalesced_values(values)
        errors = list(jsonschema.Draft7Validator(SCHEMA).iter_errors(merged))
        assert errors, f"{name} on top of {base_name} passed the schema"
    with helm_python.Chart.load(CHART) as chart, pytest.raises(helm_python.HelmError):
        chart.validate_schema(deep_merge(DEFAULTS_PLUS_DB, override))


def test_a_broken_ci_values_file_is_rejected(tmp_path: Path) -> None:
    text = (CHART / "ci" / "sentinel-values.yaml").read_text().replace("masterSet:", "masterset:")
    text = text.replace("phase: dual", "phase: duall")
    broken = yaml.safe_load(text)
    messages = sorted(e.message for e in jsonschema.Draft7Validator(SCHEMA).iter_errors(coalesced_values(broken)))
    assert any("duall" in m for m in messages), messages
    with helm_python.Chart.load(CHART) as chart, pytest.raises(helm_python.HelmError):
        chart.validate_schema(broken)


# ---- lint --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "values"), CASES, ids=[c[0] for c in CASES])
def test_helm_lint_strict_as_shipped(name: str, values: dict[str, Any]) -> None:
    """The chart as committed: the only finding is the Bitnami dependency not vendored here."""
    report = helm_lint_python(CHART, values)
    problems = [(m["severity"], m["error"]) for m in report["messages"] if m["severity"] > INFO]
    assert problems == [(WARNING, MISSING_REDIS)]


@pytest.mark.parametrize(("name", "values"), CASES, ids=[c[0] for c in CASES])
def test_helm_lint_strict_with_the_dependency_present(
    name: str, values: dict[str, Any], dependency_chart: Path
) -> None:
    report = helm_lint_python(dependency_chart, values)
    assert [m for m in report["messages"] if m["severity"] > INFO] == []
    assert report["errors"] == []


@pytest.mark.parametrize(("name", "values"), CASES, ids=[c[0] for c in CASES])
def test_helm_sdkpy_lint(name: str, values: dict[str, Any], tmp_path: Path) -> None:
    """helm-sdkpy lints a directory with its own values.yaml: write the coalesced values into copies."""
    shipped = tmp_path / "shipped"
    present = tmp_path / "present"
    for dest, make in ((shipped, None), (present, chart_with_redis)):
        dest.mkdir()
        chart = make(dest)[0] if make else _copy(CHART, dest / "f2f")
        (chart / "values.yaml").write_text(yaml.safe_dump(coalesced_values(values), sort_keys=False))
        report = helm_lint_sdkpy(chart)
        assert report["Errors"] is None
        assert report["TotalChartsLinted"] == 1
        severities = sorted(m["Severity"] for m in report["Messages"])
        assert all(s < ERROR for s in severities), report
        # helm-sdkpy drops the message texts; the warning count still tells the dependency apart.
        assert severities.count(WARNING) == (1 if make is None else 0), report


def _copy(src: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(src, dest)
    return dest


# ---- offline render, validated against the Kubernetes API schemas -----------------------------


@pytest.mark.parametrize(("name", "values"), RENDERABLE, ids=[c[0] for c in RENDERABLE])
def test_rendered_manifests_are_valid_kubernetes(name: str, values: dict[str, Any], dependency_chart: Path) -> None:
    """Every object, f2f's and Bitnami's, against the strict API schemas of the oldest and newest Kubernetes."""
    docs = manifests(render(values, dependency_chart))
    assert docs
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":
            _check_service_monitor(doc, docs)
            continue
        if doc["kind"] == "PrometheusRule":
            assert doc["spec"]["groups"][0]["rules"]
            continue
        for version in KUBE_VERSIONS:
            kube_validate(doc, version)
        assert doc["metadata"]["namespace"] == NAMESPACE
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE


def _check_service_monitor(monitor: dict[str, Any], docs: list[dict[str, Any]]) -> None:
    """No schema for the Prometheus Operator CRD here: check it points at the Service's /metrics."""
    assert monitor["kind"] == "ServiceMonitor"
    service = find(docs, "Service", FULL)
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}


def test_render_with_and_without_the_dependency_agree(dependency_chart: Path) -> None:
    """f2f's own objects do not depend on whether Bitnami's chart is there (its defaults are mirrored)."""
    for _, values in RENDERABLE:
        assert manifests(render(values, dependency_chart), own=True) == manifests(render(values))


def test_defaults_alone_refuse_to_render_without_a_database() -> None:
    with pytest.raises(helm_python.HelmError, match=r"database\.url"):
        render({})


def test_phase_beyond_postgres_needs_redis() -> None:
    with pytest.raises(helm_python.HelmError, match="needs Redis"):
        render(deep_merge(DEFAULTS_PLUS_DB, {"phase": "dual"}))


def test_bundled_and_external_redis_are_exclusive() -> None:
    values = deep_merge(ci("standalone"), {"externalRedis": {"url": "redis://cache:6379/0"}})
    with pytest.raises(helm_python.HelmError, match="not both"):
        render(values)


# ---- what the manifests say ---------------------------------------------------------------


def test_server_deployment() -> None:
    docs = manifests(render(DEFAULTS_PLUS_DB))
    deployment = find(docs, "Deployment", FULL)
    spec = deployment["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    pod = spec["template"]
    assert {"checksum/config", "checksum/secret"} <= pod["metadata"]["annotations"].keys()
    (server,) = pod["spec"]["containers"]
    assert server["command"] == ["f2f"]
    assert server["args"][:1] == ["serve"]
    assert server["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert server["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert server["resources"]["requests"] and server["resources"]["limits"]
    assert server["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    assert pod["spec"]["terminationGracePeriodSeconds"] > int(server["lifecycle"]["preStop"]["exec"]["command"][1])
    assert {c["topologyKey"] for c in pod["spec"]["topologySpreadConstraints"]} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    for constraint in pod["spec"]["topologySpreadConstraints"]:
        assert constraint["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]


@pytest.mark.parametrize(("name", "values"), RENDERABLE, ids=[c[0] for c in RENDERABLE])
def test_every_pod_is_locked_down(name: str, values: dict[str, Any]) -> None:
    docs = manifests(render(values))
    specs = list(pod_specs(docs))
    assert specs
    for doc, spec in specs:
        where = f"{doc['kind']} {doc['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["capabilities"]["drop"] == ["ALL"], where
            assert ctx["runAsNonRoot"] is True, where
            assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert container["resources"]["limits"]["memory"], where
            if doc["kind"] != "Pod":  # the helm test pod writes nothing
                mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
                assert mounts["/tmp"] == "tmp", where
                (tmp,) = [v for v in spec["volumes"] if v["name"] == "tmp"]
                assert "emptyDir" in tmp, where


def test_checksums_roll_pods_when_configuration_changes() -> None:
    def annotations(values: dict[str, Any]) -> dict[str, str]:
        pod = find(manifests(render(values)), "Deployment", FULL)["spec"]["template"]
        return {k: v for k, v in pod["metadata"]["annotations"].items() if k.startswith("checksum/")}

    base = annotations(DEFAULTS_PLUS_DB)
    config = annotations(deep_merge(DEFAULTS_PLUS_DB, {"config": {"F2F_LOG_LEVEL": "debug"}}))
    secret = annotations(deep_merge(DEFAULTS_PLUS_DB, {"database": {"url": DATABASE_URL + "?sslmode=require"}}))
    assert config["checksum/config"] != base["checksum/config"]
    assert config["checksum/secret"] == base["checksum/secret"]
    assert secret["checksum/secret"] != base["checksum/secret"]
    assert secret["checksum/config"] == base["checksum/config"]


def test_seeding_the_catalog_can_be_turned_off() -> None:
    docs = manifests(render(deep_merge(DEFAULTS_PLUS_DB, {"migrations": {"seedRecipes": False}})))
    (container,) = find(docs, "Job", f"{FULL}-migrate")["spec"]["template"]["spec"]["containers"]
    assert container["command"] + container["args"] == ["f2f", "migrate", "db", "upgrade"]


def test_migration_job_is_a_pre_install_hook_with_its_configuration_available() -> None:
    docs = manifests(render(DEFAULTS_PLUS_DB))
    job = find(docs, "Job", f"{FULL}-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    assert job["spec"]["backoffLimit"] >= 1
    assert job["spec"]["activeDeadlineSeconds"] > 0
    (container,) = job["spec"]["template"]["spec"]["containers"]
    # The schema first, then the built-in catalog (migrations.seedRecipes, on by default).
    assert container["command"] + container["args"] == ["sh", "-c", "f2f migrate db upgrade && f2f recipes seed"]
    # The regular ConfigMap/Secret do not exist yet at pre-install: the Job reads hook-time copies
    # created before it (lower weight).
    db = env_value(container["env"], "F2F_DATABASE_URL")["secretKeyRef"]
    (config_from,) = container["envFrom"]
    for kind, name in (("Secret", db["name"]), ("ConfigMap", config_from["configMapRef"]["name"])):
        source = find(docs, kind, name)
        hook = source["metadata"]["annotations"]
        assert "pre-install" in hook["helm.sh/hook"]
        assert int(hook["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
        assert "before-hook-creation" in hook["helm.sh/hook-delete-policy"]
    hook_secret = find(docs, "Secret", db["name"])
    regular_secret = find(docs, "Secret", FULL)
    assert hook_secret["data"] == regular_secret["data"]
    assert find(docs, "ConfigMap", config_from["configMapRef"]["name"])["data"] == find(docs, "ConfigMap", FULL)["data"]
    # The chart's ServiceAccount is not there yet either.
    assert "serviceAccountName" not in job["spec"]["template"]["spec"]


def test_migration_with_an_existing_secret_needs_no_hook_secret() -> None:
    docs = manifests(render(ci("standalone")))
    job = find(docs, "Job", f"{FULL}-migrate")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert env_value(container["env"], "F2F_DATABASE_URL")["secretKeyRef"] == {"name": "f2f-database", "key": "url"}
    assert not [d for d in docs if d["kind"] == "Secret"]
    # Migration never needs Redis (its Secret may not exist before the release).
    assert {e["name"] for e in container["env"]} == {"F2F_INSTANCE_NAME", "F2F_DATABASE_URL"}


def test_hooks_off_mode_for_gitops() -> None:
    docs = manifests(render(ci("hooks-off")))
    jobs = [d for d in docs if d["kind"] == "Job"]
    (job,) = jobs
    assert "helm.sh/hook" not in job["metadata"].get("annotations", {})
    assert job["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400
    assert job["metadata"]["name"].startswith(f"{FULL}-migrate-")
    assert not [d for d in docs if "helm.sh/hook" in d["metadata"].get("annotations", {}) and d["kind"] != "Pod"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"] == [{"configMapRef": {"name": FULL}}]
    # A new image is a new Job (a Job's pod template cannot change).
    other = manifests(render(deep_merge(ci("hooks-off"), {"image": {"digest": "sha256:" + "f" * 64}})))
    (other_job,) = [d for d in other if d["kind"] == "Job"]
    assert other_job["metadata"]["name"] != job["metadata"]["name"]
    # The API pods wait for the schema instead.
    pod = find(docs, "Deployment", FULL)["spec"]["template"]["spec"]
    (wait,) = pod["initContainers"]
    assert "f2f migrate db current" in wait["args"][0]
    assert pod["serviceAccountName"] == "f2f-runtime"
    assert not [d for d in docs if d["kind"] == "ServiceAccount"]


@pytest.mark.parametrize(
    ("phase_values", "worker"),
    [("defaults", False), ("standalone", False), ("sentinel", False), ("external-cluster", True), ("hooks-off", False)],
)
def test_worker_runs_in_the_redis_phase(phase_values: str, worker: bool) -> None:
    values = DEFAULTS_PLUS_DB if phase_values == "defaults" else ci(phase_values)
    docs = manifests(render(values))
    workers = [d for d in docs if d["metadata"]["name"] == f"{FULL}-worker"]
    assert len(workers) == int(worker)
    if worker:
        (container,) = workers[0]["spec"]["template"]["spec"]["containers"]
        assert container["command"] + container["args"] == ["f2f", "worker"]
        assert workers[0]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_worker_switch_overrides_the_phase() -> None:
    forced_on = manifests(render(deep_merge(ci("standalone"), {"worker": {"enabled": True}})))
    forced_off = manifests(render(deep_merge(ci("external-cluster"), {"worker": {"enabled": False}})))
    assert [d for d in forced_on if d["metadata"]["name"] == f"{FULL}-worker"]
    assert not [d for d in forced_off if d["metadata"]["name"] == f"{FULL}-worker"]


@pytest.mark.parametrize(("name", "values"), RENDERABLE, ids=[c[0] for c in RENDERABLE])
def test_purge_cronjob(name: str, values: dict[str, Any]) -> None:
    docs = manifests(render(values))
    cron = find(docs, "CronJob", f"{FULL}-purge")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    argv = container["command"] + container["args"]
    assert argv[:3] == ["f2f", "sessions", "purge"]
    assert "--batch-size" in argv
    off = manifests(render(deep_merge(values, {"purge": {"enabled": False}})))
    assert not [d for d in off if d["kind"] == "CronJob"]


@pytest.mark.parametrize(
    ("name", "url", "password"),
    [
        ("standalone", f"redis://:$(REDIS_PASSWORD)@{RELEASE}-redis-master.{NAMESPACE}.svc:6379/0",
         {"name": "f2f-redis", "key": "redis-password"}),
        ("sentinel", f"redis+sentinel://:$(REDIS_PASSWORD)@{RELEASE}-redis.{NAMESPACE}.svc:26379/mymaster",
         {"name": "f2f-redis", "key": "redis-password"}),
        ("external-cluster", "redis+cluster://:$(REDIS_PASSWORD)@redis-cluster-0.redis-cluster.cache.svc:7000,"
         "redis-cluster-1.redis-cluster.cache.svc:7000",
         {"name": "f2f-redis", "key": "password"}),
    ],
)
def test_redis_url_gets_its_password_from_a_secret(name: str, url: str, password: dict[str, str]) -> None:
    env = server_env(manifests(render(ci(name))))
    names = [e["name"] for e in env]
    assert env_value(env, "F2F_REDIS_URL") == url
    assert env_value(env, "REDIS_PASSWORD") == {"secretKeyRef": password}
    # $(VAR) only expands variables defined earlier in the list.
    assert names.index("REDIS_PASSWORD") < names.index("F2F_REDIS_URL")


def test_external_redis_password_in_values_goes_to_the_chart_secret() -> None:
    values = deep_merge(
        DEFAULTS_PLUS_DB,
        {
            "phase": "dual",
            "externalRedis": {"url": "rediss://cache.example:6380/0", "username": "f2f", "password": "pw"},
        },
    )
    docs = manifests(render(values))
    env = server_env(docs)
    assert env_value(env, "F2F_REDIS_URL") == "rediss://f2f:$(REDIS_PASSWORD)@cache.example:6380/0"
    assert env_value(env, "REDIS_PASSWORD") == {"secretKeyRef": {"name": FULL, "key": "redis-password"}}
    assert set(find(docs, "Secret", FULL)["data"]) == {"database-url", "redis-password"}


def test_whole_redis_url_from_an_existing_secret() -> None:
    values = deep_merge(
        DEFAULTS_PLUS_DB,
        {"phase": "dual", "externalRedis": {"existingSecret": "cache", "existingSecretUrlKey": "url"}},
    )
    env = server_env(manifests(render(values)))
    assert env_value(env, "F2F_REDIS_URL") == {"secretKeyRef": {"name": "cache", "key": "url"}}
    assert "REDIS_PASSWORD" not in [e["name"] for e in env]


def test_bundled_redis_defaults_follow_the_issue() -> None:
    redis = coalesced_values({})["redis"]
    assert redis["enabled"] is False
    assert redis["architecture"] == "standalone"
    assert redis["auth"]["enabled"] is True
    for role in ("master", "replica"):
        assert redis[role]["persistence"]["enabled"] is False
        assert redis[role]["resources"] == {
            "requests": {"memory": "256Mi", "cpu": "100m"},
            "limits": {"memory": "512Mi", "cpu": "200m"},
        }
        flags = dict(f.removeprefix("--").split(" ", 1) for f in redis[role]["extraFlags"])
        assert flags["maxmemory"] == "400mb"  # below the 512Mi limit
        assert flags["maxmemory-policy"] in ("noeviction", "volatile-lru", "volatile-lfu", "volatile-ttl")


def test_service_ingress_pdb_hpa_networkpolicy() -> None:
    sentinel = manifests(render(ci("sentinel")))
    deployment = find(sentinel, "Deployment", FULL)
    assert "replicas" not in deployment["spec"]  # the HPA owns it
    hpa = find(sentinel, "HorizontalPodAutoscaler", FULL)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": FULL}
    assert find(sentinel, "PodDisruptionBudget", FULL)["spec"]["minAvailable"] == 2

    standalone = manifests(render(ci("standalone")))
    ingress = find(standalone, "Ingress", FULL)
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": FULL, "port": {"name": "http"}}
    service = find(standalone, "Service", FULL)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()

    cluster = manifests(render(ci("external-cluster")))
    policy = find(cluster, "NetworkPolicy", FULL)
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    sources = policy["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}} in sources
    assert not [d for d in standalone if d["kind"] == "NetworkPolicy"]


def test_notes_render_for_every_setup() -> None:
    for _, values in RENDERABLE:
        text = notes(render(values))
        assert f"helm test {RELEASE}" in text
        assert "README" in text


def test_containers_run_the_chart_image() -> None:
    docs = manifests(render(ci("hooks-off")))
    images = {c["image"] for _, c in containers(docs)}
    assert images == {"ghcr.io/fridge2fork/f2f@sha256:" + "0123456789abcdef" * 4}


def test_kubernetes_validation_catches_a_wrong_field() -> None:
    """The strict schemas bite: a misspelt field in a rendered Deployment is an error."""
    deployment = find(manifests(render(DEFAULTS_PLUS_DB)), "Deployment", FULL)
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[0], strict=True)
    for version in KUBE_VERSIONS:  # and so do the cached validators the render tests use
        with pytest.raises(kubernetes_validate.ValidationError):
            kube_validate(deployment, version)


def test_readme_values_table_is_current() -> None:
    import subprocess
    import sys

    from tests.unit.helm_support import ROOT

    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "helm_values_table.py"), "--check"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    readme = (CHART / "README.md").read_text()
    for key in ("phase", "config", "database.existingSecret", "externalRedis.url", "migrations.useHelmHooks",
                "redis.sentinel.enabled", "redis.master.extraFlags"):
        assert f"| `{key}` |" in readme
