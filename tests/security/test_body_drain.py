"""A whole-body writer reads its 413 (issue 15, item 7).

Python's urllib writes the whole request body before it reads anything. When the service
refuses a body over ``LIVER_CDS_MAX_BODY_BYTES`` (1 MB here) without reading it, the
server must drain the rest (up to 4 x the limit, for at most 5 s) before answering, or
the client gets a connection reset instead of the 413 that tells it what to fix. Bodies of
2 MB and more: larger than what the loopback socket buffers absorb, so without the drain
the reset is certain. Against a real ``liver-cds serve`` on 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from store.server_process import SERVICE, ServerProcess, skip_unless_server_runs

MAX_BODY_BYTES = 1_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    skip_unless_server_runs()
    tmp = tmp_path_factory.mktemp("drain")
    process = ServerProcess(
        f"sqlite:///{tmp / 'liver-cds.db'}",
        tmp / "server.log",
        extra_env={
            "LIVER_CDS_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
            "LIVER_CDS_DEMO_ENABLED": "false",
        },
    )
    try:
        yield process
    finally:
        process.stop()


def post_with_urllib(url: str, body: bytes) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


@pytest.mark.parametrize("size", [2 * MAX_BODY_BYTES, 4 * MAX_BODY_BYTES])
@pytest.mark.parametrize("path", [f"/cds-services/{SERVICE}", f"/cds-services/{SERVICE}/feedback"])
def test_urllib_reads_the_413_of_a_body_over_the_limit(
    server: ServerProcess, path: str, size: int
) -> None:
    status, answer = post_with_urllib(server.base_url + path, b" " * size)
    assert status == 413
    assert "larger than" in str(answer["error"])


def test_urllib_reads_a_404_sent_before_the_body_was_read(server: ServerProcess) -> None:
    status, _ = post_with_urllib(server.base_url + "/no-such-path", b" " * 4 * MAX_BODY_BYTES)
    assert status == 404


def raw_post(server: ServerProcess, head: bytes, first_body_bytes: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head + first_body_bytes)
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
                if b"\r\n\r\n" in got and got.rstrip().endswith(b"}"):
                    break
        except (ConnectionResetError, TimeoutError):
            pass
    return got


def test_a_body_declared_past_the_drain_bound_is_refused_at_once_and_closed(
    server: ServerProcess,
) -> None:
    """50 MB announced: not worth reading; the 413 goes out with Connection: close."""
    head = (
        f"POST /cds-services/{SERVICE} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n"
    ).encode()
    answer = raw_post(server, head, b" " * 1000)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in answer.lower()


def test_an_expect_100_continue_client_is_answered_without_being_asked_for_its_body(
    server: ServerProcess,
) -> None:
    head = (
        f"POST /cds-services/{SERVICE} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nContent-Length: 3000000\r\n"
        "Expect: 100-continue\r\n\r\n"
    ).encode()
    answer = raw_post(server, head, b"")
    assert answer.startswith(b"HTTP/1.1 413 ")  # no "100 Continue" before it
