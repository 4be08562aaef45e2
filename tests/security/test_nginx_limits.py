"""The nginx configuration shipped in deploy/nginx/ enforces the documented request bounds.

nginx (Debian's package; the test skips when it is not installed) runs with
``deploy/nginx/liver-cds-limits.conf`` included as shipped in a plain-http ``server`` on a
free loopback port, in front of a small upstream that answers 200. Only the header timeout
is shortened (10 s -> 1 s) to keep the test fast. Checked: an ordinary request passes; a
head over the header buffers is refused by nginx; a head dripped line by line is cut off
at the timeout; a body over 5 MiB gets 413 from nginx, never reaching the upstream.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIMITS = ROOT / "deploy" / "nginx" / "liver-cds-limits.conf"
HEADER_TIMEOUT_S = 1.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Upstream(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Upstream.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if binary is None:
        pytest.skip("nginx is not installed (Debian package nginx-light or nginx)")
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    tmp = tmp_path_factory.mktemp("nginx")
    limits = LIMITS.read_text().replace("client_header_timeout 10s;", "client_header_timeout 1s;")
    assert "client_header_timeout 1s;" in limits
    (tmp / "limits.conf").write_text(limits)
    port = free_port()
    (tmp / "nginx.conf").write_text(
        f"""
        daemon off;
        pid {tmp}/nginx.pid;
        error_log {tmp}/error.log warn;
        events {{ worker_connections 64; }}
        http {{
            access_log off;
            client_body_temp_path {tmp}/body;
            client_body_buffer_size 8m;  # bodies in memory: workers may not write {tmp}
            proxy_temp_path {tmp}/proxy;
            fastcgi_temp_path {tmp}/fastcgi;
            uwsgi_temp_path {tmp}/uwsgi;
            scgi_temp_path {tmp}/scgi;
            upstream liver_cds {{ server 127.0.0.1:{upstream.server_address[1]}; }}
            server {{
                listen 127.0.0.1:{port};
                include {tmp}/limits.conf;
                location / {{ proxy_pass http://liver_cds; }}
            }}
        }}
        """
    )
    process = subprocess.Popen(
        [binary, "-c", str(tmp / "nginx.conf"), "-p", str(tmp), "-e", str(tmp / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if process.poll() is not None:
                error = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"nginx did not start: {error}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        upstream.shutdown()


def exchange(port: int, data: bytes, wait_s: float = 5.0) -> bytes:
    """Send ``data``; return the answer's status line and headers (and what came with them)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        got = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in got and (chunk := sock.recv(65536)):
                got += chunk
    return got


def head(padding: int = 0) -> bytes:
    pad = f"X-Padding: {'a' * padding}\r\n" if padding else ""
    return f"GET /healthz HTTP/1.1\r\nHost: x\r\n{pad}Connection: close\r\n\r\n".encode()


def test_requests_within_the_bounds_pass(proxy: int) -> None:
    """28 KiB of headers in 7 KiB lines, and a 4.5 MB body: within the service's own limits
    (nginx's defaults would refuse the body at 1 MiB)."""
    lines = b"".join(b"X-%d: %s\r\n" % (i, b"c" * 7000) for i in range(4))
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + lines + b"Connection: close\r\n\r\n"
    assert exchange(proxy, many).startswith(b"HTTP/1.1 200 ")
    body = b" " * 4_500_000
    post = (
        b"POST /cds-services/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    )
    assert exchange(proxy, post + body).startswith(b"HTTP/1.1 200 ")


def test_oversized_headers_are_refused_by_nginx(proxy: int) -> None:
    before = len(Upstream.seen)
    one_long_line = exchange(proxy, head(9000))
    many_lines = exchange(
        proxy,
        b"GET /x HTTP/1.1\r\nHost: x\r\n"
        + b"X-A: "
        + b"b" * 7000
        + b"\r\n" * 1
        + b"".join(b"X-%d: %s\r\n" % (i, b"c" * 7000) for i in range(6))
        + b"\r\n",
    )
    assert one_long_line.startswith(b"HTTP/1.1 400 ")
    assert many_lines.startswith(b"HTTP/1.1 400 ")
    assert len(Upstream.seen) == before


def test_a_dripped_head_is_closed_at_the_timeout(proxy: int) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", proxy), timeout=0.2) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        closed = False
        lines = 0
        while time.monotonic() - started < HEADER_TIMEOUT_S + 3:
            try:
                sock.sendall(b"X-Slow-%d: 1\r\n" % lines)
                lines += 1
                if sock.recv(65536) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
    assert closed, f"still open after {lines} lines"
    assert time.monotonic() - started < HEADER_TIMEOUT_S + 3


def test_a_body_over_five_mebibytes_gets_413_from_nginx(proxy: int) -> None:
    before = len(Upstream.seen)
    answer = exchange(
        proxy,
        b"POST /cds-services/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 6000000\r\nConnection: close\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert len(Upstream.seen) == before
