"""``schemathesis run <url>/openapi.json --checks all`` against a real ``f2f serve``: the embedded default
(nothing configured: SQLite file, no Redis) and the ``redis`` phase (PostgreSQL + Redis).

Every check schemathesis has, every phase (coverage, fuzzing, stateful). The one accepted finding is
recorded, with its reason, in ``schemathesis-baseline.json`` (schemathesis's own mechanism for it):
a GET of the fridge after a DELETE on it answers 200, by design.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from f2f_cli.control import phase as control
from f2f_cli.control.phase import Phase
from f2f_cli.db.engine import create_engine_for
from tests.conftest import make_settings
from tests.servers import f2f_server

BASELINE = Path(__file__).with_name("schemathesis-baseline.json")
MAX_EXAMPLES = "25"


def schemathesis_run(base: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    baseline = workdir / "baseline.json"
    shutil.copy(BASELINE, baseline)  # schemathesis never gets to rewrite the committed file
    argv = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{base}/openapi.json",
        "--checks", "all",
        "--max-examples", MAX_EXAMPLES,
        "--workers", "1",
        "--baseline", str(baseline),
        "--generation-database", "none",
        "--no-color",
        "--request-timeout", "10",
    ]
    done = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=900, check=False)
    print(done.stdout[-4000:])
    return done


def _assert_clean(done: subprocess.CompletedProcess[str]) -> None:
    out = done.stdout
    assert done.returncode == 0, out[-6000:] + done.stderr[-2000:]
    # Every phase ran and the operations were reached, not skipped.
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in out or f"✅  {phase}" in out, phase
    assert "Tested: 19" in out
    counts = re.search(r"(\d+) generated, (\d+) passed", out)
    assert counts is not None and counts.group(1) == counts.group(2) and int(counts.group(1)) > 500, out[-2000:]


def test_embedded_default_passes_every_check(tmp_path: Path) -> None:
    # Nothing configured: f2f creates ./f2f.db itself, with the default rate limit and limits.
    with f2f_server({}, cwd=tmp_path) as base:
        _assert_clean(schemathesis_run(base, tmp_path))


@pytest.mark.postgres
@pytest.mark.redis
def test_redis_phase_passes_every_check(pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    env = {
        "F2F_DATABASE_URL": pg_url,
        "F2F_REDIS_URL": redis_url,
        "F2F_REDIS_KEY_PREFIX": redis_prefix,
        # The shared 2-core machine can stall one Redis call past the 50 ms default, which in this
        # phase is a 503 (not what this test is about).
        "F2F_REDIS_COMMAND_TIMEOUT": "1",
    }

    async def to_redis_phase() -> None:
        engine = create_engine_for(make_settings(**env))
        try:
            for step in (Phase.DUAL_WRITE, Phase.DUAL, Phase.REDIS):
                await control.set_phase(engine, step, actor="test", action="test")
        finally:
            await engine.dispose()

    asyncio.run(to_redis_phase())
    with f2f_server(env, cwd=tmp_path) as base:
        import httpx

        assert httpx.get(f"{base}/readyz", timeout=10).json()["phase"] == "redis"
        _assert_clean(schemathesis_run(base, tmp_path))
