"""The chart rendered with Bitnami's real redis chart (vendored in ../shared), as a new user installs it.

Every reference f2f makes into Bitnami's objects (Service, port, Secret, pod labels, container
ports) must point at something Bitnami really renders, for every release name Helm accepts;
the images must be ones a cluster can pull; the ci values must give the Redis they promise.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import helm_python
import kubernetes_validate
import pytest
import yaml

from tests.unit.helm_support import (
    CHART,
    NAMESPACE,
    chart_with_real_redis,
    containers,
    deep_merge,
    find,
    is_subchart_template,
    kube_validate,
    load_values,
    manifests,
    notes,
    pod_specs,
    render,
    vendored_redis_archive,
)

ARCHIVE = vendored_redis_archive()
pytestmark = pytest.mark.skipif(
    ARCHIVE is None, reason="no ../shared/vendor/charts/redis-<version>.tgz beside the checkout"
)
BUNDLED = ("standalone", "sentinel", "dev")
# Names `helm install` accepts (checked below with Helm's own validator): dots, digits, the 53-character limit.
RELEASE_NAMES = ["rel", "team.f2f", "a.b.c", "shop-redis", "f2f", "v1.2.3-canary", "team.f2f.prod-eu.x"]
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Longest names Kubernetes takes: Services are DNS-1035 labels, Job names become a pod label,
# CronJobs leave 11 characters for the Jobs they create.
MAX_NAME = {"Service": 63, "Job": 63, "CronJob": 52, "StatefulSet": 63}


@pytest.fixture(scope="module")
def real_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert ARCHIVE is not None
    return chart_with_real_redis(tmp_path_factory.mktemp("real"), ARCHIVE)


def ci(name: str) -> dict[str, Any]:
    return load_values(CHART / "ci" / f"{name}-values.yaml")


def bitnami_objects(rendered: dict[str, str]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if is_subchart_template(path) and not path.endswith("NOTES.txt"):
            docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def bitnami_notes(rendered: dict[str, str]) -> str:
    return next(text for path, text in rendered.items() if path.endswith("charts/redis/templates/NOTES.txt"))


def server_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [
        d
        for d in docs
        if d["kind"] == "Deployment" and d["metadata"]["labels"]["app.kubernetes.io/component"] == "server"
    ]
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def redis_pods(bitnami: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pod templates of Bitnami's Redis StatefulSets."""
    return [d["spec"]["template"] for d in bitnami if d["kind"] == "StatefulSet"]


def check_references(rendered: dict[str, str]) -> None:
    """Everything f2f points at in Bitnami's render exists there."""
    docs = manifests(rendered)
    bitnami = bitnami_objects(rendered)
    assert bitnami, "Bitnami rendered nothing"
    env = env_of(server_container(docs))
    url = urlsplit(env["F2F_REDIS_URL"].replace("$(REDIS_PASSWORD)", "pw"))
    host, port = url.hostname, url.port
    assert host and host.endswith(".svc"), host
    service_name, namespace, _ = host.split(".")
    service = find(bitnami, "Service", service_name)
    assert service["metadata"]["namespace"] == namespace
    assert port in [p["port"] for p in service["spec"]["ports"]], (port, service["spec"]["ports"])
    pods = redis_pods(bitnami)
    assert pods
    for pod in pods:
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    # The password: the Secret Bitnami's pods read, under the same key.
    secret_refs: set[tuple[str, str]] = set()
    for pod in pods:
        for volume in pod["spec"].get("volumes", []):
            if "secret" in volume:
                for item in volume["secret"].get("items", []):
                    secret_refs.add((volume["secret"]["secretName"], item["key"]))
        for container in pod["spec"]["containers"]:
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    secret_refs.add((ref["name"], ref["key"]))
    if "REDIS_PASSWORD" in env:
        ref = env["REDIS_PASSWORD"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) in secret_refs, (ref, secret_refs)
        assert url.password == "pw"
    else:
        assert url.password is None
        assert not secret_refs
    # With restricted egress, the rule f2f adds reaches those pods on their container ports.
    own = manifests(rendered, own=True)
    policies = [d for d in own if d["kind"] == "NetworkPolicy" and "Egress" in d["spec"]["policyTypes"]]
    for policy in policies:
        redis_rules = [
            r for r in policy["spec"]["egress"]
            if any("podSelector" in peer and pods[0]["metadata"]["labels"].items()
                   >= peer["podSelector"]["matchLabels"].items() for peer in r.get("to", []))
        ]
        assert redis_rules, "no egress rule reaches the Redis pods"
        ports = {p["port"] for r in redis_rules for p in r["ports"]}
        container_ports = {p["containerPort"] for pod in pods for c in pod["spec"]["containers"] for p in c["ports"]}
        assert ports <= container_ports, (ports, container_ports)
        assert port in ports or url.scheme == "redis+sentinel"


def check_names(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        name = doc["metadata"]["name"]
        where = f"{doc['kind']} {name}"
        assert len(name) <= MAX_NAME.get(doc["kind"], 253), where
        pattern = DNS1035 if doc["kind"] == "Service" else DNS1123_SUBDOMAIN
        assert pattern.match(name), where


# ---- references ----------------------------------------------------------------------------


@pytest.mark.parametrize("release", RELEASE_NAMES)
@pytest.mark.parametrize("setup", BUNDLED)
def test_every_reference_matches_bitnami_for_any_release_name(release: str, setup: str, real_chart: Path) -> None:
    helm_python.validate_release_name(release)  # Helm itself accepts the name
    values = deep_merge(ci(setup), {
        "networkPolicy": {
            "enabled": True,
            "restrictEgress": True,
            "egress": [{"ports": [{"port": 5432, "protocol": "TCP"}]}],
        },
    })
    rendered = render(values, real_chart, release=release)
    check_references(rendered)
    check_names(manifests(rendered))


def test_a_dotted_release_gets_the_names_bitnami_gives(real_chart: Path) -> None:
    docs = manifests(render(ci("standalone"), real_chart, release="team.f2f"))
    assert find(docs, "Service", "team-f2f")["spec"]["type"] == "ClusterIP"
    assert find(docs, "Service", "team-f2f-redis-master")
    env = env_of(server_container(docs))
    assert env["F2F_REDIS_URL"] == f"redis://:$(REDIS_PASSWORD)@team-f2f-redis-master.{NAMESPACE}.svc:6379/0"
    # Label values may keep the dot: both charts select on the release name as given.
    assert find(docs, "Deployment", "team-f2f")["metadata"]["labels"]["app.kubernetes.io/instance"] == "team.f2f"


def test_longest_release_names_fail_with_what_to_set(real_chart: Path) -> None:
    release = "team." + "x" * 48  # 53 characters, the most Helm allows
    helm_python.validate_release_name(release)
    with pytest.raises(helm_python.HelmError, match=r"redis\.fullnameOverride"):
        render(ci("standalone"), real_chart, release=release)
    values = deep_merge(ci("standalone"), {"redis": {"fullnameOverride": "cache"}})
    rendered = render(values, real_chart, release=release)
    check_references(rendered)
    check_names(manifests(rendered))
    # Without the bundled Redis the long name renders as it is (f2f cuts its own suffixed names).
    check_names(manifests(render(ci("external-cluster"), real_chart, release=release)))


def test_a_release_name_starting_with_a_digit_fails_with_what_to_set(real_chart: Path) -> None:
    helm_python.validate_release_name("1shop")
    with pytest.raises(helm_python.HelmError, match="fullnameOverride"):
        render(ci("standalone"), real_chart, release="1shop")
    values = deep_merge(ci("standalone"), {"fullnameOverride": "shop-f2f", "redis": {"fullnameOverride": "shop-redis"}})
    rendered = render(values, real_chart, release="1shop")
    check_references(rendered)
    check_names(manifests(rendered))


# ---- images ----------------------------------------------------------------------------------


def everything_bitnami_can_run() -> dict[str, Any]:
    """Sentinel plus every optional Bitnami container (exporter, init containers, kubectl)."""
    return deep_merge(ci("sentinel"), {"redis": {
        "metrics": {"enabled": True},
        "volumePermissions": {"enabled": True},
        "sysctl": {"enabled": True},
        # kubectl labels the master pod for the master Service, with the RBAC Bitnami asks for.
        "sentinel": {"masterService": {"enabled": True}},
        "rbac": {"create": True},
        "replica": {"automountServiceAccountToken": True},
    }})


def released_images() -> dict[str, str]:
    """repository -> tag of the images the vendored chart was released with (its Chart.yaml annotation)."""
    import tarfile

    assert ARCHIVE is not None
    with tarfile.open(ARCHIVE) as tar:
        member = tar.extractfile("redis/Chart.yaml")
        assert member is not None
        chart = yaml.safe_load(member.read())
    images: dict[str, str] = {}
    for entry in yaml.safe_load(chart["annotations"]["images"]):
        repository, tag = entry["image"].rsplit(":", 1)
        images[repository] = tag
    return images


def test_bitnami_images_come_from_the_legacy_catalog_at_their_released_tags(real_chart: Path) -> None:
    released = released_images()
    assert all(r.startswith("docker.io/bitnami/") for r in released)
    rendered = render(everything_bitnami_can_run(), real_chart)
    images = {c["image"] for _, c in containers(bitnami_objects(rendered))}
    assert len(images) == len(released)  # every image Bitnami ships is in use here
    for image in images:
        repository, tag = image.rsplit(":", 1)
        assert repository.startswith("docker.io/bitnamilegacy/"), image
        assert released[repository.replace("/bitnamilegacy/", "/bitnami/")] == tag, image
    assert "Verifying original container images was skipped" in bitnami_notes(rendered)


def test_values_pin_the_released_tags() -> None:
    values = load_values(CHART / "values.yaml")["redis"]
    released = released_images()
    blocks = [values["image"], *(values[k]["image"] for k in ("sentinel", "metrics", "volumePermissions", "sysctl",
                                                               "kubectl"))]
    for block in blocks:
        original = "docker.io/" + block["repository"].replace("bitnamilegacy/", "bitnami/")
        assert released[original] == block["tag"], block


def test_bitnami_refuses_the_legacy_images_without_allow_insecure_images(real_chart: Path) -> None:
    values = deep_merge(ci("standalone"), {"global": {"security": {"allowInsecureImages": False}}})
    with pytest.raises(helm_python.HelmError, match="allowInsecureImages"):
        render(values, real_chart)


def test_one_setting_moves_every_bitnami_image_to_a_mirror(real_chart: Path) -> None:
    values = deep_merge(everything_bitnami_can_run(), {"global": {"imageRegistry": "mirror.example.com"}})
    rendered = render(values, real_chart)
    images = {c["image"] for _, c in containers(bitnami_objects(rendered))}
    assert images and all(i.startswith("mirror.example.com/bitnamilegacy/") for i in images), images
    # f2f's own image is configured on its own (image.repository).
    assert {c["image"] for _, c in containers(manifests(rendered, own=True))} == {"ghcr.io/fridge2fork/f2f:0.1.0"}


# ---- resources, auth, the plan's values ------------------------------------------------------------


@pytest.mark.parametrize("setup", BUNDLED)
def test_every_bitnami_container_has_resources(setup: str, real_chart: Path) -> None:
    for values in (ci(setup), everything_bitnami_can_run()):
        rendered = render(values, real_chart)
        for doc, container in containers(bitnami_objects(rendered)):
            resources = container.get("resources", {})
            assert resources.get("requests") and resources.get("limits", {}).get("memory"), (
                doc["metadata"]["name"], container["name"])
        assert "resourcesPreset" not in bitnami_notes(rendered)


def test_sentinel_resources_are_the_chart_values(real_chart: Path) -> None:
    bitnami = bitnami_objects(render(ci("sentinel"), real_chart))
    (node,) = [d for d in bitnami if d["kind"] == "StatefulSet"]
    by_name = {c["name"]: c for c in node["spec"]["template"]["spec"]["containers"]}
    sentinel = load_values(CHART / "values.yaml")["redis"]["sentinel"]["resources"]
    assert by_name["sentinel"]["resources"] == sentinel
    assert node["spec"]["replicas"] == 3


def test_dev_values_are_the_plans_redis(real_chart: Path) -> None:
    values = ci("dev")
    assert values["redis"] == {
        "enabled": True,
        "architecture": "standalone",
        "auth": {"enabled": False},
        "master": {
            "persistence": {"enabled": False},
            "resources": {"requests": {"memory": "256Mi", "cpu": "100m"}, "limits": {"memory": "512Mi", "cpu": "200m"}},
        },
    }
    rendered = render(values, real_chart)
    bitnami = bitnami_objects(rendered)
    master = find(bitnami, "StatefulSet", "rel-redis-master")
    (redis,) = master["spec"]["template"]["spec"]["containers"]
    assert {"name": "ALLOW_EMPTY_PASSWORD", "value": "yes"} in redis["env"]
    assert redis["resources"] == values["redis"]["master"]["resources"]
    assert "volumeClaimTemplates" not in master["spec"]
    assert not [d for d in bitnami if d["kind"] in ("Secret", "PersistentVolumeClaim")]
    env = env_of(server_container(manifests(rendered)))
    assert env["F2F_REDIS_URL"] == f"redis://rel-redis-master.{NAMESPACE}.svc:6379/0"
    assert "REDIS_PASSWORD" not in env
    assert "no password" in notes(rendered)


@pytest.mark.parametrize("setup", ["standalone", "sentinel"])
def test_production_values_use_an_existing_secret_that_stays_put(setup: str, real_chart: Path) -> None:
    values = ci(setup)
    assert values["redis"]["auth"]["existingSecret"] == "f2f-redis"
    first, second = (render(values, real_chart) for _ in range(2))
    assert first == second  # what a GitOps tool applies does not change between syncs
    bitnami = bitnami_objects(first)
    assert not [d for d in bitnami if d["kind"] == "Secret"]
    env = env_of(server_container(manifests(first)))
    assert env["REDIS_PASSWORD"] == {"secretKeyRef": {"name": "f2f-redis", "key": "redis-password"}}
    check_references(first)


def test_a_generated_password_changes_on_every_offline_render(real_chart: Path) -> None:
    """Why production sets existingSecret: Bitnami draws a new password each time `helm template` runs."""
    values = deep_merge(ci("standalone"), {"redis": {"auth": {"existingSecret": "", "existingSecretPasswordKey": ""}}})
    passwords = []
    for _ in range(2):
        rendered = render(values, real_chart)
        passwords.append(find(bitnami_objects(rendered), "Secret", "rel-redis")["data"]["redis-password"])
        check_references(rendered)
    assert passwords[0] != passwords[1]
    assert "redis.auth.existingSecret" in notes(rendered)


def test_the_whole_render_is_valid_kubernetes_for_every_bitnami_container(real_chart: Path) -> None:
    for doc in manifests(render(everything_bitnami_can_run(), real_chart)):
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue
        kube_validate(doc, kubernetes_validate.latest_version())
    for _, spec in pod_specs(bitnami_objects(render(ci("sentinel"), real_chart))):
        assert spec["securityContext"]["fsGroup"] == 1001  # Bitnami's own non-root defaults stay


def test_redis_in_another_namespace_is_found_there(real_chart: Path) -> None:
    values = deep_merge(ci("sentinel"), {
        "redis": {"namespaceOverride": "cache"},
        "networkPolicy": {"enabled": True, "restrictEgress": True,
                          "egress": [{"ports": [{"port": 5432, "protocol": "TCP"}]}]},
    })
    rendered = render(values, real_chart)
    check_references(rendered)
    assert {d["metadata"]["namespace"] for d in bitnami_objects(rendered)} == {"cache"}
    env = env_of(server_container(manifests(rendered)))
    assert env["F2F_REDIS_URL"] == "redis+sentinel://:$(REDIS_PASSWORD)@rel-redis.cache.svc:26379/mymaster"
    policy = find(manifests(rendered, own=True), "NetworkPolicy", "rel-f2f")
    peers = [peer for rule in policy["spec"]["egress"] for peer in rule.get("to", []) if "namespaceSelector" in peer]
    assert peers == [{
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "redis", "app.kubernetes.io/instance": "rel"}},
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "cache"}},
    }]
    # A generated password would live in the other namespace only, out of f2f's reach.
    generated = deep_merge(values, {"redis": {"auth": {"existingSecret": ""}}})
    with pytest.raises(helm_python.HelmError, match="in both namespaces"):
        render(generated, real_chart)
