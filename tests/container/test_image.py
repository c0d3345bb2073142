"""The container image, built for real and run the way a hardened pod runs it.

The image is built from this checkout with ``../shared/tools/container-image.sh`` (it installs podman
and makes the base image from Debian on first use; afterwards podman's layer cache makes a rebuild take
seconds) under a tag of its own, removed at the end; the cached base image and build layers stay.
Skipped, with the reason, only where podman cannot be had: not installed and no way to install it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest

from f2f_cli.bench.http import _free_port
from f2f_cli.db import migrate as schema
from f2f_cli.settings import Settings

# A cold build (podman installed, base image made, every wheel downloaded) takes minutes.
pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
TOOL = Path(os.environ.get("F2F_CONTAINER_IMAGE_TOOL") or ROOT.parent / "shared" / "tools" / "container-image.sh")
UID = "10001"


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"podman {' '.join(args)} exited {result.returncode}: {result.stderr[-2000:]}")
    return result


def podman_unavailable() -> str | None:
    """Why podman cannot be had here, or None when it is installed or the tool can install it."""
    if os.name != "posix":
        return "podman runs on Linux only"
    if shutil.which("podman") and os.geteuid() == 0:
        return None
    if os.geteuid() != 0:
        return f"the image is built rootful by {TOOL.name}, which needs root"
    if not TOOL.is_file():
        return f"podman is not installed and {TOOL} (which installs it) is missing"
    if not shutil.which("apt-get"):
        return "podman is not installed and there is no apt-get to install it"
    return None


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    reason = podman_unavailable()
    if reason:
        pytest.skip(reason)
    if not TOOL.is_file():
        pytest.skip(f"{TOOL} (which builds the image the way CI does) is missing")
    tag = f"localhost/f2f-test:{secrets.token_hex(4)}"
    started = time.monotonic()
    result = subprocess.run(["bash", str(TOOL), str(ROOT), tag], capture_output=True, text=True, timeout=1500,
                            check=False)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-3000:]
        if not shutil.which("podman"):
            pytest.skip(f"podman could not be installed by {TOOL.name}: {tail}")
        pytest.fail(f"the image did not build: {tail}")
    print(f"built {tag} in {time.monotonic() - started:.1f} s")
    try:
        yield tag
    finally:
        podman("rmi", "--force", tag, check=False)


@contextmanager
def container(*args: str) -> Iterator[str]:
    """``podman run -d`` with ``args``; the container and its anonymous volumes are removed afterwards."""
    name = f"f2f-test-{secrets.token_hex(4)}"
    podman("run", "--detach", "--name", name, *args)
    try:
        yield name
    finally:
        podman("rm", "--force", "--volumes", "--time", "5", name, check=False)


def wait_healthy(name: str, base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
        if state != "running":
            break
        time.sleep(0.2)
    logs = podman("logs", name, check=False)
    pytest.fail(f"{name} did not serve /healthz ({state}): {(logs.stdout + logs.stderr)[-2000:]}")


def get(url: str) -> tuple[int, Any]:
    response = httpx.get(url, timeout=10, trust_env=False)
    return response.status_code, response.json()


def healthcheck(name: str) -> tuple[int, str]:
    """Run the image's HEALTHCHECK now, as the engine would; (exit code, recorded status)."""
    run = podman("healthcheck", "run", name, check=False)
    status = podman("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip()
    return run.returncode, status


def test_runs_read_only_as_uid_10001_with_no_extra_flags(image: str) -> None:
    """The issue's reproduction: ``--read-only --user 10001`` and nothing else (the port published on loopback).

    ``--read-only-tmpfs=false`` drops the /tmp, /run and /var/tmp tmpfs podman adds by itself, so the
    container sees what docker's ``--read-only`` gives: the image's volume is the only writable place.
    """
    port = _free_port()
    flags = ["--read-only", "--read-only-tmpfs=false", "--user", UID, "--publish", f"127.0.0.1:{port}:8000"]
    with container(*flags, image) as name:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(name, base)
        status, body = get(f"{base}/readyz")
        assert (status, body["checks"]) == (200, {"sql": "ok"})
        created = httpx.post(f"{base}/v1/sessions", timeout=10, trust_env=False)
        assert created.status_code == 201, created.text
        session = created.json()["session_id"]
        assert get(f"{base}/v1/sessions/{session}")[0] == 200

        assert podman("exec", name, "id", "-u").stdout.strip() == UID
        denied = podman("exec", name, "touch", "/opt/venv/probe", check=False)
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr
        # The embedded default went to the declared volume, not to the read-only root.
        assert podman("exec", name, "test", "-s", "/data/f2f.db", check=False).returncode == 0
        mounts = json.loads(podman("inspect", "--format", "{{json .Mounts}}", name).stdout)
        assert [(m["Destination"], m["RW"]) for m in mounts] == [("/data", True)]

        assert healthcheck(name) == (0, "healthy")
        # SIGTERM to PID 1 (f2f) ends the server cleanly.
        podman("stop", "--time", "20", name)
        assert podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "0"


@pytest.mark.postgres
def test_migrate_and_serve_against_postgres_like_the_chart(image: str, empty_pg_url: str) -> None:
    """Schema upgrade from the image, then the server on another port, /data not writable at all."""
    # Host network so the container reaches the test PostgreSQL on loopback; the image's /data volume
    # is ignored, so only the read-only root is there: with PostgreSQL f2f writes nothing to disk.
    hardened = ["--read-only", "--image-volume", "ignore", "--network", "host",
                "--env", f"F2F_DATABASE_URL={empty_pg_url}"]
    upgrade = podman("run", "--rm", *hardened, image, "migrate", "db", "upgrade", timeout=180)
    assert "Traceback" not in upgrade.stdout + upgrade.stderr
    async_url = Settings.from_env({"F2F_DATABASE_URL": empty_pg_url}, env_file=None).database_url
    assert schema.state(async_url).at_head

    port = _free_port()
    with container(*hardened, "--env", "F2F_HOST=127.0.0.1", "--env", f"F2F_PORT={port}", image) as name:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(name, base)
        status, body = get(f"{base}/readyz")
        assert (status, body["checks"], body["phase"]) == (200, {"sql": "ok"}, "postgres")
        # The HEALTHCHECK found the server on the moved port, and only because it read F2F_PORT:
        # the same command with another port fails.
        assert healthcheck(name) == (0, "healthy")
        config = json.loads(podman("image", "inspect", "--format", "{{json .Config.Healthcheck}}", image).stdout)
        assert config["Test"][0] == "CMD"
        elsewhere = podman("exec", "--env", f"F2F_PORT={_free_port()}", name, *config["Test"][1:], check=False)
        assert elsewhere.returncode != 0


def test_entrypoint_runs_the_other_commands(image: str) -> None:
    result = podman("run", "--rm", "--read-only", image, "--version")
    assert result.stdout.strip() == f"f2f {version('f2f')}"
    worker = podman("run", "--rm", "--read-only", image, "worker", "--help")
    assert "f2f worker" in worker.stdout and "--batch-size" in worker.stdout
    bad = podman("run", "--rm", "--read-only", image, "no-such-command", check=False)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stdout + bad.stderr


def test_no_secret_or_build_time_pip_setting_left(image: str) -> None:
    history = podman("history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    for leak in ("index-url", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CERT", "PIP_TRUSTED_HOST", "pip.conf",
                 "password", "token"):
        assert leak.lower() not in history.lower(), leak
    config = json.loads(podman("image", "inspect", "--format", "{{json .Config}}", image).stdout)
    assert not [e for e in config["Env"] if e.startswith("PIP_")]
    look = ("for f in /etc/pip.conf /etc/xdg/pip/pip.conf /root/.config/pip/pip.conf /root/.pip/pip.conf "
            "/data/.config/pip/pip.conf /src /opt/venv/bin/pip; do test -e $f && echo $f; done; "
            "find /opt/venv -type d -name tests; command -v gcc strip; true")
    found = podman("run", "--rm", "--user", "0", "--entrypoint", "sh", image, "-c", look).stdout.split()
    assert found == []
    # pip left the virtualenv: nothing can be installed into the image at run time.
    assert podman("run", "--rm", "--entrypoint", "python", image, "-c", "import pip", check=False).returncode != 0


def test_bytecode_is_never_written_at_run_time(image: str) -> None:
    """Every module a serving process loads was compiled at build time (the root is read-only at run time)."""
    port = _free_port()
    writable = ["--user", "0", "--env", "PYTHONDONTWRITEBYTECODE=", "--network", "host",
                "--env", "F2F_HOST=127.0.0.1", "--env", f"F2F_PORT={port}"]
    with container(*writable, image) as name:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(name, base)
        assert get(f"{base}/readyz")[0] == 200
        session = httpx.post(f"{base}/v1/sessions", timeout=10, trust_env=False).json()["session_id"]
        added = httpx.post(f"{base}/v1/sessions/{session}/ingredients", json={"ingredients": ["두부", "계란"]},
                           timeout=10, trust_env=False)
        assert added.status_code == 200, added.text
        podman("exec", name, "f2f", "recipes", "seed")
        status, ranked = get(f"{base}/v1/sessions/{session}/recommendations?limit=3")
        assert status == 200 and ranked["items"]
        assert httpx.get(f"{base}/metrics", timeout=10, trust_env=False).status_code == 200
        written = [line for line in podman("diff", name).stdout.splitlines() if line.endswith(".pyc")]
        assert written == []
