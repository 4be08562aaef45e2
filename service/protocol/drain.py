"""Read what is left of a request body before answering, so the client can read the answer.

A client that writes the whole body before reading anything (Python's urllib, curl
without ``Expect: 100-continue``, many EHR integration engines) is still writing when the
service refuses the call early: 413 for a body over ``LIVER_CDS_MAX_BODY_BYTES``, 401
before the body is read, 404 for an unknown service. If the server then closes the
connection with unread bytes in its receive buffer, the kernel answers with a TCP reset,
and the client sees "connection reset" or "broken pipe" instead of the 413 that says what
to fix (uvicorn closes such a connection as soon as its parser meets the rest of the body).

:class:`DrainUnreadBody` is the outermost ASGI middleware. When a response starts while
the request body has not been read to its end, it first reads and discards the rest,
bounded twice:

* **bytes**: at most :data:`DRAIN_FACTOR` x ``LIVER_CDS_MAX_BODY_BYTES`` of body in total
  (what the application read plus what is drained; 20 MiB by default). A body whose
  ``Content-Length`` already says it is larger is not drained at all;
* **time**: :data:`DRAIN_TIMEOUT_S`, so a client trickling its body cannot hold the
  connection.

Past either bound the response goes out with ``Connection: close`` (the client may then see
a reset: the price of not reading an unbounded body). A client that sent
``Expect: 100-continue`` has not sent its body yet and is answered at once: draining would
invite it to send. Memory: one received chunk at a time, never the body.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DRAIN_FACTOR", "DRAIN_TIMEOUT_S", "DrainUnreadBody"]

DRAIN_FACTOR: Final = 4
"""A request's body is drained up to this many times the body limit, in total."""
DRAIN_TIMEOUT_S: Final = 5.0
"""Longest time spent draining one request's body."""


@dataclass
class _Body:
    received: int = 0
    complete: bool = False


class DrainUnreadBody:
    """ASGI middleware: drain an unread request body (bounded) before a response starts."""

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, timeout_s: float = DRAIN_TIMEOUT_S
    ) -> None:
        self.app = app
        self.max_total = DRAIN_FACTOR * max_body_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, expects_continue, has_body = _body_headers(scope)
        if not has_body:
            await self.app(scope, receive, send)
            return
        body = _Body()

        async def tracked_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body.received += len(message.get("body", b""))
                if not message.get("more_body", False):
                    body.complete = True
            elif message["type"] == "http.disconnect":
                body.complete = True
            return message

        async def draining_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not body.complete:
                drained = False
                if not (expects_continue and body.received == 0):
                    drained = await self._drain(tracked_receive, body, declared)
                if not drained:
                    headers = [*message.get("headers", []), (b"connection", b"close")]
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, tracked_receive, draining_send)

    async def _drain(self, receive: Receive, body: _Body, declared: int | None) -> bool:
        """Read the rest of the body; False when a bound stopped it first."""
        if declared is not None and declared > self.max_total:
            return False
        try:
            async with asyncio.timeout(self.timeout_s):
                while not body.complete:
                    await receive()
                    if body.received > self.max_total:
                        return False
        except TimeoutError:
            return False
        return True


def _body_headers(scope: Scope) -> tuple[int | None, bool, bool]:
    """(declared Content-Length, Expect: 100-continue, a body may follow)."""
    declared: int | None = None
    expects_continue = False
    chunked = False
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = None
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"expect":
            expects_continue = value.lower() == b"100-continue"
    has_body = chunked or (declared is not None and declared > 0)
    return declared, expects_continue, has_body
