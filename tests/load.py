"""HTTP load for fault tests: clients that each own a session, add distinct ingredients and read
their own writes back, so every acknowledged write is known exactly."""

from __future__ import annotations

import asyncio

import httpx


class Load:
    def __init__(self, base: str, clients: int) -> None:
        self.base = base
        self.clients = clients
        self.sent = 0
        self.failed: list[str] = []
        self.acked: dict[str, set[str]] = {}
        self.stale_reads = 0
        self.stop = asyncio.Event()

    @property
    def writes_acked(self) -> int:
        return sum(map(len, self.acked.values()))

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.base, timeout=10) as http:
            await asyncio.gather(*(self._client(http, n) for n in range(self.clients)))

    async def _client(self, http: httpx.AsyncClient, n: int) -> None:
        r = await http.post("/v1/sessions")
        self.sent += 1
        if r.status_code != 201:
            self.failed.append(f"create {r.status_code} {r.text[:100]}")
            return
        sid = r.json()["session_id"]
        self.acked[sid] = set()
        i = 0
        while not self.stop.is_set():
            name = f"c{n}-{i}"
            i += 1
            r = await http.post(f"/v1/sessions/{sid}/ingredients", json={"ingredients": [name]})
            self.sent += 1
            if r.status_code != 200:
                self.failed.append(f"add {r.status_code} {r.text[:100]}")
                await asyncio.sleep(0.05)
                continue
            self.acked[sid].add(name)
            r = await http.get(f"/v1/sessions/{sid}")
            self.sent += 1
            if r.status_code != 200:
                self.failed.append(f"get {r.status_code} {r.text[:100]}")
                continue
            if not self.acked[sid] <= {x["name"] for x in r.json()["ingredients"]}:
                self.stale_reads += 1
            await asyncio.sleep(0.01)

    async def lost_writes(self, base: str | None = None) -> int:
        """Acknowledged ingredients the service no longer returns."""
        lost = 0
        async with httpx.AsyncClient(base_url=base or self.base, timeout=10) as http:
            for sid, names in self.acked.items():
                r = await http.get(f"/v1/sessions/{sid}")
                got = {x["name"] for x in r.json()["ingredients"]} if r.status_code == 200 else set()
                lost += len(names - got)
        return lost
