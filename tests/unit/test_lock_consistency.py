"""The lock's files agree with each other, and pyproject.toml bounds every library whose internals f2f touches.

The image installs requirements/runtime.txt and its build tools from requirements/build.txt; the suite runs on
requirements/dev.txt. A version in the image that the suite never ran on would be an untested release in
production, so every pin there must be the dev lock's. (``scripts/lock.sh --check`` says whether the lock still
matches pyproject.toml; this says the files agree among themselves, without uv.)
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")
# Libraries f2f uses beyond their public API (see the comments in pyproject.toml and tests/unit/test_internals_*).
TOUCHED_INTERNALS = {"typer", "starlette", "uvicorn", "httptools", "redis"}


def pins(path: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for line in path.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            found.setdefault(canonicalize_name(match[1]), set()).add(match[2])
    return found


@pytest.mark.parametrize("name", ["runtime.txt", "otel.txt", "build.txt"])
def test_the_image_pins_exactly_the_dev_lock_versions(name: str) -> None:
    dev = pins(REQUIREMENTS / "dev.txt")
    image = pins(REQUIREMENTS / name)
    assert image, f"requirements/{name} pins nothing"
    differing = {pkg: (versions, dev.get(pkg)) for pkg, versions in image.items()
                 if not versions <= dev.get(pkg, set())}
    assert differing == {}, f"requirements/{name} differs from dev.txt; refresh with `bash scripts/lock.sh`"


def test_the_dev_lock_pins_every_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dev = pins(REQUIREMENTS / "dev.txt")
    missing = [req for req in project["dependencies"] if canonicalize_name(Requirement(req).name) not in dev]
    assert missing == []


def _dependency_comments() -> dict[str, str]:
    """Each entry of [project].dependencies with the comment lines written just above it."""
    text = (ROOT / "pyproject.toml").read_text()
    block = text.split("\ndependencies = [", 1)[1].split("\n]", 1)[0]
    found: dict[str, str] = {}
    comment: list[str] = []
    for line in block.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped)
        elif stripped.startswith('"'):
            found[stripped.rstrip(",").strip('"')] = " ".join(comment)
            comment = []
    return found


def test_every_dependency_with_an_internals_comment_has_an_upper_bound() -> None:
    entries = _dependency_comments()
    commented = {req: why for req, why in entries.items() if why}
    assert {canonicalize_name(Requirement(req).name) for req in commented} >= TOUCHED_INTERNALS
    unbounded = [req for req in commented if not any(s.operator in ("<", "<=", "==", "~=")
                                                      for s in Requirement(req).specifier)]
    assert unbounded == [], "an internal touched without an upper bound: add one below the next untested release"


def test_the_locked_versions_are_inside_the_bounds() -> None:
    dev = pins(REQUIREMENTS / "dev.txt")
    outside = []
    for req in _dependency_comments():
        requirement = Requirement(req)
        for version in dev[canonicalize_name(requirement.name)]:
            if version not in requirement.specifier:
                outside.append(f"{requirement.name}=={version} not in {requirement.specifier}")
    assert outside == []
