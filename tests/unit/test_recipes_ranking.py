"""Each dish once per list, and ties among ready recipes decided by how much of the fridge they use."""

from __future__ import annotations

from f2f_cli.recipes.index import IngredientRow, RecipeIndex, ReferenceScanner, build_index


def index_of(recipes: list[tuple[int, str, list[str]]]) -> RecipeIndex:
    pairs = [(rid, name) for rid, _, names in recipes for name in names]
    names = sorted({n for _, n in pairs})
    return build_index(stamp="t", recipes=[(rid, title, None) for rid, title, _ in recipes], core_pairs=pairs,
                       ingredients=[IngredientRow(n, "other", False) for n in names])


def test_copies_of_a_dish_show_once_and_make_room_for_others() -> None:
    recipes = [(1, "토마토소스 달걀볶음", ["토마토", "달걀", "대파"])]
    # Twenty copies under other ids (and spellings) would fill any list of ten.
    recipes += [(100 + n, "토마토소스달걀볶음" if n % 2 else "토마토소스 달걀 볶음", ["토마토", "달걀", "대파"])
                for n in range(20)]
    recipes += [(2, "달걀말이", ["달걀", "당근"]), (3, "토마토 샐러드", ["토마토", "양상추"]),
                (4, "파전", ["대파", "밀가루"])]
    result = index_of(recipes).recommend(["토마토", "달걀", "대파"], limit=4)
    assert result.items[0].recipe_id == 1  # the best-ranked copy (lowest id on a tie) stands for all
    assert len({r.title.replace(" ", "") for r in result.items}) == len(result.items) == 4


def test_limit_is_filled_when_fewer_dishes_than_rows() -> None:
    recipes = [(n, "두부조림", ["두부", "대파"]) for n in range(1, 30)] + [(50, "두부국", ["두부", "무"])]
    result = index_of(recipes).recommend(["두부", "대파"], limit=10)
    assert [r.title for r in result.items] == ["두부조림", "두부국"]  # every dish, each once


def test_ready_recipes_using_more_of_the_fridge_come_first() -> None:
    recipes = [
        (1, "두부구이", ["두부"]),  # ready, but uses one thing of the fridge
        (2, "된장찌개", ["두부", "애호박", "감자", "양파"]),  # ready, uses four
        (3, "감자볶음", ["감자", "양파"]),
        (4, "애호박전", ["애호박", "밀가루"]),  # missing one
        (5, "두부김치", ["두부", "김치"]),
        (6, "김치볶음밥", ["김치", "밥"]),
    ]
    index = index_of(recipes)
    fridge = ["두부", "애호박", "감자", "양파"]
    got = [r.recipe_id for r in index.recommend(fridge, limit=10).items]
    assert got[:3] == [2, 3, 1] and set(got[3:]) == {4, 5}
    # The full scan ranks the same way (its rows equal the dishes here).
    assert ReferenceScanner(index).recommend(fridge, limit=10) == got


def test_snapshot_keeps_the_dishes() -> None:
    index = index_of([(1, "두부조림", ["두부", "대파"]), (2, "두부 조림", ["두부", "대파"]),
                      (3, "두부국", ["두부", "무"])])
    loaded = RecipeIndex.from_bytes(index.to_bytes())
    assert loaded.dishes.tolist() == index.dishes.tolist() == [0, 0, 1]
    assert [r.recipe_id for r in loaded.recommend(["두부", "대파"]).items] == [1, 3]


def test_a_big_recipe_the_fridge_was_bought_for_comes_before_small_ready_ones() -> None:
    stew = ["두부", "느타리버섯", "콩나물", "배추", "미나리", "돼지고기", "소고기", "당면", "조랭이떡", "양파", "대파",
            "무", "고추", "다시마"]
    recipes = [
        (1, "맑은부대찌개", stew),
        (2, "두부구이", ["두부"]),
        (3, "된장국", ["두부", "양파", "대파"]),
        (4, "콩나물무침", ["콩나물", "대파"]),
        (5, "잡채", ["당면", "양파", "돼지고기", "시금치"]),
        (6, "배추전", ["배추", "밀가루"]),
    ]
    index = index_of(recipes)
    # Twelve of the stew's fourteen items, and nothing else: this fridge was bought for the stew.
    fridge = [n for n in stew if n not in ("무", "다시마")]
    result = index.recommend(fridge, limit=10)
    first = result.items[0]
    assert first.recipe_id == 1
    assert (first.missing_count, first.missing, first.matched_count) == (2, ("다시마", "무"), 12)
    assert first.fridge_share == 1.0 and first.score < 1.0
    # The grouping is still there for a client to show: the ready dishes say so.
    ready = [r for r in result.items if r.missing_count == 0]
    assert {r.recipe_id for r in ready} == {2, 3, 4}
    assert ReferenceScanner(index).recommend(fridge, limit=10) == [r.recipe_id for r in result.items]


def test_using_the_fridge_never_outweighs_more_missing_items_than_fridge_items_used() -> None:
    recipes = [
        (1, "계란말이", ["달걀", "당근"]),  # missing 1, uses one item of the fridge
        (2, "새우볶음밥", ["새우", "밥", "달걀", "대파"]),  # missing 2, uses two
        (3, "파전", ["대파", "밀가루", "오징어", "부추", "당근"]),  # missing 4, uses one
        (4, "두부조림", ["두부", "대파"]),  # ready
    ]
    index = index_of(recipes)
    result = index.recommend(["두부", "달걀", "대파"], limit=10)
    assert [r.recipe_id for r in result.items] == [4, 1, 2, 3]
    assert [r.missing_count for r in result.items] == [0, 1, 2, 4]
    assert all(0 < r.fridge_share <= 1 for r in result.items)
