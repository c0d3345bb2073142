"""Concurrent writers over real HTTP against a real ``f2f serve`` on PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.servers import f2f_server


async def test_fifty_concurrent_adds_to_one_session_lose_nothing(pg_url: str, tmp_path: Path) -> None:
    with f2f_server({"F2F_DATABASE_URL": pg_url, "F2F_DB_POOL_SIZE": "20"}, cwd=tmp_path) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            sid = (await client.post("/v1/sessions")).json()["session_id"]
            names = [f"재료{i:02d}" for i in range(50)]
            responses = await asyncio.gather(
                *(client.post(f"/v1/sessions/{sid}/ingredients", json={"ingredients": [n]}) for n in names)
            )
            assert [r.status_code for r in responses] == [200] * 50
            assert sorted(r.json()["version"] for r in responses) == list(range(2, 52))
            final = (await client.get(f"/v1/sessions/{sid}")).json()
    assert {i["name"] for i in final["ingredients"]} == set(names)
    assert final["version"] == 51


async def test_concurrent_adds_on_the_embedded_default(tmp_path: Path) -> None:
    """The zero-config mode (SQLite file in the working directory) serializes writers safely."""
    with f2f_server({}, cwd=tmp_path) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            sid = (await client.post("/v1/sessions")).json()["session_id"]
            names = [f"item{i:02d}" for i in range(30)]
            responses = await asyncio.gather(
                *(client.post(f"/v1/sessions/{sid}/ingredients", json={"ingredients": [n]}) for n in names)
            )
            assert {r.status_code for r in responses} == {200}
            final = (await client.get(f"/v1/sessions/{sid}")).json()
    assert final["version"] == 31
    assert (tmp_path / "f2f.db").exists()
