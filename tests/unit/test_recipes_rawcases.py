"""The raw recall cases: fridges copied from the raw ingredient lines, without the parser or the vocabulary."""

from __future__ import annotations

import ast
import inspect

from f2f_cli.recipes import quality
from f2f_cli.recipes.quality import NOISE_POOL, build_raw_cases, raw_fridge_names


def test_the_name_before_the_amount_of_each_line() -> None:
    lines = [
        "새우두부계란찜연두부 75g(3/4모)",  # the dish name glued in front
        "[1인분]조선부추 50g",
        "날콩가루 7g(1⅓작은술)·양념장 : 저염간장 3g",  # what follows the first amount is skimmed
        "●양념장 : 다진 마늘 2g",
        "굵은소금적당량",
        "황태해장국황태(채) 15g",
        "실곤약 50g",  # 약 inside a name is no amount
        "재료 느타리버섯(10g)",
        "참깨 약간",
        "15g",
    ]
    assert raw_fridge_names("새우 두부 계란찜", lines) == [
        "연두부", "조선부추", "날콩가루", "다진 마늘", "굵은소금", "황태해장국황태", "실곤약", "느타리버섯", "참깨"]
    assert raw_fridge_names("사과 새우 북엇국", ["북엇국북어채 25g"]) == ["북어채"]  # the title's last word


def test_cases_are_seeded_and_swap_about_half_of_the_synonyms() -> None:
    rows = [{"id": str(n), "title": f"요리{n}", "ingredients": ["달걀 30g", "대파 10g", "다진 소고기 50g", "무 20g"]}
            for n in range(200)]
    cases = build_raw_cases(rows, seed=3)
    assert cases == build_raw_cases(rows, seed=3) and len(cases) == 200
    swapped = sum("계란" in c.fridge for c in cases)
    assert 60 <= swapped <= 140
    assert sum("다진 쇠고기" in c.fridge for c in cases) >= 60  # the last word of a name is swapped too
    own = {"달걀", "계란", "대파", "파", "다진 소고기", "다진 쇠고기", "무"}
    for case in cases:
        # Four names of its own, each once under one spelling, and three unrelated items (never 달걀 again).
        extra = [n for n in case.fridge if n not in own]
        assert len(case.fridge) == len(set(case.fridge)) == 7
        assert len(extra) == 3 and set(extra) <= set(NOISE_POOL)
    assert build_raw_cases([{"id": "1", "title": "물", "ingredients": ["물 100ml"]}]) == []  # one name is too few


def test_the_raw_cases_use_neither_the_parser_nor_the_vocabulary() -> None:
    tree = ast.parse(inspect.getsource(quality))
    functions = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    for name in ("raw_fridge_names", "_swapped", "build_raw_cases"):
        called = {c.func.id for c in ast.walk(functions[name]) if isinstance(c, ast.Call)
                  and isinstance(c.func, ast.Name)}
        assert not called & {"canonical_name", "parse_ingredient_lines", "info", "core_ingredients"}, name
