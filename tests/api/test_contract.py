"""The API contract a newcomer meets (issue #16, items 8-12), on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from f2f_cli.api.openapi import ingredient_name_schema


def _sid(client: TestClient) -> str:
    sid: str = client.post("/v1/sessions").json()["session_id"]
    return sid


def test_allow_and_options_list_every_method_of_the_path(client: TestClient) -> None:
    sid = _sid(client)
    expected = {
        f"/v1/sessions/{sid}": "DELETE, GET, HEAD, OPTIONS",
        f"/v1/sessions/{sid}/ingredients": "DELETE, GET, HEAD, OPTIONS, POST",
        "/v1/sessions": "OPTIONS, POST",
        "/v1/recipes": "GET, HEAD, OPTIONS",
        "/healthz": "GET, HEAD, OPTIONS",
    }
    for path, allow in expected.items():
        r = client.put(path)
        assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
        assert r.headers["allow"] == allow, path
        r = client.options(path)
        assert r.status_code == 204 and r.headers["allow"] == allow, path


def test_bodies_must_be_declared_json(client: TestClient) -> None:
    url = f"/v1/sessions/{_sid(client)}/ingredients"
    body = b'{"ingredients": ["tofu"]}'
    for headers in ({"Content-Type": "text/plain"}, {}, {"Content-Type": "application/x-www-form-urlencoded"}):
        r = client.post(url, content=body, headers=headers)
        assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type", headers
    assert client.get(url).json()["ingredients"] == []  # nothing was added
    r = client.post(url, content=body, headers={"Content-Type": "Application/JSON; charset=utf-8"})
    assert r.status_code == 200 and r.json()["added"] == ["tofu"]


def test_one_session_shape_everywhere(client: TestClient) -> None:
    sid = _sid(client)
    url = f"/v1/sessions/{sid}/ingredients"
    session = client.get(f"/v1/sessions/{sid}").json()
    added = client.post(url, json={"ingredients": ["두부"]}).json()
    listed = client.get(url).json()
    removed = client.delete(url, params={"name": "두부"}).json()
    shape = set(session)
    assert shape == {"session_id", "created_at", "updated_at", "expires_at", "version", "ingredients"}
    assert set(added) == shape | {"added"} and set(removed) == shape | {"removed"} and set(listed) == shape
    assert added["created_at"] == session["created_at"] and added["updated_at"] > session["updated_at"]


def test_letter_case_is_kept_and_matters(client: TestClient) -> None:
    url = f"/v1/sessions/{_sid(client)}/ingredients"
    r = client.post(url, json={"ingredients": ["Tofu", "tofu", " Tofu "]})
    assert r.json()["added"] == ["Tofu", "tofu"]
    assert client.delete(url, params={"name": "TOFU"}).json()["removed"] == []
    assert [i["name"] for i in client.get(url).json()["ingredients"]] == ["Tofu", "tofu"]


def test_the_document_states_what_the_server_enforces(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    paths, schemas = doc["paths"], doc["components"]["schemas"]
    name = schemas["IngredientName"]
    assert name["minLength"] == 1 and name["maxLength"] == 50
    items = schemas["IngredientsIn"]["properties"]["ingredients"]["items"]
    assert items == {"$ref": "#/components/schemas/IngredientName"}
    pattern = re.compile(name["pattern"])
    sid = _sid(client)
    url = f"/v1/sessions/{sid}/ingredients"
    # Every name the pattern refuses, the server refuses; every name it admits, the server stores.
    for candidate in ("", " ", "\t\n", "a\x00", "두부\u200b", "\ue000x", "\U000e0001", "가" * 51):
        assert not (pattern.search(candidate) and len(candidate) <= 50), repr(candidate)
        assert client.post(url, json={"ingredients": [candidate]}).status_code == 422, repr(candidate)
    for candidate in ("두부", " 대파 ", "a\tb", "Crème fraîche", "🥚", "가" * 50):
        assert pattern.search(candidate), repr(candidate)
        assert client.post(url, json={"ingredients": [candidate]}).status_code == 200, repr(candidate)
        client.delete(url)  # the fixture allows 5 ingredients per session
    # `current` needs the header (or the cookie), and the document says so.
    header = [p for p in paths["/v1/sessions/current/ingredients"]["get"]["parameters"] if p["in"] == "header"]
    assert header and header[0]["name"] == "X-Session-ID" and header[0]["required"] is True
    assert "{session_id}" not in str(paths["/v1/sessions/current"])
    fresh = TestClient(client.app)  # no cookie jar
    assert fresh.get("/v1/sessions/current/ingredients").status_code == 400
    # DELETE on the collection says what it does, and the POST documents 415.
    assert "stays and reads back empty" in paths["/v1/sessions/{session_id}/ingredients"]["delete"]["description"]
    assert "415" in paths["/v1/sessions/{session_id}/ingredients"]["post"]["responses"]
    assert ingredient_name_schema(20)["maxLength"] == 20  # follows F2F_MAX_INGREDIENT_LENGTH


@pytest.mark.parametrize("name", [
    "두부", "두부\ufe0f", "\ufe0f두부", "\u2800두부", " 두부 ", "Tofu\u0301", "두부\U000e0100",
    "\u3164", "\u115f", "\u1160", "\uffa0", "\u2800", "\u034f", "\u17b4", "\u0301", "\u0301두부", "\u034f\u0301a",
    "👩\u200d🍳", "\u200d두부", "두부\u200c", "\u200d", "\u200c\u200d", "\u200d\u0301a", "a\u200c\u200db", "क्\u200dष",
])
def test_the_name_schema_accepts_exactly_what_the_server_keeps(name: str) -> None:
    """Schemathesis reads the pattern: a name the server refuses must not match it, nor the reverse."""
    import re

    from f2f_cli.api.openapi import ingredient_name_schema
    from f2f_cli.domain.model import normalize_ingredient
    from f2f_cli.errors import InvalidIngredient

    pattern = re.compile(ingredient_name_schema(50)["pattern"])
    try:
        normalize_ingredient(name, 50)
        kept = True
    except InvalidIngredient:
        kept = False
    assert bool(pattern.match(name)) is kept


def test_joiners_between_visible_characters_are_kept_in_names_and_searches(client: TestClient) -> None:
    url = f"/v1/sessions/{_sid(client)}/ingredients"
    chef, persian = "👩\u200d🍳", "می\u200cخواهم"
    r = client.post(url, json={"ingredients": [chef, persian, "\u200d두부\u200d", "두 \u200d부"]})
    assert r.status_code == 200, r.text
    assert r.json()["added"] == [chef, persian, "두부", "두 부"]
    assert client.post(url, json={"ingredients": ["\u200d"]}).status_code == 422  # joins nothing: empty
    assert client.post(url, json={"ingredients": ["두부\u200b"]}).status_code == 422  # other format characters: no
    for path in ("/v1/ingredients", "/v1/recipes"):
        assert client.get(path, params={"search": "두\u200d부"}).status_code == 200
        assert client.get(path, params={"search": "\u200d"}).status_code == 200
        assert client.get(path, params={"search": "두\u200b"}).status_code == 422


def test_an_empty_add_changes_nothing(client: TestClient) -> None:
    url = f"/v1/sessions/{_sid(client)}/ingredients"
    before = client.post(url, json={"ingredients": ["두부"]}).json()
    after = client.post(url, json={"ingredients": []})
    assert after.status_code == 200
    assert {k: after.json()[k] for k in ("version", "expires_at", "updated_at")} == {
        k: before[k] for k in ("version", "expires_at", "updated_at")}
    assert after.json()["added"] == []
