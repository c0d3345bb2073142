"""The package ships Alembic from the top-level ``migrations/`` folder, in a wheel and in an editable install."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _declared_packages() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(config["tool"]["setuptools"]["packages"])


def test_every_package_on_disk_is_declared() -> None:
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "f2f_cli").rglob("__init__.py")}
    shipped = (ROOT / "migrations").rglob("__init__.py")
    on_disk |= {"f2f_cli." + ".".join(p.parent.relative_to(ROOT).parts) for p in shipped}
    on_disk.add("f2f_cli.recipes.data")  # data only, shipped through package-data
    assert on_disk == _declared_packages()


def _upgrade_in_subprocess(python_path: str | None, cwd: Path, db: Path) -> subprocess.CompletedProcess[str]:
    """``f2f migrate db upgrade`` run from a folder that holds no checkout, so only the install is importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("F2F_")}
    env["F2F_DATABASE_URL"] = f"sqlite:///{db}"
    if python_path is not None:
        env["PYTHONPATH"] = python_path
    code = (
        "import sys, f2f_cli.migrations, f2f_cli.cli.main as m;"
        "print(f2f_cli.migrations.__file__, file=sys.stderr);"
        "sys.argv=['f2f','migrate','db','upgrade','--json']; m.main()"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_migrations_run_from_a_built_wheel(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = out.glob("f2f-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "f2f_cli/migrations/env.py" in names
    assert any(n.startswith("f2f_cli/migrations/versions/0001_") for n in names)
    assert "f2f_cli/migrations/script.py.mako" in names
    assert not any(n.startswith("migrations/") for n in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    run = tmp_path / "run"
    run.mkdir()
    done = _upgrade_in_subprocess(str(site), run, tmp_path / "wheel.db")
    assert done.returncode == 0, done.stderr
    assert str(site) in done.stderr  # the wheel's copy, not the checkout's
    assert '"to"' in done.stdout


def test_migrations_run_from_the_editable_install(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    done = _upgrade_in_subprocess(None, run, tmp_path / "editable.db")
    assert done.returncode == 0, done.stderr
    assert str(ROOT / "migrations") in done.stderr
    assert '"to"' in done.stdout
