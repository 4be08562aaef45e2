"""Reading a JSON request body safely: size, media type, syntax, nesting depth, repeated keys.

Each check runs before the next, cheapest first, so a hostile body costs as little as
possible: the declared ``Content-Length`` is checked before a byte is read, the streamed
bytes are counted while reading (a client may lie or use chunked encoding), and only then
does orjson parse. Nothing here knows about CDS Hooks shapes; ``request.py`` and
``feedback.py`` check those on the parsed value.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import orjson

from service.protocol.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, shorten

JSON_MEDIA_TYPES = frozenset({"application/json", "application/fhir+json"})
"""Accepted request media types. CDS Hooks says ``application/json``; FHIR clients
sometimes send ``application/fhir+json`` for the same bytes."""


def check_content_type(header: str | None) -> None:
    """Require a JSON media type; a ``charset`` parameter is allowed if it is UTF-8.

    JSON exchanged between systems is UTF-8 (RFC 8259 §8.1), which is what orjson reads.
    """
    if not header:
        raise UnsupportedMediaType("Content-Type must be application/json (none was sent)")
    media_type, _, params = header.partition(";")
    if media_type.strip().lower() not in JSON_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, not {shorten(media_type.strip())!r}"
        )
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
            if charset not in ("utf-8", "utf8"):
                raise UnsupportedMediaType(
                    f"JSON must be sent as UTF-8, not charset={shorten(charset)!r}"
                )


def check_declared_length(header: str | None, max_bytes: int) -> None:
    """Refuse a body whose declared ``Content-Length`` is over the limit, before reading it."""
    if header is None:
        return
    try:
        declared = int(header.strip())
    except ValueError:
        raise BadRequest("Content-Length must be a whole number") from None
    if declared < 0:
        raise BadRequest("Content-Length must not be negative")
    if declared > max_bytes:
        raise PayloadTooLarge(too_large_message(max_bytes))


async def read_body(chunks: AsyncIterator[bytes], max_bytes: int) -> bytes:
    """Collect the streamed body, stopping with 413 as soon as it passes ``max_bytes``."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(too_large_message(max_bytes))
        if chunk:
            parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def too_large_message(max_bytes: int) -> str:
    return f"request body is larger than the limit of {max_bytes} bytes"


def parse_json(
    body: bytes, *, max_depth: int, decode: Callable[[bytes], Any] = orjson.loads
) -> Any:
    """Parse with orjson and enforce the nesting limit; any failure is a 400 with the reason.

    orjson rejects what JSON does not allow (NaN, Infinity, invalid UTF-8, lone surrogates,
    trailing content, numbers that overflow a double) and caps nesting at 1024 itself;
    our own limit (``LIVER_CDS_MAX_JSON_DEPTH``) is checked on the bytes first, so no
    deeply nested value ever reaches code that walks it. ``decode`` replaces
    ``orjson.loads`` for a caller that knows a cheaper parse of its body (the hook call's
    :func:`service.fhir.skim.parse_hook_body`); it signals bad JSON with a ``ValueError``.
    """
    if not body.strip():
        raise BadRequest("request body is empty; expected a JSON object")
    depth = json_depth(body, max_depth)
    if depth > max_depth:
        raise BadRequest(f"JSON is nested more than {max_depth} levels deep")
    try:
        return decode(body)
    except UnicodeDecodeError:
        raise BadRequest("request body is not valid JSON: it is not UTF-8") from None
    except ValueError as exc:  # orjson.JSONDecodeError is one
        raise BadRequest(f"request body is not valid JSON: {exc}") from None


# --- nesting depth ----------------------------------------------------------------------------

_KEEP = b'{}[]"'
_DELETE = bytes(b for b in range(256) if b not in _KEEP)


def json_depth(body: bytes, limit: int) -> int:
    """Nesting depth of a JSON text, counted on the bytes without parsing.

    Returns the depth (``{}`` is 1, a scalar 0), or ``limit + 1`` as soon as it is known
    to exceed ``limit``. Malformed bracket structure returns what it has seen; the parser
    reports that error. The work is done by C-level ``bytes`` operations (a few passes over
    the body, about a tenth of what parsing costs) rather than a Python loop per character:

    1. drop escaped backslashes and escaped quotes, so every remaining ``"`` delimits a
       string; 2. keep only brackets and quotes; 3. drop what is inside strings (empty
       ones with a plain replace, then the few that hold brackets); 4. peel one level of
       innermost ``{}``/``[]`` pairs per pass.
    """
    if b"\\" in body:
        if b"\\\\" in body:
            body = body.replace(b"\\\\", b"")
        if b'\\"' in body:
            body = body.replace(b'\\"', b"")
    brackets = body.translate(None, _DELETE).replace(b'""', b"")
    if b'"' in brackets:
        # Strings with brackets inside (UCUM "{INR}", narrative text) are left, still
        # delimited by quotes (a removed '""' was an empty string or the seam between two
        # adjacent strings): keep what lies outside quotes.
        brackets = b"".join(brackets.split(b'"')[0::2])
    depth = 0
    while brackets:
        if depth >= limit:
            return limit + 1
        # One level per pass: a placeholder keeps "[{}]" from collapsing twice in a pass.
        peeled = brackets.replace(b"{}", b"x").replace(b"[]", b"x").translate(None, b"x")
        if len(peeled) == len(brackets):
            break  # unbalanced: orjson will say where
        brackets = peeled
        depth += 1
    return depth


# --- repeated keys ------------------------------------------------------------------------------

_TRIGGERS: tuple[bytes, ...] = (b'"patientId"', b'"fhirServer"')


def check_repeated_envelope_keys(body: bytes) -> None:
    """Refuse a hook request in which ``context.patientId`` or ``fhirServer`` repeats.

    JSON leaves repeated keys undefined (RFC 8259 §4) and parsers disagree (orjson keeps
    the last value, others the first): a gateway and this service could then read
    different patients, or send the token to different servers, from one request. For the
    two keys that decide whose data is read and from where, a repeat (directly, or through
    a repeated ``context`` object that carries ``patientId`` each time) is refused;
    anywhere else the last value wins, deterministically.

    The exact check parses again with the standard library, so it only runs when one of
    the two names occurs more than once in the raw bytes, which a normal request never
    does (FHIR resources use neither as a key); the trigger costs two ``bytes.count``.
    """
    if not any(body.count(key) > 1 for key in _TRIGGERS):
        return
    top = json.loads(body, object_pairs_hook=_PairsDict)
    if not isinstance(top, _PairsDict):
        return
    if "fhirServer" in top.repeated:
        raise BadRequest("key 'fhirServer' appears more than once in the request")
    if "context" in top.repeated:
        raise BadRequest("key 'context' appears more than once in the request")
    context = top.get("context")
    if isinstance(context, _PairsDict) and "patientId" in context.repeated:
        raise BadRequest("key 'context.patientId' appears more than once in the request")


class _PairsDict(dict[str, Any]):
    """A dict that remembers which keys were repeated in the JSON object it came from."""

    repeated: frozenset[str]

    def __init__(self, pairs: Iterable[tuple[str, Any]]) -> None:
        pairs = list(pairs)
        super().__init__(pairs)
        if len(self) == len(pairs):
            self.repeated = frozenset()
        else:
            seen: set[str] = set()
            repeated: set[str] = set()
            for key, _ in pairs:
                (repeated if key in seen else seen).add(key)
            self.repeated = frozenset(repeated)
