"""A release's end-to-end check over HTTP (``f2f smoke``, the chart's ``helm test`` pod).

Stdlib only (``urllib``): the check runs from the f2f image against a Service, with nothing
but the base URL. The steps are the life of one session: create it, add an ingredient, read it
back, delete it (and see it gone), then ``/readyz``. The first step that fails stops the check
with :class:`SmokeFailed` naming it; the session is deleted whatever happens after its creation.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from f2f_cli.errors import F2FError, InvalidInput

# A name no real fridge holds, so a leftover session (a failed delete) is recognisable.
PROBE_INGREDIENT = "f2f-smoke-두부"


class SmokeFailed(F2FError):
    code = "smoke_failed"


@dataclass(frozen=True)
class SmokeStep:
    name: str
    status: int
    milliseconds: float


@dataclass(frozen=True)
class _Answer:
    status: int
    body: Any


def check_base_url(base_url: str) -> str:
    """``base_url`` without a trailing slash; InvalidInput (exit 2) unless it is an http(s) URL with a host."""
    parsed = urllib.parse.urlsplit(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.query or parsed.fragment:
        raise InvalidInput(f"{base_url!r} is not a base URL like http://f2f.shop.svc:80")
    return base_url.rstrip("/")


def run_smoke(base_url: str, *, prefix: str = "/v1", timeout: float = 10.0,
              on_step: Callable[[SmokeStep], None] | None = None) -> list[SmokeStep]:
    """Every step in order; SmokeFailed at the first one whose answer is not what f2f promises."""
    base = check_base_url(base_url)
    api = base + prefix.rstrip("/")
    steps: list[SmokeStep] = []

    def step(name: str, method: str, url: str, expect: int, body: Any = None) -> _Answer:
        started = time.perf_counter()
        answer = _call(method, url, body, timeout, name)
        done = SmokeStep(name, answer.status, round((time.perf_counter() - started) * 1000, 1))
        if answer.status != expect:
            raise SmokeFailed(f"{name}: {method} {url} answered {answer.status}, expected {expect}: "
                              f"{_short(answer.body)}")
        steps.append(done)
        if on_step is not None:
            on_step(done)
        return answer

    created = step("create session", "POST", f"{api}/sessions", 201)
    session_id = created.body.get("session_id") if isinstance(created.body, dict) else None
    if not isinstance(session_id, str) or not session_id:
        raise SmokeFailed(f"create session: the answer holds no session_id: {_short(created.body)}")
    session = f"{api}/sessions/{urllib.parse.quote(session_id, safe='')}"
    deleted = False
    try:
        step("add ingredient", "POST", f"{session}/ingredients", 200, {"ingredients": [PROBE_INGREDIENT]})
        read = step("read back", "GET", f"{session}/ingredients", 200)
        if PROBE_INGREDIENT not in json.dumps(read.body, ensure_ascii=False):
            raise SmokeFailed(f"read back: {PROBE_INGREDIENT} is missing from {_short(read.body)}")
        step("delete session", "DELETE", session, 204)
        deleted = True
        step("deleted session is gone", "GET", session, 404)
    finally:
        if not deleted:
            with contextlib.suppress(SmokeFailed):  # the step's own failure is the one to report
                _call("DELETE", session, None, timeout, "clean up")
    step("readyz", "GET", f"{base}/readyz", 200)
    return steps


def _call(method: str, url: str, body: Any, timeout: float, name: str) -> _Answer:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _Answer(response.status, _decode(response.read()))
    except urllib.error.HTTPError as exc:
        return _Answer(exc.code, _decode(exc.read()))
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SmokeFailed(f"{name}: {method} {url} failed: {reason}") from None


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _short(body: Any) -> str:
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return text if len(text) <= 200 else text[:200] + "…"
