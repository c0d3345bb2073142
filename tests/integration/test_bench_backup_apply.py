"""scripts/bench_backup_apply.py: the worker's SQL half alone, on a database of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_backup_apply.py"

pytestmark = pytest.mark.postgres


def _databases(admin: str) -> set[str]:
    with psycopg.connect(admin, autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def test_a_small_run_reports_per_batch_and_per_entry_costs_and_drops_its_database(pg_url: str) -> None:
    admin = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--database-url", admin, "--batch", "5", "--rounds", "3", "--sessions", "20"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["batch"] == 5 and report["rounds"] == 3
    assert report["ms_per_batch"] > 0
    assert report["us_per_entry"] == pytest.approx(report["ms_per_batch"] * 1000 / 5, rel=0.05)
    assert report["database"].startswith("f2f_bench_")
    assert report["database"] not in _databases(admin)  # dropped afterwards


def test_a_batch_larger_than_the_sessions_is_refused_before_anything_is_created(pg_url: str) -> None:
    admin = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--database-url", admin, "--batch", "50", "--sessions", "20"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "--batch <= --sessions" in done.stderr and "Traceback" not in done.stderr
