"""Print the values table of helm/f2f/README.md from the "# --" comments in values.yaml.

Usage: python scripts/helm_values_table.py [--check]

A key documented with a "# --" comment becomes one row: its dotted path, its default (as
YAML/JSON) and the comment. With --check, exit 1 when README.md's table differs.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1] / "helm" / "f2f"
BEGIN = "<!-- values-table:begin -->"
END = "<!-- values-table:end -->"
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?P<rest>.*)$")


def documented_keys(text: str) -> list[tuple[str, str]]:
    """(dotted key, description) for every key preceded by a "# --" comment, in file order."""
    rows: list[tuple[str, str]] = []
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = [stripped.removeprefix("# --").strip()]
            continue
        if stripped.startswith("#"):
            if pending is not None:
                pending.append(stripped.removeprefix("#").strip())
            continue
        match = _KEY.match(line)
        if not match or stripped.startswith("-"):
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        if pending is not None:
            rows.append((".".join(k for _, k in stack), " ".join(pending)))
            pending = None
    return rows


def lookup(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for part in dotted.split("."):
        node = node[part]
    return node


def table() -> str:
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    lines = ["| Key | Default | Description |", "|---|---|---|"]
    for key, description in documented_keys(text):
        default = json.dumps(lookup(values, key), ensure_ascii=False)
        if len(default) > 60:
            default = "see values.yaml"
        cell, text = default.replace("|", "\\|"), description.replace("|", "\\|")
        lines.append(f"| `{key}` | `{cell}` | {text} |")
    return "\n".join(lines)


def readme_table(readme: str) -> str:
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[start:end].strip()


def main(argv: list[str]) -> int:
    generated = table()
    if "--check" in argv:
        current = readme_table((CHART / "README.md").read_text())
        if current != generated:
            print("helm/f2f/README.md values table is stale: run python scripts/helm_values_table.py", file=sys.stderr)
            return 1
        return 0
    readme_path = CHART / "README.md"
    readme = readme_path.read_text()
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    readme_path.write_text(readme[:start] + "\n" + generated + "\n" + readme[end:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
