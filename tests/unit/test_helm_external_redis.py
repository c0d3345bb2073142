"""An external Redis Cluster or Sentinel group from structured values: the chart builds ``F2F_REDIS_URL``,
the schema checks the parts, and what reaches the pod parses with f2f's own URL parser (issue #28)."""

from __future__ import annotations

import json
from typing import Any

import helm_python
import jsonschema
import pytest

from f2f_cli.redis.client import parse_redis_url
from tests.unit.helm_support import CHART, DEFAULTS_PLUS_DB, deep_merge, manifests, render

SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def redis_url(external: dict[str, Any], phase: str = "redis") -> str:
    docs = manifests(render(deep_merge(DEFAULTS_PLUS_DB, {"phase": phase, "externalRedis": external})))
    (deployment,) = [d for d in docs if d["kind"] == "Deployment" and "worker" not in d["metadata"]["name"]]
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    value: str = env["F2F_REDIS_URL"]["value"]
    return value


def test_a_cluster_url_is_built_from_its_nodes() -> None:
    url = redis_url({"cluster": {"nodes": ["redis-0.cache.svc:6379", "redis-1.cache.svc:6379"]}, "password": "pw"})
    assert url == "redis+cluster://:$(REDIS_PASSWORD)@redis-0.cache.svc:6379,redis-1.cache.svc:6379"
    target = parse_redis_url(url.replace("$(REDIS_PASSWORD)", "pw"))
    assert target.mode == "cluster" and target.password == "pw"
    assert target.hosts == (("redis-0.cache.svc", 6379), ("redis-1.cache.svc", 6379))
    assert redis_url({"cluster": {"nodes": ["c:7000"]}, "tls": True}) == "rediss+cluster://c:7000"


def test_a_sentinel_url_is_built_from_its_hosts_and_master_set() -> None:
    url = redis_url({"sentinel": {"hosts": ["s0:26379", "s1:26379"], "masterSet": "sessions", "db": 2},
                     "username": "f2f", "existingSecret": "f2f-redis"})
    assert url == "redis+sentinel://f2f:$(REDIS_PASSWORD)@s0:26379,s1:26379/sessions/2"
    target = parse_redis_url(url)
    assert (target.mode, target.service_name, target.db) == ("sentinel", "sessions", 2)
    assert redis_url({"sentinel": {"hosts": ["s0:26379"]}}) == "redis+sentinel://s0:26379/mymaster/0"


def test_the_bundled_redis_stays_the_default() -> None:
    docs = manifests(render(deep_merge(DEFAULTS_PLUS_DB, {"phase": "dual", "redis": {"enabled": True}})))
    assert any("redis://" in json.dumps(d) for d in docs if d["kind"] == "Deployment")


def test_two_redis_sources_fail_the_render() -> None:
    with pytest.raises(helm_python.HelmError, match=r"one of url, cluster\.nodes or sentinel\.hosts"):
        redis_url({"url": "redis://cache:6379/0", "cluster": {"nodes": ["c:7000"]}})


@pytest.mark.parametrize("external", [
    {"cluster": {"nodes": ["no-port"]}},
    {"cluster": {"nodes": ["a b:7000"]}},
    {"cluster": {"nodes": ["user:pw@c:7000"]}},
    {"sentinel": {"hosts": ["s:26379"], "masterSet": "my master"}},
    {"sentinel": {"hosts": ["s:26379"], "db": 16}},
    {"cluster": {"node": ["c:7000"]}},
])
def test_the_schema_refuses_malformed_parts(external: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(external, SCHEMA["properties"]["externalRedis"])
