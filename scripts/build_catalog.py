#!/usr/bin/env python3
"""Derive the built-in recipe catalog from the public COOKRCP01 sample.

Usage: .venv/bin/python scripts/build_catalog.py [SOURCE_JSON] [OUTPUT_JSON]

Defaults: /work/shared/data/cookrcp01.json → f2f_cli/recipes/data/catalog.json.
Keeps recipes whose ingredient text yields at least two core ingredients
(a one-ingredient "recipe" such as 구운 바나나 would be ready for nearly any
fridge), keeps one row of each recipe the sample lists twice under two ids
(same title and ingredient set, the first one kept), adds the dish category
and cooking method, drops the image markers glued to the steps, and writes
the simple list shape that ``f2f recipes import`` reads. Running it again on
the same input gives the same file; it prints how many rows each rule left out.
"""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec

from f2f_cli.recipes.formats import parse_data
from f2f_cli.recipes.normalize import CORE_ROLES

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = Path("/work/shared/data/cookrcp01.json")
DEFAULT_OUTPUT = ROOT / "f2f_cli" / "recipes" / "data" / "catalog.json"
MIN_CORE = 2


def build(source: Path) -> list[dict[str, object]]:
    raw = msgspec.json.decode(source.read_bytes())
    parsed = parse_data(raw, "simple", source="cookrcp01")
    by_id = {str(row["id"]): row for row in raw}
    out: list[dict[str, object]] = []
    seen: set[str] = set()
    few_core = copies = 0
    for record in parsed.records:
        core = {i.ingredient for i in record.items if i.role in CORE_ROLES}
        if len(core) < MIN_CORE:
            few_core += 1
            continue
        if record.fingerprint() in seen:
            copies += 1
            continue
        seen.add(record.fingerprint())
        row = by_id[record.source_id]
        out.append({
            "id": record.source_id,
            "title": record.title,
            "category": record.category,
            "method": record.method,
            "ingredients": row["ingredients"],
            "steps": list(record.steps),
            "image": record.image_url,
        })
    out.sort(key=lambda r: int(str(r["id"])) if str(r["id"]).isdigit() else 0)
    print(f"{parsed.rows} rows: {len(parsed.skipped)} unreadable, {few_core} with fewer than {MIN_CORE} core "
          f"ingredients, {copies} copies of another row; {len(out)} kept")
    return out


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else DEFAULT_SOURCE
    output = Path(argv[2]) if len(argv) > 2 else DEFAULT_OUTPUT
    recipes = build(source)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(msgspec.json.format(msgspec.json.encode(recipes), indent=1) + b"\n")
    print(f"wrote {len(recipes)} recipes to {output}")
    return 0 if len(recipes) >= 500 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
