"""Ranking rules, vectorised scoring against the full scan, snapshots, autocomplete."""

from __future__ import annotations

import pytest

from f2f_cli.bench.recommend import run_recommend_bench, synthetic_catalog
from f2f_cli.recipes.autocomplete import choseong, matches, suggest
from f2f_cli.recipes.index import IngredientRow, RecipeIndex, ReferenceScanner, SnapshotError, build_index


def small_index() -> RecipeIndex:
    recipes = [
        (1, "두부조림", "반찬"),
        (2, "두부계란찜", "반찬"),
        (3, "마늘종볶음", "반찬"),
        (4, "새우볶음밥", "밥"),
        (5, "된장찌개", "국&찌개"),
        (6, "계란말이", "반찬"),
    ]
    pairs = [
        (1, "두부"), (1, "대파"),
        (2, "두부"), (2, "달걀"), (2, "대파"),
        (3, "마늘종"), (3, "새우"),
        (4, "새우"), (4, "밥"), (4, "달걀"), (4, "대파"),
        (5, "두부"), (5, "애호박"), (5, "감자"), (5, "양파"),
        (6, "달걀"), (6, "당근"),
    ]
    names = sorted({n for _, n in pairs} | {"소금", "마늘"})
    rows = [IngredientRow(n, "staple" if n == "소금" else "other", n == "소금") for n in names]
    return build_index(stamp="1-0", recipes=recipes, core_pairs=pairs, ingredients=rows,
                       aliases={"계란": "달걀", "파": "대파", "칵테일새우": "새우"})


def test_groups_by_missing_then_idf_coverage() -> None:
    result = small_index().recommend(["두부", "계란", "파"], limit=10)
    ids = [r.recipe_id for r in result.items]
    assert ids[:2] == [2, 1]  # both ready; 2 uses more of the fridge's rarer items
    assert all(r.missing_count == 0 for r in result.items[:2])
    assert [r.missing_count for r in result.items] == sorted(r.missing_count for r in result.items)
    assert 3 not in ids  # nothing matched
    egg_roll = next(r for r in result.items if r.recipe_id == 6)
    assert egg_roll.missing == ("당근",) and egg_roll.matched == ("달걀",)


def test_exact_names_only() -> None:
    index = small_index()
    result = index.recommend(["마늘"], limit=10)
    assert result.items == ()  # 마늘 is not 마늘종
    assert result.unknown == ("마늘",)
    assert [r.recipe_id for r in index.recommend(["칵테일새우"], limit=10).items] == [3, 4]


def test_max_missing_and_category_filters() -> None:
    index = small_index()
    assert {r.recipe_id for r in index.recommend(["두부", "대파"], max_missing=0).items} == {1}
    assert {r.recipe_id for r in index.recommend(["두부", "대파"], max_missing=1).items} == {1, 2}
    assert {r.recipe_id for r in index.recommend(["달걀"], category="밥").items} == {4}
    assert index.recommend(["달걀"], category="없는분류").items == ()


def test_staples_in_the_fridge_change_nothing() -> None:
    index = small_index()
    assert index.recommend(["소금"]).items == ()
    assert index.recommend(["두부", "소금"]).items == index.recommend(["두부"]).items


def test_limit_is_respected_and_ties_break_by_id() -> None:
    result = small_index().recommend(["대파"], limit=2)
    assert len(result.items) == 2
    assert result.considered == 3


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_vectorised_scoring_equals_full_scan(seed: int) -> None:
    recipes, pairs, rows, _ = synthetic_catalog(3000, ingredients=300, seed=seed)
    index = build_index(stamp="s", recipes=recipes, core_pairs=pairs, ingredients=rows)
    scanner = ReferenceScanner(index)
    for n in range(10):
        fridge = [rows[(seed * 7 + n * 13 + k * 29) % len(rows)].name for k in range(1 + n)]
        for max_missing in (None, 2):
            got = [r.recipe_id for r in index.recommend(fridge, limit=20, max_missing=max_missing).items]
            assert got == scanner.recommend(fridge, limit=20, max_missing=max_missing)


def test_snapshot_round_trip() -> None:
    index = small_index()
    copy = RecipeIndex.from_bytes(index.to_bytes())
    assert copy.stamp == index.stamp and copy.titles == index.titles and copy.aliases == index.aliases
    assert copy.recommend(["두부", "계란"]).items == index.recommend(["두부", "계란"]).items


@pytest.mark.parametrize("blob", [b"", b"garbage", b"F2FRIDX1" + (5).to_bytes(8, "big") + b"{}xyz"])
def test_bad_snapshots_are_rejected(blob: bytes) -> None:
    with pytest.raises(SnapshotError):
        RecipeIndex.from_bytes(blob)


def test_choseong_autocomplete() -> None:
    index = small_index()
    assert choseong("두부") == "ㄷㅂ"
    assert matches("두부", "ㄷㅂ") and matches("두부", "두ㅂ") and matches("두부", "두")
    assert not matches("두부", "ㅂ") and not matches("마늘", "마늘종")
    assert suggest(index, "ㄷㅂ")[0].name == "두부"
    by_alias = suggest(index, "계")
    assert by_alias[0].name == "달걀" and by_alias[0].matched == "계란"
    assert [s.name for s in suggest(index, "마늘")] == ["마늘", "마늘종"]  # exact first
    assert [(s.name, s.matched) for s in suggest(index, "ㅋ")] == [("새우", "칵테일새우")]
    assert suggest(index, "ㅊ") == []


def test_bench_runs_small() -> None:
    result = run_recommend_bench(recipes=2000, queries=20, reference_queries=2)
    assert result.recipes == 2000 and result.queries == 20
    assert result.reference_agrees
    assert result.p50_ms <= result.p95_ms <= result.p99_ms
    assert result.snapshot_bytes > 0
