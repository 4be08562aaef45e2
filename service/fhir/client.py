"""Talking to an EHR's FHIR server: pooled httpx clients and one bounded GET.

Why it looks like this:

* one :class:`httpx.AsyncClient` per FHIR base, kept for the process, so a chart opened
  twice reuses the TLS connection instead of paying the handshake on the clinician's time;
* every limit is explicit (``httpx.Timeout``, ``httpx.Limits``, a byte cap on each page)
  and redirects are never followed: the bearer token goes to the ``fhirServer`` the
  request named and nowhere else;
* compressed answers are inflated here, not by httpx (:class:`_Inflater`): only gzip and
  deflate are asked for and accepted, and the page cap counts *inflated* bytes as they
  come out, 64 KiB at a time, so a 2 MB gzip page that inflates to 2 GiB costs one page
  cap of memory and is abandoned at the cap, within the call's time budget;
* :func:`get_json` never lets a network fault escape as anything but :class:`FetchError`
  with a short ``reason`` (the metric label) and a ``detail`` fit for a 412 message, so
  the caller decides what a failure means (412 for essential data, a note otherwise);
* logs carry the FHIR base and the resource-type path with query *values* removed
  (:func:`log_path`), never the access token and never a patient id from a URL.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any, Final, NoReturn

import httpx
import orjson

from service.observability import FHIR_FETCH_FAILURES, FHIR_FETCH_LATENCY, get_logger
from service.settings import Settings

__all__ = [
    "FHIR_JSON",
    "FetchError",
    "FhirClients",
    "count_failure",
    "get_json",
    "join_url",
    "log_path",
    "normalise_base",
    "same_base",
]

log: Final = get_logger("fhir.client")

FHIR_JSON: Final = "application/fhir+json"
MAX_CLIENTS: Final = 64
"""Distinct FHIR bases kept pooled; the least recently used is closed beyond this."""
_CHUNK: Final = 64 * 1024
MAX_COMPRESSION_RATIO: Final = 250
"""Inflated bytes per compressed byte beyond which a body is a bomb. FHIR JSON compresses
5-30-fold (a fixture patient: 12.6); a Bundle of 300 identical 500-character notes, 122.
Deflate's own maximum is about 1,030."""
RATIO_FLOOR_BYTES: Final = 1024 * 1024
"""The ratio is judged only past this much inflated output (small pages never are)."""
_PIECES_PER_TURN: Final = 16
"""Inflated pieces (of up to 64 KiB, so 1 MiB) handled before the event loop gets a turn:
one 64 KiB network read of a bomb inflates to 64 MiB."""
ACCEPT_ENCODING: Final = "gzip, deflate"
"""The only content codings asked for: the ones :class:`_Inflater` inflates in bounded
steps. httpx would also offer ``br`` and ``zstd`` when those packages are installed."""


class FetchError(Exception):
    """One FHIR request failed.

    ``reason`` is the metric label (``timeout``, ``budget``, ``connect``, ``network``,
    ``status``, ``body``, ``size``, ``paging``, ``limit``); ``detail`` says what happened in
    words without PHI or secrets, e.g. ``"HTTP 401"``.
    """

    def __init__(self, reason: str, detail: str, *, status: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.status = status


def normalise_base(base_url: str) -> str:
    """``base_url`` with scheme and host in lower case, default port and trailing ``/``
    removed, and no query or fragment: the key of the client pool and of base checks."""
    url = httpx.URL(base_url.strip())
    scheme = url.scheme.lower()
    host = url.host.lower()
    port = url.port
    netloc = host if ":" not in host else f"[{host}]"
    if port is not None and not (
        (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
    ):
        netloc = f"{netloc}:{port}"
    path = url.path.rstrip("/")
    return f"{scheme}://{netloc}{path}"


def join_url(base_url: str, relative: str) -> str:
    """``{base}/{relative}`` with exactly one slash between them."""
    return base_url.rstrip("/") + "/" + relative.lstrip("/")


def same_base(url: str, base_url: str) -> bool:
    """True when ``url`` lies under ``base_url`` (same scheme, host, port, path prefix).

    ``next`` links are only followed when this holds: the access token was issued for
    ``fhirServer``, and a page pointing elsewhere must not receive it.
    """
    try:
        parsed = httpx.URL(url)
        target = normalise_base(url.split("?", 1)[0].split("#", 1)[0])
        base = normalise_base(base_url)
    except (httpx.InvalidURL, ValueError):
        return False
    if parsed.userinfo:
        return False
    # Percent-encoded dot segments (``%2e%2e``) survive httpx's normalisation; a server
    # that decodes them would resolve the path above the base.
    if any(segment in (".", "..") for segment in parsed.path.split("/")):
        return False
    return target == base or target.startswith(base + "/")


def log_path(url: str, base_url: str | None = None) -> str:
    """The part of ``url`` safe to log: the resource path with ids and query values gone.

    ``https://ehr/fhir/Observation?patient=123&code=1975-2`` -> ``Observation?patient&code``;
    ``.../Patient/123`` -> ``Patient/{id}``.
    """
    rest = url
    if base_url is not None and url.startswith(base_url.rstrip("/")):
        rest = url[len(base_url.rstrip("/")) :]
    elif "://" in url:
        rest = httpx.URL(url).raw_path.decode("ascii", "replace")
    path, _, query = rest.lstrip("/").partition("?")
    segments = [s for s in path.split("/") if s]
    shown = segments[0] if segments else ""
    if len(segments) > 1:
        shown += "/{id}" + ("/..." if len(segments) > 2 else "")
    if query:
        names = sorted({part.split("=", 1)[0] for part in query.split("&") if part})
        shown += "?" + "&".join(names)
    return shown or "/"


class FhirClients:
    """One pooled :class:`httpx.AsyncClient` per FHIR base, closed by :meth:`aclose`.

    ``transport`` replaces the network for every client (``httpx.MockTransport`` in unit
    tests); without it each client has its own connection pool.
    """

    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._settings = settings
        self._transport = transport
        self._clients: OrderedDict[str, httpx.AsyncClient] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    def _new_client(self) -> httpx.AsyncClient:
        timeout_s = self._settings.fhir_timeout_s
        return httpx.AsyncClient(
            transport=self._transport,
            timeout=httpx.Timeout(timeout_s, connect=timeout_s, read=timeout_s, pool=timeout_s),
            limits=httpx.Limits(
                max_connections=32, max_keepalive_connections=8, keepalive_expiry=30.0
            ),
            follow_redirects=False,
            headers={
                "Accept": FHIR_JSON,
                "Accept-Encoding": ACCEPT_ENCODING,
                "User-Agent": "liver-cds",
            },
            trust_env=False,
        )

    def for_base(self, base_url: str) -> httpx.AsyncClient:
        """The client for ``base_url`` (created on first use, reused afterwards)."""
        key = normalise_base(base_url)
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)
            return client
        client = self._new_client()
        self._clients[key] = client
        while len(self._clients) > MAX_CLIENTS:
            _, old = self._clients.popitem(last=False)
            self._close_later(old)
        return client

    def _close_later(self, client: httpx.AsyncClient) -> None:
        try:
            task = asyncio.get_running_loop().create_task(client.aclose())
        except RuntimeError:  # no running loop: nothing can be in flight on it either
            return
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @property
    def bases(self) -> Iterable[str]:
        """The normalised bases with a live client (for tests and diagnostics)."""
        return tuple(self._clients)

    async def aclose(self) -> None:
        """Close every client (application shutdown)."""
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await client.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


def count_failure(reason: str) -> None:
    """Count one failed FHIR fetch under ``reason`` (also used for paging and size limits
    the caller enforces across pages)."""
    FHIR_FETCH_FAILURES.labels(reason=reason).inc()


def _timeout_reason(deadline: float) -> str:
    # Within a few ms of the deadline the call's budget, not this request, ran out.
    return "budget" if time.monotonic() >= deadline - 0.005 else "timeout"


async def get_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    access_token: str | None,
    deadline: float,
    settings: Settings,
    base_url: str | None = None,
) -> Any:
    """GET ``url`` and return its JSON body (parsed with orjson), or raise :class:`FetchError`.

    Bounded three ways: the whole request (connect, headers, body) ends by
    ``min(now + fhir_timeout_s, deadline)``; the body is read in chunks and abandoned
    past ``fhir_max_page_bytes``; only a 200 is accepted (redirects are not followed).
    Latency and failures are counted in the FHIR metrics.
    """
    remaining = deadline - time.monotonic()
    where = {"fhir_base": base_url or "", "path": log_path(url, base_url)}
    if remaining <= 0:
        count_failure("budget")
        log.warning("FHIR fetch skipped: call budget spent", extra={**where, "reason": "budget"})
        raise FetchError("budget", "the call's time budget ran out")
    limit_s = min(settings.fhir_timeout_s, remaining)
    headers = {"Accept": FHIR_JSON, "Accept-Encoding": ACCEPT_ENCODING}
    if access_token:
        headers["Authorization"] = f"Bearer {access_token}"
    max_bytes = settings.fhir_max_page_bytes
    started = time.monotonic()
    status: int | None = None
    body = bytearray()
    try:
        async with asyncio.timeout(limit_s):
            request = client.build_request(
                "GET", url, headers=headers, timeout=httpx.Timeout(limit_s)
            )
            response = await client.send(request, stream=True)
            try:
                status = response.status_code
                if status != 200:
                    raise FetchError("status", _status_detail(status), status=status)
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise FetchError("size", f"the response is larger than {max_bytes} bytes")
                if response.is_stream_consumed:
                    # Built in memory (a test's MockTransport): httpx has read it already.
                    inflater, raws = _Inflater(None), _once(response.content)
                else:
                    coding = response.headers.get("content-encoding", "")
                    inflater = _Inflater.for_coding(coding)
                    # Raw bytes, inflated here in bounded steps (httpx's own decoding
                    # inflates each network read whole, before any cap can be counted).
                    raws = response.aiter_raw(_CHUNK)
                async for raw in raws:
                    for count, piece in enumerate(inflater.feed(raw), 1):
                        body += piece
                        if len(body) > max_bytes:
                            raise FetchError(
                                "size", f"the response is larger than {max_bytes} bytes"
                            )
                        if count % _PIECES_PER_TURN == 0:
                            await asyncio.sleep(0)  # a highly compressed read: let others run
                    await asyncio.sleep(0)  # other calls run between network reads
                for piece in inflater.finish():
                    body += piece
                    if len(body) > max_bytes:
                        raise FetchError("size", f"the response is larger than {max_bytes} bytes")
            finally:
                await response.aclose()
    except FetchError as exc:
        count_failure(exc.reason)
        log.warning(
            "FHIR fetch failed",
            extra={**where, "reason": exc.reason, "status": status, "detail": exc.detail},
        )
        raise
    except TimeoutError:
        reason = _timeout_reason(deadline)
        _fail(where, reason, _timeout_detail(reason, limit_s))
    except httpx.TimeoutException:
        reason = _timeout_reason(deadline)
        _fail(where, reason, _timeout_detail(reason, limit_s))
    except httpx.ConnectError:
        _fail(where, "connect", "the FHIR server could not be reached")
    except (httpx.TransportError, httpx.DecodingError, httpx.StreamError) as exc:
        _fail(where, "network", f"the connection failed ({type(exc).__name__})")
    finally:
        FHIR_FETCH_LATENCY.observe(time.monotonic() - started)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        _fail(where, "body", "the response is not JSON")


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class _Inflater:
    """Inflates a gzip or deflate body in steps of at most :data:`_CHUNK` output bytes.

    ``zlib``'s ``max_length`` stops each step at 64 KiB of output and keeps the rest of the
    input for the next, so the caller counts the page cap on inflated bytes as they come
    and stops the moment it is passed: memory is one page cap plus one step, whatever the
    compression ratio; past :data:`RATIO_FLOOR_BYTES` inflated, a body inflating more than
    :data:`MAX_COMPRESSION_RATIO`-fold is a bomb and abandoned at once, so one costs about
    1 MiB rather than a whole page cap. Identity bodies pass through. A coding not asked
    for (``br``, ``zstd``, ``compress``, or several stacked) is refused, not read as JSON.
    """

    def __init__(self, wbits: int | None) -> None:
        self._wbits = wbits
        self._zlib: Any = None if wbits is None else zlib.decompressobj(wbits)
        self._first = True
        self._consumed = 0
        self._produced = 0

    @classmethod
    def for_coding(cls, header: str) -> _Inflater:
        coding = header.strip().lower()
        if coding in ("", "identity"):
            return cls(None)
        if coding in ("gzip", "x-gzip"):
            return cls(16 + zlib.MAX_WBITS)
        if coding == "deflate":
            return cls(zlib.MAX_WBITS)  # zlib-wrapped, as the RFC says; raw is tried too
        raise FetchError("body", f"the response's content coding {coding[:40]!r} was not asked for")

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The inflated bytes of ``data``, in pieces of at most :data:`_CHUNK` bytes.

        A generator: no step runs before the caller has counted the previous piece.
        """
        if self._zlib is None:
            if data:
                yield data
            return
        while True:
            try:
                out = self._zlib.decompress(data, _CHUNK)
            except zlib.error:
                if self._first and self._wbits == zlib.MAX_WBITS:
                    # Some servers send raw deflate under "deflate" (httpx accepts it too).
                    self._wbits = -zlib.MAX_WBITS
                    self._zlib = zlib.decompressobj(self._wbits)
                    self._first = False
                    continue
                raise FetchError("body", "the compressed response is corrupt") from None
            self._first = False
            left = self._zlib.unused_data if self._zlib.eof else self._zlib.unconsumed_tail
            self._consumed += len(data) - len(left)
            self._produced += len(out)
            if self._produced > RATIO_FLOOR_BYTES and (
                self._produced > MAX_COMPRESSION_RATIO * self._consumed
            ):
                raise FetchError(
                    "size",
                    f"the compressed response inflates more than {MAX_COMPRESSION_RATIO}-fold",
                )
            if out:
                yield out
            if self._zlib.eof:
                rest = self._zlib.unused_data
                if self._wbits != 16 + zlib.MAX_WBITS or not rest.strip(b"\x00"):
                    return  # the end (zero padding after a gzip stream is tolerated)
                # Another gzip member follows (concatenated members are one valid stream).
                self._zlib = zlib.decompressobj(self._wbits)
                data = rest
                continue
            data = self._zlib.unconsumed_tail
            if not data and len(out) < _CHUNK:
                return  # input used up, no output pending

    def finish(self) -> Iterator[bytes]:
        """The end of the body: a compressed one must have ended too."""
        if self._zlib is None:
            return
        yield from self.feed(b"")
        if not self._zlib.eof:
            raise FetchError("body", "the compressed response is cut short")


def _fail(where: dict[str, str], reason: str, detail: str) -> NoReturn:
    count_failure(reason)
    log.warning("FHIR fetch failed", extra={**where, "reason": reason, "detail": detail})
    # ``from None``: httpx's exception (which names the URL, query and all) stays out of
    # any traceback a caller might log.
    raise FetchError(reason, detail) from None


def _timeout_detail(reason: str, limit_s: float) -> str:
    if reason == "budget":
        return "the call's time budget ran out"
    return f"the FHIR server did not answer within {limit_s:g} s"


def _status_detail(status: int) -> str:
    if status in (401, 403):
        return f"HTTP {status} (the access token was not accepted)"
    if 300 <= status < 400:
        return f"HTTP {status} (redirects are not followed)"
    return f"HTTP {status}"
