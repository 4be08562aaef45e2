"""The HTTP/1.1 server protocol: uvicorn's httptools protocol with bounded request heads.

uvicorn's httptools protocol puts no limit on a request's line and headers, neither in
size nor in time: a client could send 286 MiB of headers (buffered whole by the parser
before the application, and so authentication, sees anything), or keep a thousand
connections open by sending one header line every few seconds. uvicorn's own
``timeout_keep_alive`` only runs *between* requests, and ``h11_max_incomplete_event_size``
only applies to the (slower) h11 protocol. This subclass adds both bounds, before the
parser is fed:

* **size**: the bytes of a request's head (request line and headers, up to the blank
  line) are counted as they arrive; past ``LIVER_CDS_MAX_HEADER_BYTES`` the server answers
  ``431 Request Header Fields Too Large`` and closes the connection. The count is made
  on the raw bytes *before* httptools buffers them, so memory per connection stays near
  the limit (plus one socket read, at most 256 KiB);
* **time**: a connection has ``LIVER_CDS_HEADER_TIMEOUT_S`` to deliver a complete head,
  counted from the connection's opening and, on a kept-alive connection, from the first
  byte of each next request (an idle kept-alive connection is uvicorn's keep-alive
  timeout's business). Past it: ``408 Request Timeout`` if anything arrived, and the
  connection is closed.

``serve`` hands this class to uvicorn (``http=``); with several workers each worker
process reads the limits from its own ``LIVER_CDS_*`` environment.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.settings import Settings

__all__ = ["BoundedHttpToolsProtocol", "HeadLimits"]


def _head_end(window: bytes, bound: int) -> int:
    r"""The offset just past the first blank line in ``window[:bound]``, or -1.

    A head ends at ``\r\n\r\n`` or, from a lenient client, ``\n\n``, whichever comes
    first. The bare ``\n\n`` is looked for only up to the end of the ``\r\n\r\n`` when
    there is one: a normal head never holds it, and searching the whole window for it
    (with the body that came in the same chunk, 32 KiB at the default limit) cost about
    1.5 % of a W1 call under load.
    """
    crlf = window.find(b"\r\n\r\n", 0, bound)
    lf = window.find(b"\n\n", 0, bound if crlf < 0 else crlf + 4)
    if lf >= 0:  # ends no later than the \r\n\r\n, if any
        return lf + 2
    return crlf + 4 if crlf >= 0 else -1


@dataclass(frozen=True)
class HeadLimits:
    """The two bounds on a request's head."""

    max_bytes: int
    timeout_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> HeadLimits:
        return cls(settings.max_header_bytes, settings.header_timeout_s)


def _plain_response(status: int, reason: str, message: str) -> bytes:
    body = ('{"error":"' + message + '"}').encode("ascii")
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing oversized heads and closing slow ones."""

    limits: ClassVar[HeadLimits | None] = None
    """Set by ``serve`` in a single process; a worker process reads its environment."""
    _env_limits: ClassVar[HeadLimits | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = type(self).limits or _limits_from_env()
        self._max_head = limits.max_bytes
        self._head_timeout_s = limits.timeout_s
        self._in_head = True
        self._head_bytes = 0
        self._head_tail = b""
        self._head_timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head and data:
            if self._head_timer is None:
                self._arm_head_timer()  # the first byte of a kept-alive connection's next request
            # A head's end, if within the limit, lies in the first bytes of the chunk: the
            # body that follows it in the same chunk (up to 256 KiB) is neither copied nor
            # searched. Only a head split across chunks is joined to the previous tail.
            tail = self._head_tail
            window = tail + data[: self._max_head + 4] if tail else data
            end = _head_end(window, len(tail) + self._max_head + 4)
            counted = len(data) if end < 0 else max(0, end - len(tail))
            self._head_bytes += counted
            if self._head_bytes > self._max_head:
                self._refuse(431, "Request Header Fields Too Large", "request headers too large")
                return
            self._head_tail = window[-3:]
        super().data_received(data)

    # --- httptools parser callbacks --------------------------------------------------------

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # What follows on this connection is the next request's head.
        self._in_head = True
        self._head_bytes = 0
        self._head_tail = b""

    # --- the bounds ------------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self._head_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self._head_bytes:
            self._refuse(408, "Request Timeout", "request headers not received in time")
        else:
            self.transport.close()

    def _refuse(self, status: int, reason: str, message: str) -> None:
        self._cancel_head_timer()
        self.logger.info(
            "request head refused", extra={"status": status, "head_bytes": self._head_bytes}
        )
        if not self.transport.is_closing():
            self.transport.write(_plain_response(status, reason, message))
            self.transport.close()


def _limits_from_env() -> HeadLimits:
    cached = BoundedHttpToolsProtocol._env_limits
    if cached is None:
        cached = HeadLimits.from_settings(Settings.from_env())
        BoundedHttpToolsProtocol._env_limits = cached
    return cached
