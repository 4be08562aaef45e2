"""A FHIR server that misbehaves on purpose, for the fault tests of the fetch path.

It speaks just enough HTTP/1.1 (on raw asyncio streams, so it can also break the
protocol: reset a connection mid-body, trickle bytes, never answer) to be called through
the real httpx client. It runs on a free loopback port in a background thread.

URLs: ``http://127.0.0.1:<port>/<fault>/<scope>/<FHIR relative URL>``. Use
:meth:`FaultServer.base` as the ``fhirServer`` of a hook call. ``scope`` is ``all`` or a
resource type: the fault applies to requests for that type only, every other request is
answered normally, so a test can break the Patient read while Conditions and
Observations still arrive.

Faults (see :data:`FAULTS`): ``ok``, ``reset``, ``close``, ``slow``, ``trickle``,
``status-<code>``, ``redirect``, ``html``, ``garbage``, ``json-array``, ``not-bundle``,
``outcome``, ``loop``, ``self-loop``, ``endless``, ``drip``, ``offbase``, ``huge``,
``huge-declared``. :meth:`FaultServer.refused_base` is a port where nothing listens.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

FAULTS: dict[str, str] = {
    "ok": "a well-behaved server (paging with _count and page)",
    "reset": "headers and part of the body, then a TCP reset",
    "close": "the connection is closed without any answer",
    "slow": "no answer for a minute",
    "trickle": "headers at once, then one byte of body every 0.1 s, forever",
    "status-<code>": "an OperationOutcome with that HTTP status (401, 403, 404, 500, ...)",
    "redirect": "302 to the same path on the ok base",
    "html": "200 with an HTML page",
    "garbage": "200 application/fhir+json that is not JSON",
    "json-array": "200 with a JSON array",
    "not-bundle": "200 with a Basic resource, for reads and searches alike",
    "outcome": "200 with an OperationOutcome",
    "loop": "next links going first page -> page 2 -> page 1 -> page 2",
    "self-loop": "a next link pointing at the page itself",
    "endless": "a next link on every page, each page new",
    "drip": "like endless, each page taking 0.3 s",
    "offbase": "a next link to another base on the same host",
    "huge": "a chunked page that never ends (no Content-Length)",
    "huge-declared": "a Content-Length of 1 GB",
}

PATIENT_ID = "p1"
CONDITIONS = 2
OBSERVATIONS = 3


@dataclass(frozen=True)
class Seen:
    """One request the server received (for assertions)."""

    fault: str
    scope: str
    target: str
    """The FHIR relative URL, e.g. ``Observation?patient=p1``."""
    authorization: str | None


def _patient() -> dict[str, Any]:
    return {"resourceType": "Patient", "id": PATIENT_ID, "birthDate": "1960-05-01"}


def _conditions() -> list[dict[str, Any]]:
    return [
        {
            "resourceType": "Condition",
            "id": f"c{i}",
            "subject": {"reference": f"Patient/{PATIENT_ID}"},
            "code": {"text": f"condition {i}"},
        }
        for i in range(CONDITIONS)
    ]


def _observations() -> list[dict[str, Any]]:
    return [
        {
            "resourceType": "Observation",
            "id": f"o{i}",
            "status": "final",
            "subject": {"reference": f"Patient/{PATIENT_ID}"},
            "code": {"text": f"observation {i}"},
        }
        for i in range(OBSERVATIONS)
    ]


def _bundle(resources: list[dict[str, Any]], next_url: str | None) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }
    if next_url is not None:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


class FaultServer:
    """The server; :meth:`running` starts it in a thread and stops it afterwards."""

    def __init__(self) -> None:
        self.port = 0
        self.seen: list[Seen] = []
        self.bytes_sent: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # --- public --------------------------------------------------------------------------

    def base(self, fault: str, scope: str = "all") -> str:
        return f"http://127.0.0.1:{self.port}/{fault}/{scope}"

    @staticmethod
    def refused_base() -> str:
        """A loopback base where nothing listens (connection refused)."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        return f"http://127.0.0.1:{port}/fhir"

    def requests_for(self, fault: str) -> list[Seen]:
        return [s for s in self.seen if s.fault == fault]

    @contextmanager
    def running(self) -> Iterator[FaultServer]:
        self._thread = threading.Thread(target=self._run, name="fault-fhir-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fault server did not start")
        try:
            yield self
        finally:
            self._stop()

    # --- the loop ------------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._start())
            self._ready.set()
            loop.run_forever()
        finally:
            loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def _stop(self) -> None:
        loop = self._loop
        if loop is None or self._thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        self._thread.join(10)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:  # the server stops while a slow fault still waits
            pass
        finally:
            self._tasks.discard(task)
            with suppress(Exception):
                writer.close()

    # --- HTTP ------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        _method, raw_target, _version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        parts = urlsplit(raw_target)
        segments = [s for s in parts.path.split("/") if s]
        if len(segments) < 3:
            await self._send_json(writer, 404, _outcome("not-found", "unknown path"))
            return
        fault, scope, rest = segments[0], segments[1], segments[2:]
        target = "/".join(rest) + (f"?{parts.query}" if parts.query else "")
        self.seen.append(Seen(fault, scope, target, headers.get("authorization")))
        resource_type = rest[0]
        if scope not in ("all", resource_type):
            fault = "ok"
        await self._fault(fault, scope, rest, parse_qs(parts.query), writer)

    async def _fault(
        self,
        fault: str,
        scope: str,
        rest: list[str],
        query: dict[str, list[str]],
        writer: asyncio.StreamWriter,
    ) -> None:
        base = f"http://127.0.0.1:{self.port}/{fault}/{scope}"
        resource_type = rest[0]
        page = int(query.get("page", ["1"])[0])
        if fault == "ok":
            await self._send_json(writer, 200, self._ok(base, rest, query))
        elif fault == "reset":
            body = json.dumps(_bundle(_observations() * 50, None)).encode()
            writer.write(_head(200, "application/fhir+json", len(body)))
            writer.write(body[: len(body) // 3])
            await writer.drain()
            _reset(writer)
        elif fault == "close":
            _reset(writer)
        elif fault == "slow":
            await asyncio.sleep(60)
        elif fault == "trickle":
            writer.write(_head(200, "application/fhir+json", 1000))
            while True:
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.1)
        elif fault.startswith("status-"):
            code = int(fault.removeprefix("status-"))
            await self._send_json(writer, code, _outcome("forbidden", f"status {code}"))
        elif fault == "redirect":
            location = f"http://127.0.0.1:{self.port}/ok/all/{'/'.join(rest)}"
            writer.write(
                f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            await writer.drain()
        elif fault == "html":
            body = b"<html><body><h1>Service unavailable</h1></body></html>"
            writer.write(_head(200, "text/html", len(body)) + body)
            await writer.drain()
        elif fault == "garbage":
            body = b'{"resourceType": "Bundle", "entry": [{"resource": '
            writer.write(_head(200, "application/fhir+json", len(body)) + body)
            await writer.drain()
        elif fault == "json-array":
            await self._send_json(writer, 200, [_patient()])
        elif fault == "not-bundle":
            await self._send_json(writer, 200, {"resourceType": "Basic", "id": "b1"})
        elif fault == "outcome":
            await self._send_json(writer, 200, _outcome("exception", "search failed"))
        elif fault in ("loop", "self-loop", "endless", "drip"):
            if fault == "drip":
                await asyncio.sleep(0.3)
            if fault == "loop":
                next_page = 2 if page == 1 else 1
            elif fault == "self-loop":
                next_page = page
            else:
                next_page = page + 1
            items = _observations() if resource_type == "Observation" else _conditions()
            next_url = f"{base}/{resource_type}?patient={PATIENT_ID}&page={next_page}"
            await self._send_json(writer, 200, _bundle(items[:1], next_url))
        elif fault == "offbase":
            next_url = f"http://127.0.0.1:{self.port}/elsewhere/all/{resource_type}?page=2"
            await self._send_json(writer, 200, _bundle(_conditions()[:1], next_url))
        elif fault == "huge":
            await self._send_endless_chunks(writer, fault)
        elif fault == "huge-declared":
            writer.write(_head(200, "application/fhir+json", 1_000_000_000))
            await writer.drain()
            await self._send_endless_raw(writer, fault)
        else:
            await self._send_json(writer, 400, _outcome("not-supported", "unknown fault"))

    def _ok(self, base: str, rest: list[str], query: dict[str, list[str]]) -> Any:
        resource_type = rest[0]
        if len(rest) == 2:
            if resource_type == "Patient" and rest[1] == PATIENT_ID:
                return _patient()
            return _outcome("not-found", "not found")
        items = {
            "Condition": _conditions(),
            "Observation": _observations(),
            "Patient": [_patient()],
        }.get(resource_type, [])
        count = int(query.get("_count", ["50"])[0])
        page = int(query.get("page", ["1"])[0])
        chunk = items[(page - 1) * count : page * count]
        next_url = None
        if page * count < len(items):
            next_url = f"{base}/{resource_type}?patient={PATIENT_ID}&_count={count}&page={page + 1}"
        return _bundle(chunk, next_url)

    async def _send_json(self, writer: asyncio.StreamWriter, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        writer.write(_head(status, "application/fhir+json", len(data)) + data)
        await writer.drain()

    async def _send_endless_chunks(self, writer: asyncio.StreamWriter, fault: str) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        entry = json.dumps({"resource": _observations()[0]}).encode() + b","
        piece = b'{"resourceType":"Bundle","type":"searchset","entry":[' + entry * 400
        self.bytes_sent[fault] = 0
        while True:
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.bytes_sent[fault] += len(piece)
            await writer.drain()
            piece = entry * 400

    async def _send_endless_raw(self, writer: asyncio.StreamWriter, fault: str) -> None:
        piece = b" " * 65536
        self.bytes_sent[fault] = 0
        while True:
            writer.write(piece)
            self.bytes_sent[fault] += len(piece)
            await writer.drain()


def _head(status: int, content_type: str, length: int) -> bytes:
    reason = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}.get(
        status, "Status"
    )
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()


def _outcome(code: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "details": {"text": text}}],
    }


def _reset(writer: asyncio.StreamWriter) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0), not a clean FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
