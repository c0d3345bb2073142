#!/usr/bin/env python3
"""How the parser and vocabulary read a recipe file: the tool for checking synonyms and parents.

Usage: .venv/bin/python scripts/recipes_vocab_report.py [FILE] [--once] [--other] [--json]

For every canonical ingredient the file produces: how many recipes use it, its
category, and the names as written that led to it. ``--once`` lists only the
names seen in a single recipe (typos, glued text and missing synonyms show up
there first), ``--other`` only those without a category. FILE defaults to the
shared COOKRCP01 sample; the format is detected.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path

import msgspec

from f2f_cli.recipes.formats import parse_file
from f2f_cli.recipes.normalize import info

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = (ROOT.parent / "shared" / "data" / "cookrcp01.json", Path("/work/shared/data/cookrcp01.json"))


class Entry(msgspec.Struct):
    name: str
    recipes: int
    category: str
    written: list[str]


def report(path: Path) -> list[Entry]:
    parsed = parse_file(path)
    uses: Counter[str] = Counter()
    written: dict[str, set[str]] = defaultdict(set)
    for record in parsed.records:
        for name in {item.ingredient for item in record.items}:
            uses[name] += 1
        for item in record.items:
            written[item.ingredient].add(item.name)
    return [Entry(name, count, info(name).category, sorted(written[name]))
            for name, count in sorted(uses.items(), key=lambda kv: (-kv[1], kv[0]))]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("file", nargs="?", type=Path, default=next((p for p in SAMPLES if p.exists()), SAMPLES[0]))
    parser.add_argument("--once", action="store_true", help="only names seen in one recipe")
    parser.add_argument("--other", action="store_true", help="only names without a category")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv[1:])
    entries = report(args.file)
    total = len(entries)
    if args.once:
        entries = [e for e in entries if e.recipes == 1]
    if args.other:
        entries = [e for e in entries if e.category == "other"]
    if args.json:
        print(msgspec.json.encode(entries).decode())
        return 0
    categories = Counter(e.category for e in report(args.file))
    print(f"{args.file}: {total} canonical ingredients; " + ", ".join(f"{c} {n}" for c, n in categories.most_common()))
    for e in entries:
        print(f"{e.recipes:>4}  {e.name}  [{e.category}]  ← {', '.join(e.written)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except BrokenPipeError:  # piped into head: the reader has what it wanted
        sys.stderr.close()
        sys.exit(0)
