"""Metrics and logs of a real ``f2f serve``: several workers aggregate, JSON logs keep secrets out."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx

from tests.api.test_observability import sample
from tests.servers import f2f_server


def _scrape(base: str) -> str:
    # A new connection each time, so the scrapes land on different workers.
    return httpx.get(f"{base}/metrics", headers={"Connection": "close"}, timeout=10).text


def test_workers_aggregate_through_the_multiprocess_directory(tmp_path: Path, sqlite_url: str) -> None:
    prom_dir = tmp_path / "prom"
    prom_dir.mkdir()
    stale = prom_dir / "counter_999999.db"
    stale.write_bytes(b"left over from an earlier run")
    env = {"F2F_DATABASE_URL": sqlite_url, "PROMETHEUS_MULTIPROC_DIR": str(prom_dir), "F2F_COOKIE_SECURE": "false",
           "F2F_METRICS_CACHE_SECONDS": "0"}
    with f2f_server(env, cwd=tmp_path, workers=2) as base:
        assert not stale.exists()  # cleaned at start
        route = "/v1/sessions"
        before = sample(_scrape(base), "f2f_http_requests_total", route=route, status="201") or 0
        sent = 30
        for _ in range(sent):
            r = httpx.post(f"{base}{route}", headers={"Connection": "close"}, timeout=10)
            assert r.status_code == 201
        seen = [sample(_scrape(base), "f2f_http_requests_total", route=route, status="201") for _ in range(6)]
        writers = {p.name.rsplit("_", 1)[-1] for p in prom_dir.glob("counter_*.db")}
    print(f"workers writing metrics: {len(writers)}; scraped totals: {seen}")
    assert seen == [before + sent] * 6
    assert len(writers) == 2  # both workers served and wrote their own files


def test_json_access_log_has_request_fields_and_no_secrets(tmp_path: Path, sqlite_url: str) -> None:
    env = {
        "F2F_DATABASE_URL": sqlite_url,
        "F2F_LOG_FORMAT": "json",
        # Nothing listens there: the rate limit falls back to memory and says so, without the password.
        "F2F_REDIS_URL": "redis://:hunter2secret@127.0.0.1:7601/0",
    }
    with f2f_server(env, cwd=tmp_path, log_level="info") as base:
        port = base.rsplit(":", 1)[1]
        created = httpx.post(f"{base}/v1/sessions", headers={"X-Request-ID": "probe-1"}, timeout=10)
        assert created.status_code == 201
        sid = created.json()["session_id"]
        r = httpx.post(f"{base}/v1/sessions/{sid}/ingredients", json={"ingredients": ["고추장"]}, timeout=10)
        assert r.status_code == 200
        log_file = tmp_path / f"f2f-serve-{port}.log"
        # The access line is written just after the response is sent: wait for it.
        deadline = time.monotonic() + 10
        while "/v1/sessions/{session_id}/ingredients" not in log_file.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        log_text = log_file.read_text()
    lines = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    access = [entry for entry in lines if entry["logger"] == "f2f.access"]
    probe = [entry for entry in access if entry.get("request_id") == "probe-1"]
    assert len(probe) == 1
    assert probe[0]["route"] == "/v1/sessions" and probe[0]["status"] == 201 and probe[0]["phase"] == "postgres"
    assert any(e["route"] == "/v1/sessions/{session_id}/ingredients" for e in access)
    assert any("rate limit falls back to memory" in e["message"] for e in lines)
    assert "hunter2secret" not in log_text
    assert sid not in log_text and "고추장" not in log_text
    assert os.environ.get("PROMETHEUS_MULTIPROC_DIR") is None
