"""HTTP load for fault tests: clients that each own a session, add distinct ingredients and read
their own writes back, so every acknowledged write is known exactly."""

from __future__ import annotations

import asyncio
import time

import httpx


class Load:
    def __init__(self, base: str, clients: int, *, renew_on_404: bool = False) -> None:
        self.base = base
        self.clients = clients
        # Like the app: a client told its session is gone starts a new one (counted in ``renewed``).
        self.renew_on_404 = renew_on_404
        self.renewed = 0
        self.errors: list[str] = []  # transport errors (no HTTP status), for the failure report
        self.sent = 0
        self.failed: list[str] = []
        # (monotonic time, status) of every failed request and of every request sent: fault tests
        # judge the share of failures in a time window.
        self.failed_at: list[tuple[float, int]] = []
        self.sent_at: list[float] = []
        # (sent, answered, path, status) of every request: latency per session (a Cluster shard's sessions).
        self.requests: list[tuple[float, float, str, int]] = []
        self.acked: dict[str, set[str]] = {}
        self.acked_at: dict[tuple[str, str], float] = {}
        self.stale_reads = 0
        self.stop = asyncio.Event()

    @property
    def writes_acked(self) -> int:
        return sum(map(len, self.acked.values()))

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.base, timeout=10) as http:
            await asyncio.gather(*(self._client(http, n) for n in range(self.clients)))

    async def _create(self, http: httpx.AsyncClient) -> str | None:
        r = await self._send(http, "POST", "/v1/sessions")
        if r is None or r.status_code != 201:
            self._failed("create", r)
            return None
        sid: str = r.json()["session_id"]
        self.acked[sid] = set()
        return sid

    async def _client(self, http: httpx.AsyncClient, n: int) -> None:
        sid = await self._create(http)
        if sid is None:
            return
        i = 0
        while not self.stop.is_set():
            name = f"c{n}-{i}"
            i += 1
            r = await self._send(http, "POST", f"/v1/sessions/{sid}/ingredients", {"ingredients": [name]})
            if r is None or r.status_code != 200:
                self._failed("add", r)
                sid = await self._renew(http, sid, r)
                await asyncio.sleep(0.05)
                continue
            self.acked[sid].add(name)
            self.acked_at[(sid, name)] = time.monotonic()
            r = await self._send(http, "GET", f"/v1/sessions/{sid}")
            if r is None or r.status_code != 200:
                self._failed("get", r)
                sid = await self._renew(http, sid, r)
                continue
            if not self.acked[sid] <= {x["name"] for x in r.json()["ingredients"]}:
                self.stale_reads += 1
            await asyncio.sleep(0.01)

    async def _renew(self, http: httpx.AsyncClient, sid: str, r: httpx.Response | None) -> str:
        if not (self.renew_on_404 and r is not None and r.status_code == 404):
            return sid
        self.renewed += 1
        return await self._create(http) or sid

    async def _send(self, http: httpx.AsyncClient, method: str, url: str,
                    body: object | None = None) -> httpx.Response | None:
        self.sent += 1
        started = time.monotonic()
        self.sent_at.append(started)
        try:
            r = await http.request(method, url, json=body)
        except httpx.HTTPError as exc:
            self.errors.append(f"{method} {type(exc).__name__}: {exc}")
            self.requests.append((started, time.monotonic(), url, 0))
            return None  # a timeout or reset counts as a failed request
        self.requests.append((started, time.monotonic(), url, r.status_code))
        return r

    def _failed(self, what: str, r: httpx.Response | None) -> None:
        status = 0 if r is None else r.status_code
        self.failed.append(f"{what} {status} {'' if r is None else r.text[:100]}")
        self.failed_at.append((time.monotonic(), status))

    def share_failed(self, start: float, end: float = float("inf")) -> tuple[int, int]:
        """(failed, sent) for requests sent in [start, end) by monotonic time (failures by their end)."""
        sent = sum(1 for t in self.sent_at if start <= t < end)
        failed = sum(1 for t, _ in self.failed_at if start <= t < end)
        return failed, sent

    def first_served_after(self, start: float) -> float | None:
        """When the first request sent at or after ``start`` got a 2xx: the moment this instance was
        observed serving again (after a failover, its switch to the new authority)."""
        ends = [end for sent, end, _, status in self.requests if sent >= start and 200 <= status < 300]
        return min(ends) if ends else None

    def share_server_failures(self, start: float, end: float = float("inf")) -> tuple[int, int]:
        """(failed, sent) for requests sent in [start, end); failed: no answer or a 5xx."""
        window = [status for sent, _, _, status in self.requests if start <= sent < end]
        return sum(1 for status in window if status == 0 or status >= 500), len(window)

    async def lost_list(self, base: str | None = None) -> list[tuple[str, str]]:
        """Acknowledged (session, ingredient) pairs the service no longer returns."""
        lost: list[tuple[str, str]] = []
        async with httpx.AsyncClient(base_url=base or self.base, timeout=10) as http:
            for sid, names in self.acked.items():
                r = await http.get(f"/v1/sessions/{sid}")
                got = {x["name"] for x in r.json()["ingredients"]} if r.status_code == 200 else set()
                lost += [(sid, name) for name in sorted(names - got)]
        return lost

    async def lost_writes(self, base: str | None = None) -> int:
        """Acknowledged ingredients the service no longer returns."""
        lost = 0
        async with httpx.AsyncClient(base_url=base or self.base, timeout=10) as http:
            for sid, names in self.acked.items():
                r = await http.get(f"/v1/sessions/{sid}")
                got = {x["name"] for x in r.json()["ingredients"]} if r.status_code == 200 else set()
                lost += len(names - got)
        return lost
