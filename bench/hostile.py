"""Hostile inputs against the real server: what each bound costs (issue 15).

Usage::

    .venv/bin/python bench/hostile.py

Starts ``liver-cds serve`` (one worker, auth off, default limits, fresh SQLite) on a free
loopback port and prints, for each attack, what the server spent:

* **gzip bomb**: a loopback FHIR server answers every search with 2 MiB of gzip that
  inflates to 2 GiB; four hook calls at once name it as ``fhirServer``. Printed: each
  call's status and time, the slowest ``/healthz`` during the attack, and the server's
  RSS before, after and at its peak (``VmHWM``);
* **header flood**: one connection sends header lines without end (up to 286 MiB); printed:
  how many bytes the client could push before the server closed, and the RSS growth;
* **slow heads**: 200 connections each send one header line every 2 s; printed: how many
  the server had closed after ``LIVER_CDS_HEADER_TIMEOUT_S`` + 2 s;
* **whole-body writer**: urllib posts 6 MB against the 5 MB body limit; printed: the
  status it read (413) or the error it got.

Every loop is bounded in time and count and only talks to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
SERVICE = "liver-metastasis-resectability"
INFLATED = 2 * 1024**3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def gzip_bomb() -> bytes:
    """2 GiB of zeros as gzip, built in about a second: one fully flushed deflate block of
    1 MiB of zeros repeated (blocks after a full flush do not refer back), then the
    trailer's CRC-32 and length."""
    block = bytes(1024 * 1024)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    flushed = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    count = INFLATED // len(block)
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(block, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    final = b"\x03\x00"  # an empty final fixed-Huffman block
    trailer = crc.to_bytes(4, "little") + (INFLATED % 2**32).to_bytes(4, "little")
    return header + flushed * count + final + trailer


def bomb_server(body: bytes) -> int:
    """A loopback FHIR server (a thread) answering every request with ``body`` as gzip."""
    port = free_port()
    ready = threading.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
                b"Content-Encoding: gzip\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                % len(body)
            )
            writer.write(body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        ready.set()
        async with server:
            await server.serve_forever()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    ready.wait(10)
    return port


def hook_body(fhir_port: int) -> bytes:
    return orjson.dumps(
        {
            "hook": "patient-view",
            "hookInstance": "bench-hostile-0000-0000-000000000000",
            "context": {"userId": "Practitioner/bench", "patientId": "bench-1"},
            "fhirServer": f"http://127.0.0.1:{fhir_port}/fhir",
        }
    )


async def bomb_attack(base: str, pid: int, fhir_port: int) -> None:
    body = hook_body(fhir_port)
    before = rss_kib(pid)
    async with httpx.AsyncClient(timeout=30) as client:
        stop = asyncio.Event()
        worst_healthz = 0.0

        async def probe() -> None:
            nonlocal worst_healthz
            while not stop.is_set():
                started = time.perf_counter()
                await client.get(base + "/healthz")
                worst_healthz = max(worst_healthz, time.perf_counter() - started)
                await asyncio.sleep(0.05)

        async def call() -> tuple[int, float]:
            started = time.perf_counter()
            answer = await client.post(
                f"{base}/cds-services/{SERVICE}",
                content=body,
                headers={"content-type": "application/json"},
            )
            return answer.status_code, time.perf_counter() - started

        probing = asyncio.create_task(probe())
        results = await asyncio.gather(*(call() for _ in range(4)))
        stop.set()
        await probing
    after = rss_kib(pid)
    print("gzip bomb (2 MiB -> 2 GiB, 4 concurrent calls)")
    for status, seconds in results:
        print(f"  call: HTTP {status} in {seconds:.2f} s")
    print(f"  slowest /healthz during the attack: {worst_healthz * 1000:.0f} ms")
    print(
        f"  RSS {before['VmRSS'] / 1024:.0f} -> {after['VmRSS'] / 1024:.0f} MiB, "
        f"peak {after['VmHWM'] / 1024:.0f} MiB (peak before: {before['VmHWM'] / 1024:.0f} MiB)"
    )


def header_flood(port: int, pid: int) -> None:
    before = rss_kib(pid)["VmRSS"]
    line = b"X-Flood: " + b"f" * 1000 + b"\r\n"
    sent = 0
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        try:
            while sent < 286 * 1024 * 1024:
                sock.sendall(line * 64)
                sent += len(line) * 64
        except OSError:
            pass
    elapsed = time.perf_counter() - started
    after = rss_kib(pid)["VmRSS"]
    print("header flood (up to 286 MiB of header lines on one connection)")
    print(f"  client pushed {sent / 2**20:.1f} MiB before the server closed ({elapsed:.2f} s)")
    print(f"  RSS {before / 1024:.0f} -> {after / 1024:.0f} MiB")


def slow_heads(port: int, timeout_s: float) -> None:
    sockets = []
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        sockets.append(sock)
    started = time.perf_counter()
    closed = 0
    line = 0
    while time.perf_counter() - started < timeout_s + 2:
        time.sleep(2)
        line += 1
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.sendall(b"X-Slow-%d: 1\r\n" % line)
    for sock in sockets:
        sock.settimeout(0.5)
        try:
            data = sock.recv(4096)
            if data.startswith(b"HTTP/1.1 408") or data == b"":
                closed += 1
        except OSError:
            closed += 1
        sock.close()
    print(f"slow heads (200 connections, one header line every 2 s, {timeout_s:g} s timeout)")
    print(f"  closed by the server after {timeout_s + 2:g} s: {closed} of 200")


def whole_body_writer(base: str) -> None:
    request = urllib.request.Request(
        f"{base}/cds-services/{SERVICE}",
        data=b" " * 6_000_000,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        urllib.request.urlopen(request, timeout=30)
        outcome = "no error?"
    except urllib.error.HTTPError as refused:
        outcome = f"HTTP {refused.code} {refused.read()[:80]!r}"
    except OSError as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    print("whole-body writer (urllib, 6 MB against the 5 MB limit)")
    print(f"  read: {outcome}")


def main() -> int:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVER_CDS_")}
        env.update(
            {
                "LIVER_CDS_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
                "LIVER_CDS_AUTH": "off",
                "LIVER_CDS_LOG_LEVEL": "error",
                "LIVER_CDS_LOG_FORMAT": "json",
                "LIVER_CDS_DEMO_ENABLED": "false",
            }
        )
        command = [str(ROOT / ".venv" / "bin" / "liver-cds"), "serve", "--port", str(port)]
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            started = time.perf_counter()
            bomb = gzip_bomb()
            took = time.perf_counter() - started
            print(f"(bomb built: {len(bomb) / 2**20:.1f} MiB in {took:.1f} s)")
            asyncio.run(bomb_attack(base, proc.pid, bomb_server(bomb)))
            header_flood(port, proc.pid)
            slow_heads(port, 10.0)
            whole_body_writer(base)
        finally:
            proc.terminate()
            proc.wait(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
