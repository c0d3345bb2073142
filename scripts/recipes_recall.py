#!/usr/bin/env python3
"""Recall@1/3/10 of the recommender on fridges drawn from the COOKRCP01 sample, for both catalog states.

Usage: .venv/bin/python scripts/recipes_recall.py [--sample PATH] [--seed N] [--limit N] [--set raw|self|both]
       [--drop N] [--misses] [--json] [--save-cases FILE | --cases FILE]

Two sets of cases, one per recipe of the sample, each a fridge plus three unrelated items:

* ``raw`` — the fridge a person copies from the recipe's raw ingredient lines: the text before
  the amount of each line, section labels and the dish name in front removed, about half of the
  names written as a common synonym (계란/달걀, 파/대파). Built without the parser or the
  vocabulary, so it does not grade the normaliser by itself.
* ``self`` — the recipe's core ingredients as the catalog names them, about half written as a
  synonym the normaliser resolves (the self-check; ``--drop 1`` leaves one out, the harder test).

The catalog is built in a throwaway SQLite file: first ``f2f recipes seed``, then an import of
the sample in the simple format (the state in which the catalog used to hold every recipe
twice). ``--save-cases`` writes the cases so another build can be measured on exactly the same
fridges (``--cases``). Same seed, same figures. ``--misses`` lists every missed case with its
rank in a longer list, what it still lacks and which fridge items are unknown.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

import msgspec

from f2f_cli.db import migrate as schema
from f2f_cli.db.engine import create_engine_for
from f2f_cli.recipes.formats import parse_file
from f2f_cli.recipes.quality import (
    DEFAULT_SEED,
    DIAGNOSE_DEPTH,
    RecallCase,
    RecallFigures,
    build_cases,
    build_raw_cases,
    measure_catalog_states,
)
from f2f_cli.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CANDIDATES = (ROOT.parent / "shared" / "data" / "cookrcp01.json", Path("/work/shared/data/cookrcp01.json"))


def default_sample() -> Path:
    return next((p for p in SAMPLE_CANDIDATES if p.exists()), SAMPLE_CANDIDATES[0])


CaseSets = dict[str, list[RecallCase]]


async def run(sample_path: Path, cases: CaseSets) -> list[RecallFigures]:
    sample = parse_file(sample_path, "simple")
    with tempfile.TemporaryDirectory(prefix="f2f-recall-") as tmp:
        url = Settings.from_env({"F2F_DATABASE_URL": f"sqlite:///{tmp}/recall.db"}, env_file=None).database_url
        schema.upgrade(url)
        engine = create_engine_for(Settings.from_env({"F2F_DATABASE_URL": url}, env_file=None))
        try:
            return await measure_catalog_states(engine, sample, cases)
        finally:
            await engine.dispose()


def build(args: argparse.Namespace) -> CaseSets:
    sets: CaseSets = {}
    if args.set in ("raw", "both"):
        rows = msgspec.json.decode(args.sample.read_bytes())
        sets["raw"] = build_raw_cases(rows if isinstance(rows, list) else [], seed=args.seed, limit=args.limit)
    if args.set in ("self", "both"):
        sets["self"] = build_cases(parse_file(args.sample, "simple").records, seed=args.seed, limit=args.limit,
                                   drop=args.drop)
    return sets


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sample", type=Path, default=default_sample())
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--limit", type=int, default=None, help="a seeded sample of this many cases per set")
    parser.add_argument("--set", choices=("raw", "self", "both"), default="both", help="which cases (default both)")
    parser.add_argument("--drop", type=int, default=0,
                        help="leave this many core ingredients out of each self-check fridge (the harder test)")
    parser.add_argument("--cases", type=Path, help="read the cases from this file instead of building them")
    parser.add_argument("--save-cases", type=Path, help="write the cases built to this file")
    parser.add_argument("--misses", action="store_true", help="list the missed dishes too, with why")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv[1:])
    if not args.sample.exists():
        print(f"error: no sample at {args.sample}", file=sys.stderr)
        return 2
    if args.cases:
        cases = msgspec.json.decode(args.cases.read_bytes(), type=CaseSets | list[RecallCase])
        sets = cases if isinstance(cases, dict) else {"self": cases}  # a file of one list: an older self-check
    else:
        sets = build(args)
    if args.save_cases:
        args.save_cases.write_bytes(msgspec.json.encode(sets))
    os.environ.setdefault("F2F_LOG_LEVEL", "warning")
    figures = asyncio.run(run(args.sample, sets))
    if args.json:
        print(msgspec.json.encode(figures).decode())
        return 0
    print(f"sample {args.sample}, seed {args.seed}, "
          + ", ".join(f"{name} {len(cases)} cases" for name, cases in sets.items())
          + (f", {args.drop} core ingredient(s) left out of each self-check fridge" if args.drop else ""))
    print(f"{'cases':<5} {'catalog':<12} {'recipes':>7} {'@1':>7} {'@3':>7} {'@10':>7}  top-10 lists with a dish twice")
    for f in figures:
        r = f.recall
        print(f"{f.case_set:<5} {f.state:<12} {f.recipes:>7} {r['1']:>7.1%} {r['3']:>7.1%} {r['10']:>7.1%}  "
              f"{f.lists_with_copies} of {f.cases}")
    if args.misses:
        for f in figures:
            print(f"\nmissed at 10, {f.case_set} cases, {f.state} ({len(f.misses)}):")
            for m in f.misses:
                where = f"rank {m.rank}" if m.rank is not None else f"not in the first {DIAGNOSE_DEPTH}"
                print(f"  {m.title}: {where}; lacks {', '.join(m.missing) or '-'}; "
                      f"unknown {', '.join(m.unknown) or '-'}; first {' / '.join(m.ahead) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
