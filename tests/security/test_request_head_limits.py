"""Request heads are bounded in size and time by the server itself (issue 15, item 2).

A real ``liver-cds serve`` (uvicorn, httptools, the application) on 127.0.0.1, with
``LIVER_CDS_MAX_HEADER_BYTES=8192`` and ``LIVER_CDS_HEADER_TIMEOUT_S=1``, talked to over
raw sockets: oversized heads get 431 before any of them reaches the application, a head
dripped one line at a time is cut off with 408 at the timeout, a silent connection is
closed, and ordinary requests (and idle kept-alive connections) are not disturbed.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from store.server_process import ServerProcess, skip_unless_server_runs

from service.httpserver import _head_end

MAX_HEADER_BYTES = 8192
HEADER_TIMEOUT_S = 1.0
CLOSE_SLACK_S = 2.0
"""Generous: the check is that the connection is closed at all, near the timeout."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    skip_unless_server_runs()
    tmp = tmp_path_factory.mktemp("head-limits")
    process = ServerProcess(
        f"sqlite:///{tmp / 'liver-cds.db'}",
        tmp / "server.log",
        extra_env={
            "LIVER_CDS_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
            "LIVER_CDS_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
            "LIVER_CDS_DEMO_ENABLED": "false",
        },
    )
    try:
        yield process
    finally:
        process.stop()


def connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    return sock


def read_until_closed(sock: socket.socket, limit_s: float) -> bytes:
    """Everything the server sends until it closes the connection (or ``limit_s`` passes)."""
    sock.settimeout(limit_s)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except ConnectionResetError:
        pass
    return got


def request_head(extra_header_bytes: int = 0) -> bytes:
    head = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if extra_header_bytes:
        head += "X-Padding: " + "a" * extra_header_bytes + "\r\n"
    return head.encode() + b"Connection: close\r\n\r\n"


def test_an_ordinary_head_near_the_limit_is_served(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(request_head(MAX_HEADER_BYTES - 200))
        answer = read_until_closed(sock, 5)
    assert answer.startswith(b"HTTP/1.1 200 ")


def test_an_oversized_head_is_refused_with_431(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(request_head(MAX_HEADER_BYTES + 100))
        answer = read_until_closed(sock, 5)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"request headers too large" in answer


@pytest.mark.parametrize("head_padding", [MAX_HEADER_BYTES - 300, MAX_HEADER_BYTES + 100])
def test_a_body_sent_with_its_head_in_one_write_counts_only_the_head(
    server: ServerProcess, head_padding: int
) -> None:
    """The head's end is looked for in the chunk's first bytes only; a large body in the
    same chunk is neither counted as head nor allowed to hide an oversized head."""
    body = b"{" + b" " * 200_000 + b"}"
    head = (
        "POST /cds-services/no-such-service HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-Padding: {'a' * head_padding}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with connect(server) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head + body)
        answer = read_until_closed(sock, 5)
    expected = b"HTTP/1.1 404 " if head_padding < MAX_HEADER_BYTES else b"HTTP/1.1 431 "
    assert answer.startswith(expected)


def test_a_header_flood_is_cut_off_near_the_limit(server: ServerProcess) -> None:
    """Header lines sent without end: the server answers 431 and closes as soon as the
    count passes the limit, whatever the client still has to send (64 MiB here)."""
    line = b"X-Flood: " + b"f" * 1000 + b"\r\n"
    sent = 0
    answer = b""
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        try:
            while sent < 64 * 1024 * 1024:
                sock.sendall(line * 64)
                sent += len(line) * 64
        except (BrokenPipeError, ConnectionResetError):
            pass
        else:
            pytest.fail(f"the server took {sent} bytes of headers without closing")
        with contextlib.suppress(OSError):
            answer = read_until_closed(sock, 2)
    # The client's sends fail once the server has closed: the kernel buffers on both sides
    # (a few MiB on loopback) are all it could push, never the 64 MiB.
    assert sent < 16 * 1024 * 1024
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 ")


def test_a_head_dripped_line_by_line_is_closed_at_the_timeout(server: ServerProcess) -> None:
    lines_sent = 0
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.settimeout(0.25)
        answer = b""
        while time.monotonic() - started < HEADER_TIMEOUT_S + CLOSE_SLACK_S:
            try:
                sock.sendall(b"X-Slow: %d\r\n" % lines_sent)
                lines_sent += 1
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            answer += chunk
            if not chunk:
                break
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 ") or answer == b""
    assert elapsed < HEADER_TIMEOUT_S + CLOSE_SLACK_S, f"still open after {lines_sent} lines"


def test_a_connection_that_sends_nothing_is_closed_at_the_timeout(server: ServerProcess) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        answer = read_until_closed(sock, HEADER_TIMEOUT_S + CLOSE_SLACK_S)
        elapsed = time.monotonic() - started
    assert answer == b""
    assert elapsed < HEADER_TIMEOUT_S + CLOSE_SLACK_S


def test_an_idle_kept_alive_connection_outlives_the_head_timeout(server: ServerProcess) -> None:
    """Between requests the keep-alive timeout rules (75 s), not the head timeout."""
    keep_alive = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with connect(server) as sock:
        sock.sendall(keep_alive)
        first = b""
        while not first.endswith(b'{"status":"ok"}'):
            first += sock.recv(65536)
        time.sleep(HEADER_TIMEOUT_S + 0.5)
        sock.sendall(request_head())
        second = read_until_closed(sock, 5)
    assert first.startswith(b"HTTP/1.1 200 ")
    assert second.startswith(b"HTTP/1.1 200 ")


def test_the_limits_are_the_documented_settings() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "`LIVER_CDS_MAX_HEADER_BYTES` | `32768`" in readme
    assert "`LIVER_CDS_HEADER_TIMEOUT_S` | `10.0`" in readme


@given(
    window=st.binary(max_size=60).map(lambda raw: raw.translate(_HEAD_ALPHABET)),
    bound=st.integers(min_value=0, max_value=70),
)
def test_the_head_ends_at_the_first_blank_line_of_either_kind(window: bytes, bound: int) -> None:
    """``_head_end`` is the earliest end of ``\\r\\n\\r\\n`` or ``\\n\\n`` within the bound,
    though it looks for the bare ``\\n\\n`` only up to the first ``\\r\\n\\r\\n``."""
    searched = window[:bound]
    ends = [i + len(end) for end in (b"\r\n\r\n", b"\n\n") if (i := searched.find(end)) >= 0]
    assert _head_end(window, bound) == (min(ends) if ends else -1)


_HEAD_ALPHABET = bytes(b"\r\nA"[byte % 3] for byte in range(256))
"""Maps any byte to CR, LF or a letter, so blank lines of both kinds are common."""
