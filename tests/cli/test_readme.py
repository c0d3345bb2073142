"""The README's commands work as printed (the tour runs against a real `f2f serve`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.servers import f2f_server

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_starts_with_the_two_commands() -> None:
    first, second = _blocks()[:2]
    assert "pip install" in first
    assert first.strip().endswith("f2f serve")
    assert second.strip() == "bash scripts/test.sh"
    assert Path(README.parent / "scripts" / "test.sh").is_file()
    assert "scripts/test.sh" in (README.parent / ".ci" / "run").read_text()


def test_the_tour_works_as_printed(tmp_path: Path) -> None:
    tour = next(b for b in _blocks() if "SID=$(curl" in b)
    with f2f_server({"F2F_PHASE_POLL_SECONDS": "0.2"}, cwd=tmp_path) as base:
        script = tour.replace("http://127.0.0.1:8000", base).replace(".venv/bin/f2f", f"{sys.executable} -m f2f_cli")
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True,
                                text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '"added":["두부","계란","대파"]' in out
    assert '"removed":["계란"]' in out
    assert '"items":[{"recipe_id"' in out  # the seeded catalog answers the fridge
    assert out.strip().endswith("204")
    assert "Traceback" not in result.stderr
