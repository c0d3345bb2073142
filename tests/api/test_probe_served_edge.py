"""The findings of the second loopback probe (issue #33), each against a real ``f2f serve`` with raw bytes:
request smuggling through ``Upgrade``, slow readers, clients leaving with pipelined requests, and the
smaller gaps of the HTTP edge."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.test_probe_served import GUARD_SECONDS, _address, _read_all, assert_json_error, raw_request
from tests.servers import f2f_server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("edge")
    env = {"F2F_HEADER_TIMEOUT_SECONDS": "1", "F2F_BODY_TIMEOUT_SECONDS": "1", "F2F_SESSIONS_PER_MINUTE": "0",
           "F2F_WRITE_TIMEOUT_SECONDS": "1", "F2F_MAX_PIPELINED_REQUESTS": "4",
           "F2F_KEEP_ALIVE_SECONDS": "1"}
    with f2f_server(env, cwd=workdir, log_level="info") as base:
        yield base, next(workdir.glob("f2f-serve-*.log"))


def _session(base: str) -> str:
    r = httpx.post(f"{base}/v1/sessions", timeout=10)
    assert r.status_code == 201
    sid: str = r.json()["session_id"]
    return sid


def _ingredients(base: str, sid: str) -> list[str]:
    return [i["name"] for i in httpx.get(f"{base}/v1/sessions/{sid}", timeout=10).json()["ingredients"]]


def _replies(data: bytes) -> list[int]:
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


def _smuggle(victim: str, padding: bytes = b"") -> bytes:
    body = b'{"ingredients":["smuggled"]}'
    return padding + (f"POST /v1/sessions/{victim}/ingredients HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                      f"\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def _upgrade_head(sid: str, length: int, connection: str = "Upgrade") -> bytes:
    return (f"POST /v1/sessions/{sid}/ingredients HTTP/1.1\r\nHost: x\r\nConnection: {connection}\r\n"
            f"Upgrade: foo\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


# -- 1. Upgrade: the body is the request's body, never more requests ------------------------------------


@pytest.mark.parametrize("padding", [b"", b"\r\n" * 64], ids=["plain", "nginx-crlf-padding"])
@pytest.mark.parametrize("split", ["two-writes-200ms", "one-write"])
def test_an_upgrade_requests_body_is_not_parsed_as_requests(served: tuple[str, Path], padding: bytes,
                                                            split: str) -> None:
    base, _ = served
    attacker, victim = _session(base), _session(base)
    smuggled = _smuggle(victim, padding)
    head = _upgrade_head(attacker, len(smuggled))
    parts = (head, smuggled) if split == "two-writes-200ms" else (head + smuggled,)
    reply = raw_request(base, *parts, pause=0.2)
    # One request, one answer: its body (not JSON) is refused; nothing reached the other session.
    assert _replies(reply.data) == [422], reply.data[:300]
    assert _ingredients(base, victim) == [] and _ingredients(base, attacker) == []


def test_an_ordinary_post_with_upgrade_h2c_is_served_with_its_body(served: tuple[str, Path]) -> None:
    base, _ = served
    sid = _session(base)
    body = '{"ingredients":["두부"]}'.encode()
    head = (f"POST /v1/sessions/{sid}/ingredients HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade, "
            f"HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    after = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    reply = raw_request(base, head, body + after, pause=0.2)
    assert _replies(reply.data) == [200, 200]
    assert _ingredients(base, sid) == ["두부"]


def test_connect_is_refused(served: tuple[str, Path]) -> None:
    reply = raw_request(served[0], b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n")
    assert_json_error(reply, 405, "method_not_allowed")
    assert reply.closed and _replies(reply.data) == [405]


def test_upgrade_attempts_log_no_websocket_warning(served: tuple[str, Path]) -> None:
    base, log = served
    raw_request(base, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\r\n")
    assert "WebSocket" not in log.read_text() and "Unsupported upgrade" not in log.read_text()


# -- 2. slow readers ------------------------------------------------------------------------------------


def _slow_reader(base: str, requests: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(GUARD_SECONDS)
    sock.connect(_address(base))
    sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * requests)
    return sock


def test_a_client_that_pipelines_and_never_reads_is_cut_off(served: tuple[str, Path]) -> None:
    base, _ = served
    size = len(httpx.get(f"{base}/openapi.json", timeout=10).content)
    with _slow_reader(base, 150) as sock:
        time.sleep(4)  # past the 1 s write timeout, reading nothing
        reply = _read_all(sock)
    assert reply.closed
    assert len(reply.data) < 150 * size  # the answers were not all read and kept for it
    assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200


def test_requests_past_the_pipeline_cap_are_not_read(served: tuple[str, Path]) -> None:
    base, _ = served
    reply = raw_request(base, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 50)
    # One answered at once, four read ahead of it (F2F_MAX_PIPELINED_REQUESTS), then closed.
    assert _replies(reply.data) == [200] * 5 and reply.closed


# -- 3. a client leaving with pipelined requests is not an error ---------------------------------------


@pytest.fixture(scope="module")
def roomy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A server that reads up to 1,000 pipelined requests ahead (the setting's top): enough queued answers for a
    client that leaves to find many of them unsent, as in the probe."""
    workdir = tmp_path_factory.mktemp("roomy")
    env = {"F2F_SESSIONS_PER_MINUTE": "0", "F2F_MAX_PIPELINED_REQUESTS": "1000"}
    with f2f_server(env, cwd=workdir, log_level="info") as base:
        yield base, next(workdir.glob("f2f-serve-*.log"))


@pytest.mark.parametrize("server", ["served", "roomy"])
def test_leaving_with_pipelined_requests_logs_no_error(server: str, request: pytest.FixtureRequest) -> None:
    base, log = request.getfixturevalue(server)
    for _ in range(5):
        with _slow_reader(base, 150):
            time.sleep(0.3)
    time.sleep(1.5)
    text = log.read_text()
    assert "Traceback" not in text and " ERROR " not in text and "ERROR:" not in text, text[-3000:]


# -- 4-7 ------------------------------------------------------------------------------------------------


def test_a_recipe_id_of_4301_digits_is_404(served: tuple[str, Path]) -> None:
    target = b"/v1/recipes/" + b"9" * 4301
    reply = raw_request(served[0], b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert_json_error(reply, 404, "recipe_not_found")


@pytest.mark.parametrize("name", ["\u3164", "\u115f", "\u1160", "\uffa0", "\u2800", "\u034f", "\u17b4", "\u0301"])
def test_invisible_names_are_refused(served: tuple[str, Path], name: str) -> None:
    base, _ = served
    sid = _session(base)
    r = httpx.post(f"{base}/v1/sessions/{sid}/ingredients", json={"ingredients": [name]}, timeout=10)
    assert r.status_code == 422 and r.json()["error"] == "invalid_ingredient"


def test_look_alike_names_are_one_ingredient(served: tuple[str, Path]) -> None:
    base, _ = served
    sid = _session(base)
    names = ["두부", "두부\ufe0f", "두부\U000e0100", "두부\u034f"]
    r = httpx.post(f"{base}/v1/sessions/{sid}/ingredients", json={"ingredients": names}, timeout=10)
    assert r.status_code == 200 and r.json()["added"] == ["두부"]
    assert _ingredients(base, sid) == ["두부"]


def test_endless_chunk_extensions_are_refused(served: tuple[str, Path]) -> None:
    base, _ = served
    sid = _session(base)
    head = (f"POST /v1/sessions/{sid}/ingredients HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n5;e=").encode()
    reply = raw_request(base, head, *([b"a" * 4096] * 8))
    assert_json_error(reply, 400, "invalid_request")


def test_a_large_partial_head_after_a_complete_request_is_431(served: tuple[str, Path]) -> None:
    base, _ = served
    first = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    reply = raw_request(base, first + b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 60_000)
    assert _replies(reply.data) == [200, 431] and reply.closed


def test_a_stalled_partial_head_after_a_complete_request_is_408(served: tuple[str, Path]) -> None:
    base, _ = served
    reply = raw_request(base, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nX-Half: ab")
    assert _replies(reply.data) == [200, 408] and reply.closed


# -- 8. head and framing rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n", 400, "invalid_request"),
        (b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "invalid_request"),
        (b"POST /v1/sessions HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501,
         "not_implemented"),
        (b"GET /healthz HTTP/2.0\r\nHost: a\r\n\r\n", 505, "http_version_not_supported"),
    ],
    ids=["no-host", "two-hosts", "gzip-chunked", "http2"],
)
def test_heads_refused_at_the_edge(served: tuple[str, Path], data: bytes, status: int, code: str) -> None:
    reply = raw_request(served[0], data)
    assert_json_error(reply, status, code)
    assert reply.closed


def test_an_encoded_slash_is_not_a_slash(served: tuple[str, Path]) -> None:
    base, _ = served
    sid = _session(base)
    httpx.post(f"{base}/v1/sessions/{sid}/ingredients", json={"ingredients": ["두부"]}, timeout=10)
    for path in (f"/v1/sessions/{sid}%2Fingredients", f"/v1/sessions/{sid}%2fingredients"):
        reply = raw_request(base, f"DELETE {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert reply.status in (400, 404), reply.data[:300]
    assert _ingredients(base, sid) == ["두부"]
    reply = raw_request(base, b"GET /%6detrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert_json_error(reply, 404, "not_found")


def test_a_json_body_in_another_charset_is_415(served: tuple[str, Path]) -> None:
    base, _ = served
    sid = _session(base)
    body = json.dumps({"ingredients": ["tofu"]}).encode("utf-16")
    r = httpx.post(f"{base}/v1/sessions/{sid}/ingredients", content=body,
                   headers={"Content-Type": "application/json; charset=utf-16"}, timeout=10)
    assert r.status_code == 415


@pytest.mark.parametrize("value", ["٥", "５", "1_0", "+5", " 5"])
def test_integer_query_values_are_ascii_digits(served: tuple[str, Path], value: str) -> None:
    r = httpx.get(f"{served[0]}/v1/recipes", params={"size": value}, timeout=10)
    assert r.status_code == 422 and r.json()["error"] == "invalid_input"

