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

from service.jsondepth import JsonTooDeep, has_escaped_key, load_json
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
    body: bytes, *, max_depth: int, decode: Callable[[bytes, int], Any] | None = None
) -> Any:
    """Parse, enforcing the nesting limit; any failure is a 400 with the reason.

    orjson rejects what JSON does not allow (NaN, Infinity, invalid UTF-8, lone surrogates,
    trailing content, numbers that overflow a double) and caps nesting at 1024 itself;
    our own limit (``LIVER_CDS_MAX_JSON_DEPTH``) is checked on the bytes first
    (:func:`service.jsondepth.load_json`), so no deeply nested value ever reaches code
    that walks it.
    ``decode(body, max_depth)`` replaces ``load_json`` for a caller that knows a
    cheaper parse of its body (the hook call's :func:`service.fhir.skim.parse_hook_body`,
    which checks the depth of what it builds); it signals bad JSON with a ``ValueError``
    and a value nested too deep with :class:`service.jsondepth.JsonTooDeep`.
    """
    if not body.strip():
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        return (decode or load_json)(body, max_depth)
    except JsonTooDeep as exc:
        raise BadRequest(str(exc)) from None
    except UnicodeDecodeError:
        raise BadRequest("request body is not valid JSON: it is not UTF-8") from None
    except ValueError as exc:  # orjson.JSONDecodeError is one
        raise BadRequest(f"request body is not valid JSON: {exc}") from None


# --- repeated keys ------------------------------------------------------------------------------


def check_repeated_envelope_keys(body: bytes, parsed: Any) -> None:
    """Refuse a hook request in which ``context.patientId`` or ``fhirServer`` repeats.

    JSON leaves repeated keys undefined (RFC 8259 §4) and parsers disagree (orjson keeps
    the last value, others the first): a gateway and this service could then read
    different patients, or send the token to different servers, from one request. For the
    two keys that decide whose data is read and from where, a repeat (directly, or through
    a repeated ``context`` object that carries ``patientId`` each time) is refused;
    anywhere else the last value wins, deterministically.

    The exact check parses again with the standard library, so it only runs when one of
    the two names occurs more than once in the raw bytes, which a normal request never
    does (FHIR resources use neither as a key); the trigger costs a ``bytes.count`` per
    name. ``parsed`` is the body as parsed: a top-level ``fhirServer`` that is not in it
    is not in the body at all, so it cannot repeat and its count is skipped. A key can
    also be spelled with ``\\u`` escapes (``"fhir\\u0053erver"`` is ``fhirServer`` to
    every parser), which the byte count cannot see: a body with any escaped key (which
    no serializer writes for FHIR's ASCII names) gets the exact check too.
    """
    triggers = (
        _TRIGGERS if not isinstance(parsed, dict) or "fhirServer" in parsed else _PATIENT_ONLY
    )
    if not any(body.count(key) > 1 for key in triggers) and not has_escaped_key(body):
        return
    try:
        top = json.loads(body, object_pairs_hook=_PairsDict)
    except RecursionError:  # deep nesting the selective parse skipped, past Python's limit
        raise BadRequest("JSON is nested too deeply to parse") from None
    if not isinstance(top, _PairsDict):
        return
    if "fhirServer" in top.repeated:
        raise BadRequest("key 'fhirServer' appears more than once in the request")
    if "context" in top.repeated:
        raise BadRequest("key 'context' appears more than once in the request")
    context = top.get("context")
    if isinstance(context, _PairsDict) and "patientId" in context.repeated:
        raise BadRequest("key 'context.patientId' appears more than once in the request")


_TRIGGERS: tuple[bytes, ...] = (b'"patientId"', b'"fhirServer"')
_PATIENT_ONLY: tuple[bytes, ...] = (b'"patientId"',)


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
