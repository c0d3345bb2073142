"""The findings of the loopback probe of issue #18, each against a real ``f2f serve``.

Raw sockets wherever an HTTP client would normalise the request (oversized or half-sent heads,
bodies that never come, a foreign Host header, malformed request lines); the probes whose answer
depends on the store run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from f2f_cli.api.middleware import SECURITY_HEADERS
from tests.api.test_observability import sample
from tests.conftest import truncate_all
from tests.servers import f2f_server

# Short deadlines so the slow-client probes finish quickly; everything else is the default.
SHORT_TIMEOUTS = {"F2F_HEADER_TIMEOUT_SECONDS": "1", "F2F_BODY_TIMEOUT_SECONDS": "1"}
# The socket read guard: a probe that gets no answer at all fails here instead of hanging.
GUARD_SECONDS = 30.0


class Raw:
    """A reply read off a raw socket."""

    def __init__(self, data: bytes, closed: bool) -> None:
        self.data = data
        self.closed = closed  # the server closed the connection
        head, _, self.body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/") else 0
        self.headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}


def _address(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


def raw_request(base: str, *parts: bytes, pause: float = 0.0, shutdown: bool = False) -> Raw:
    """Send ``parts`` (``pause`` seconds apart) on a new connection and read until the server closes
    it or the guard runs out. Sending stops early if the server already hung up."""
    with socket.create_connection(_address(base), timeout=GUARD_SECONDS) as sock:
        for i, part in enumerate(parts):
            if i and pause:
                time.sleep(pause)
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
        if shutdown:
            sock.shutdown(socket.SHUT_WR)
        return _read_all(sock)


def _read_all(sock: socket.socket) -> Raw:
    data = b""
    closed = False
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                closed = True
                break
            data += chunk
    except ConnectionResetError:
        closed = True
    except TimeoutError:
        pass
    return Raw(data, closed)


def assert_json_error(reply: Raw, status: int, code: str) -> None:
    assert reply.status == status, reply.data[:500]
    assert reply.headers["content-type"] == "application/json"
    assert f'"error":"{code}"'.encode() in reply.body
    assert re.fullmatch(r"[0-9a-f]{32}", reply.headers["x-request-id"])
    for name, value in SECURITY_HEADERS:
        assert reply.headers[name.decode()] == value.decode(), name
    assert "server" not in reply.headers


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The embedded default with short request deadlines, logging at info; (base URL, log file)."""
    workdir = tmp_path_factory.mktemp("probe")
    env = {**SHORT_TIMEOUTS, "F2F_METRICS_CACHE_SECONDS": "0", "F2F_SESSIONS_PER_MINUTE": "0"}
    with f2f_server(env, cwd=workdir, log_level="info") as base:
        yield base, next(workdir.glob("f2f-serve-*.log"))


def _metrics(base: str) -> str:
    return httpx.get(f"{base}/metrics", timeout=10).text


def _add_head(sid: str, length: int, *, close: bool = False) -> bytes:
    """The head of an ingredient add declaring a JSON body of ``length`` bytes."""
    closing = "Connection: close\r\n" if close else ""
    return (f"POST /v1/sessions/{sid}/ingredients HTTP/1.1\r\nHost: p\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{closing}\r\n").encode()


def _new_session(base: str) -> tuple[str, str]:
    r = httpx.post(f"{base}/v1/sessions", timeout=10)
    assert r.status_code == 201
    return r.json()["session_id"], r.cookies["f2f_session"]


# -- 2. request-head limits --------------------------------------------------------------------


def test_oversized_header_is_431_before_it_is_buffered(served: tuple[str, Path]) -> None:
    base, _ = served
    # 32 MB in one header: the server answers after the first 16 KB and hangs up, long before the end.
    head = b"GET /healthz HTTP/1.1\r\nHost: probe\r\nX-Big: "
    chunks = [head, *([b"a" * 1_048_576] * 32), b"\r\n\r\n"]
    reply = raw_request(base, *chunks)
    assert_json_error(reply, 431, "request_header_too_large")
    assert reply.closed
    assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200


def test_too_many_headers_is_431(served: tuple[str, Path]) -> None:
    base, _ = served
    many = b"".join(b"X-H%d: 1\r\n" % i for i in range(101))
    assert_json_error(raw_request(base, b"GET /healthz HTTP/1.1\r\nHost: p\r\n" + many + b"\r\n"),
                      431, "request_header_too_large")
    # Right at the limits is still served: 100 fields, and a 15 KB header.
    at_limit = b"".join(b"X-H%d: 1\r\n" % i for i in range(98))  # + Host + Connection = 100
    ok = raw_request(base, b"GET /healthz HTTP/1.1\r\nHost: p\r\nConnection: close\r\n" + at_limit + b"\r\n")
    assert ok.status == 200
    big = b"GET /healthz HTTP/1.1\r\nHost: p\r\nConnection: close\r\nX-A: " + b"a" * 15_000 + b"\r\n\r\n"
    assert raw_request(base, big).status == 200


# -- 8. the connection layer's own answers ------------------------------------------------------


def test_malformed_request_is_json_400_with_security_headers(served: tuple[str, Path]) -> None:
    base, _ = served
    for garbage in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: p\r\nBad Header\r\n\r\n",
                    b"GET /healthz HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"):
        reply = raw_request(base, garbage)
        assert_json_error(reply, 400, "invalid_request")
        assert reply.closed


def test_metrics_do_not_fingerprint_python(served: tuple[str, Path]) -> None:
    text = _metrics(served[0])
    assert "python_info" not in text and "process_resident_memory_bytes" in text


# -- 7. requests that never finish -------------------------------------------------------------


def test_half_sent_head_is_408_and_closed(served: tuple[str, Path]) -> None:
    base, _ = served
    reply = raw_request(base, b"GET /healthz HTTP/1.1\r\nHost: p\r\nX-Half: ab")
    assert_json_error(reply, 408, "request_timeout")
    assert reply.closed


def test_silent_connection_is_closed_without_an_answer(served: tuple[str, Path]) -> None:
    reply = raw_request(served[0])
    assert reply.closed and reply.data == b""


def test_slow_second_request_on_a_keep_alive_connection_is_408(served: tuple[str, Path]) -> None:
    base, _ = served
    with socket.create_connection(_address(base), timeout=GUARD_SECONDS) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: p\r\n\r\n")
        first = b""
        while b'"phase"' not in first:
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
        reply = _read_all(sock)
    assert_json_error(reply, 408, "request_timeout")


def test_each_deadline_is_its_own_when_head_and_body_differ(tmp_path: Path) -> None:
    """A body gets the body deadline even when the head deadline is shorter (the connection's one timer
    fires at the head deadline and finds it moved on), and the next head gets the head deadline again."""
    env = {"F2F_HEADER_TIMEOUT_SECONDS": "1", "F2F_BODY_TIMEOUT_SECONDS": "3", "F2F_SESSIONS_PER_MINUTE": "0"}
    with f2f_server(env, cwd=tmp_path) as base:
        sid, _ = _new_session(base)
        head = _add_head(sid, 100)
        started = time.monotonic()
        reply = raw_request(base, head, b'{"ingredients": [')
        waited = time.monotonic() - started
        assert_json_error(reply, 408, "request_timeout")
        assert waited >= 2.5, f"the body was cut off after {waited:.2f} s, before its 3 s deadline"
        with socket.create_connection(_address(base), timeout=GUARD_SECONDS) as sock:
            body = b'{"ingredients": ["\xeb\x91\x90\xeb\xb6\x80"]}'
            sock.sendall(_add_head(sid, len(body)) + body)
            first = b""
            while b'"added"' not in first:
                first += sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
            second = _read_all(sock)
            waited = time.monotonic() - started
        assert_json_error(second, 408, "request_timeout")
        assert waited < 2.5, f"the next head waited {waited:.2f} s: the body deadline, not its own 1 s"


def test_a_body_arriving_in_pieces_is_read_whole(served: tuple[str, Path]) -> None:
    base, _ = served
    sid, _ = _new_session(base)
    body = '{"ingredients": ["두부", "김치"]}'.encode()
    head = _add_head(sid, len(body), close=True)
    reply = raw_request(base, head, body[:7], body[7:20], body[20:], pause=0.1)
    assert reply.status == 200, reply.data[:300]
    assert json.loads(reply.body)["added"] == ["두부", "김치"]


def test_declared_body_that_never_comes_is_408_and_not_an_error(served: tuple[str, Path]) -> None:
    base, log = served
    sid, _ = _new_session(base)
    route = "/v1/sessions/{session_id}/ingredients"
    before = sample(_metrics(base), "f2f_http_client_disconnects_total", route=route) or 0
    head = _add_head(sid, 100)
    reply = raw_request(base, head, b'{"ingredients": [')
    assert_json_error(reply, 408, "request_timeout")
    assert reply.closed
    # The app saw a client that went away: counted as such, no 500, no trace; nothing was added.
    text = _wait_for(base, "f2f_http_client_disconnects_total", before + 1, route=route)
    assert sample(text, "f2f_http_requests_total", route=route, status="500") is None
    assert httpx.get(f"{base}/v1/sessions/{sid}", timeout=10).json()["version"] == 1
    assert "Traceback" not in log.read_text()


def test_many_slow_connections_are_all_closed_while_requests_are_served(served: tuple[str, Path]) -> None:
    base, _ = served
    socks = [socket.create_connection(_address(base), timeout=GUARD_SECONDS) for _ in range(50)]
    try:
        for i, sock in enumerate(socks):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: p\r\n" if i % 2 else b"POST /v1/sessions HTTP/1.1\r\n")
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        replies = [_read_all(sock) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    assert all(r.closed for r in replies)
    assert {r.status for r in replies} == {408}


# -- 3. client disconnects ---------------------------------------------------------------------


def test_client_leaving_mid_body_is_counted_not_a_500(served: tuple[str, Path]) -> None:
    base, log = served
    sid, _ = _new_session(base)
    route = "/v1/sessions/{session_id}/ingredients"
    before = sample(_metrics(base), "f2f_http_client_disconnects_total", route=route) or 0
    head = _add_head(sid, 1000)
    for _ in range(20):
        with socket.create_connection(_address(base), timeout=GUARD_SECONDS) as sock:
            sock.sendall(head + b'{"ingredients": ["')
            time.sleep(0.05)  # the app is reading the body now
    text = _wait_for(base, "f2f_http_client_disconnects_total", before + 20, route=route)
    assert sample(text, "f2f_http_requests_total", route=route, status="500") is None
    log_text = log.read_text()
    assert "Traceback" not in log_text and "ClientDisconnect" not in log_text
    assert re.search(r"POST /v1/sessions/\{session_id\}/ingredients 499", log_text)


def _wait_for(base: str, name: str, value: float, **labels: str) -> str:
    # The disconnect is noticed when the server next reads: poll until it is counted (bounded).
    deadline = time.monotonic() + GUARD_SECONDS
    while True:
        text = _metrics(base)
        if (sample(text, name, **labels) or 0) >= value or time.monotonic() > deadline:
            assert sample(text, name, **labels) == value
            return text
        time.sleep(0.1)


# -- 5. no redirect built from the Host header -------------------------------------------------


def test_trailing_slash_is_404_without_a_redirect(served: tuple[str, Path]) -> None:
    base, _ = served
    sid, _ = _new_session(base)
    for path in (f"/v1/sessions/{sid}/ingredients/", f"/v1/sessions/{sid}/", "/healthz/", "/v1/recipes/"):
        reply = raw_request(base, f"GET {path} HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n".encode())
        assert_json_error(reply, 404, "not_found")
        assert "location" not in reply.headers


# -- 6. DELETE and the caller's cookie ---------------------------------------------------------


def test_deleting_another_session_keeps_the_callers_cookie(served: tuple[str, Path]) -> None:
    base, _ = served
    mine, cookie = _new_session(base)
    other, _ = _new_session(base)
    jar = {"Cookie": f"f2f_session={cookie}"}
    r = httpx.delete(f"{base}/v1/sessions/{other}", headers=jar, timeout=10)
    assert r.status_code == 204 and "set-cookie" not in r.headers
    assert httpx.get(f"{base}/v1/sessions/current", headers=jar, timeout=10).json()["session_id"] == mine
    r = httpx.delete(f"{base}/v1/sessions/current", headers=jar, timeout=10)
    assert r.status_code == 204
    assert r.headers["set-cookie"].startswith('f2f_session="";') and "Max-Age=0" in r.headers["set-cookie"]


# -- 1. /metrics cannot be made to render on every scrape --------------------------------------


def test_metrics_are_rendered_at_most_once_per_cache_interval(tmp_path: Path) -> None:
    with f2f_server({"F2F_METRICS_CACHE_SECONDS": "60"}, cwd=tmp_path) as base:
        first = _metrics(base)
        for _ in range(20):
            assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        # Twenty requests later the scrape is byte for byte the same rendering.
        assert _metrics(base) == first
        # (The start-up probe of /healthz is in it; the twenty are not, yet.)
        assert (sample(first, "f2f_http_requests_total", route="/healthz", status="200") or 0) < 20


# -- 4. client input never reaches the store as a value it cannot hold ---------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], scope="module")
def store_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp(f"probe-{request.param}")
    env = {"F2F_SESSIONS_PER_MINUTE": "0"}
    url = None
    if request.param == "postgres":
        url = request.getfixturevalue("pg_database_url")
        env["F2F_DATABASE_URL"] = url
    with f2f_server(env, cwd=workdir) as base:
        yield base
    if url is not None:
        truncate_all(url)


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/recipes?search=%00", 422, "invalid_input"),
        ("/v1/recipes?category=%00", 422, "invalid_input"),
        ("/v1/recipes?search=a%01b", 422, "invalid_input"),
        ("/v1/recipes?search=%E2%80%8B", 422, "invalid_input"),  # zero-width space (a format character)
        ("/v1/ingredients?search=%00", 422, "invalid_input"),
        ("/v1/recipes/2147483648", 404, "recipe_not_found"),
        ("/v1/recipes/9223372036854775807", 404, "recipe_not_found"),
        ("/v1/recipes/99999999999999999999999999", 404, "recipe_not_found"),
        ("/v1/recipes/0", 404, "recipe_not_found"),
        ("/v1/recipes?page=1000000&size=100", 200, None),
    ],
)
def test_input_the_store_cannot_hold_is_refused_first(store_server: str, path: str, status: int,
                                                      code: str | None) -> None:
    reply = raw_request(store_server, f"GET {path} HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n".encode())
    assert reply.status == status, reply.body
    if code is not None:
        assert_json_error(reply, status, code)
    text = reply.body.decode().lower()
    assert not any(word in text for word in ("postgres", "sqlite", "psycopg", "integer out of range", "nul"))


def test_session_probes_on_each_store(store_server: str) -> None:
    sid, _ = _new_session(store_server)
    url = f"{store_server}/v1/sessions/{sid}"
    assert httpx.get(f"{url}/recommendations", params={"category": "\x00"}, timeout=10).status_code == 422
    r = httpx.delete(f"{url}/ingredients", params={"name": "a\x00"}, timeout=10)
    assert r.status_code == 422 and r.json()["error"] == "invalid_ingredient"
    r = httpx.post(f"{url}/ingredients", json={"ingredients": ["두부\x00"]}, timeout=10)
    assert r.status_code == 422 and r.json()["error"] == "invalid_ingredient"
    assert httpx.get(url, timeout=10).json()["version"] == 1  # nothing stored was touched


# -- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [("F2F_MAX_HEADER_BYTES", "100"), ("F2F_MAX_HEADERS", "100000"), ("F2F_HEADER_TIMEOUT_SECONDS", "nan"),
     ("F2F_BODY_TIMEOUT_SECONDS", "0"), ("F2F_KEEP_ALIVE_SECONDS", "-1"), ("F2F_METRICS_CACHE_SECONDS", "61"),
     ("F2F_METRICS_PORT", "70000")],
)
def test_out_of_range_limits_stop_serve_with_exit_2(tmp_path: Path, name: str, value: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("F2F_")} | {name: value}
    done = subprocess.run([sys.executable, "-m", "f2f_cli", "serve"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert name in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "f2f.db").exists()


# -- 1b. a port of its own for /metrics ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_metrics_port_serves_metrics_only_and_the_api_port_does_not(tmp_path: Path) -> None:
    metrics_port = _free_port()
    with f2f_server({"F2F_METRICS_PORT": str(metrics_port)}, cwd=tmp_path) as base:
        scrape = f"http://127.0.0.1:{metrics_port}"
        r = httpx.get(f"{scrape}/metrics", timeout=10)
        assert r.status_code == 200 and "f2f_http_requests_total" in r.text
        public = raw_request(base, b"GET /metrics HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n")
        assert_json_error(public, 404, "not_found")
        for path in ("/healthz", "/v1/sessions/current", "/openapi.json"):
            assert_json_error(raw_request(scrape, f"GET {path} HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n"
                                          .encode()), 404, "not_found")
        assert httpx.post(f"{base}/v1/sessions", timeout=10).status_code == 201


def test_metrics_port_equal_to_the_api_port_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("F2F_")} | {
        "F2F_METRICS_PORT": "8123"}
    done = subprocess.run([sys.executable, "-m", "f2f_cli", "serve", "--port", "8123"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "F2F_METRICS_PORT" in done.stderr


def test_a_scrape_flood_is_spaced_and_refused(tmp_path: Path) -> None:
    import asyncio

    async def flood(base: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=GUARD_SECONDS,
                                     limits=httpx.Limits(max_connections=40)) as http:
            return list(await asyncio.gather(*(http.get("/metrics") for _ in range(40))))

    with f2f_server({}, cwd=tmp_path) as base:  # the default cache (5 s) turns the spacing on
        replies = asyncio.run(flood(base))
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
    ok = [r for r in replies if r.status_code == 200]
    refused = [r for r in replies if r.status_code == 429]
    assert len(ok) + len(refused) == 40 and ok and refused
    # All the scrapes that were answered got the same rendering; the rest were told when to come back.
    assert len({r.content for r in ok}) == 1
    assert all(r.json()["error"] == "rate_limited" and r.headers["retry-after"] == "1" for r in refused)
