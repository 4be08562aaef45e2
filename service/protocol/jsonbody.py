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
from typing import Any, Final

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
    does (FHIR resources use neither as a key); the trigger costs about a ``memchr`` per
    name (:func:`_occurs_twice`). ``parsed`` is the body as parsed: a top-level
    ``fhirServer`` that is not in it is not in the body at all, so it cannot repeat and its
    count is skipped. A key can also be spelled with ``\\u`` escapes
    (``"fhir\\u0053erver"`` is ``fhirServer`` to every parser), which the byte count cannot
    see: a body with any escaped key (which no serializer writes for FHIR's ASCII names)
    gets the exact check too.
    """
    triggers = (
        _TRIGGERS if not isinstance(parsed, dict) or "fhirServer" in parsed else _PATIENT_ONLY
    )
    if not any(_occurs_twice(body, *key) for key in triggers) and not has_escaped_key(body):
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


_TRIGGERS: tuple[tuple[bytes, int], ...] = ((b'"patientId"', 8), (b'"fhirServer"', 5))
"""Each name with the index of its upper-case letter, the byte :func:`_occurs_twice` looks for."""
_PATIENT_ONLY: tuple[tuple[bytes, int], ...] = _TRIGGERS[:1]


_COUNTED_OUTRIGHT: Final = 32 * 1024
"""Bodies up to this size are searched with ``bytes.count`` (see :func:`_occurs_twice`)."""


def _occurs_twice(body: bytes, key: bytes, anchor: int) -> bool:
    """``body.count(key) > 1``, found by looking for one rare byte of ``key``.

    Why: ``bytes.count`` of a quoted name steps through a JSON body about a byte at a time
    (quotes and the name's lower-case letters are everywhere, which defeats its skips):
    about 0.3 ns a byte, 55 µs on W1's 180 KB and 1.6 ms on W2's 5 MB, for a name that
    occurs once. Finding one byte is ``memchr``, some twenty times faster, and the byte at
    ``anchor``, the name's upper-case letter, is rare in FHIR JSON: each one found is
    compared with ``key`` where that would start. A body full of that letter (base64
    attachments, upper-case text) is handed to ``count`` once a budget proportional to its
    length is spent, so it costs little more than counting it outright.

    Same answer as ``count``, which takes occurrences leftmost first, each one starting
    after the previous one ends: occurrences are found here in the same order (every one
    holds the byte at ``anchor``), one overlapping the last one taken is passed over, and
    ``count`` resumes from where the last one taken ends.

    A body of at most :data:`_COUNTED_OUTRIGHT` bytes is counted outright: a typical chart
    holds a few dozen of the letter (``ICD``, segment ``VII``), and each ``find`` costs
    about what counting 700 bytes does, so on W0's 14 KB the walk and its fall-back took
    9.3 µs against 4.4 µs for ``count`` alone.
    """
    if len(body) <= _COUNTED_OUTRIGHT:
        return body.count(key) > 1
    mark = key[anchor : anchor + 1]
    find = body.find
    budget = 16 + (len(body) >> 11)
    resume = 0  # where count would go on: past the last occurrence taken
    taken = 0
    at = find(mark, anchor)
    while at != -1:
        begin = at - anchor
        if begin >= resume and body.startswith(key, begin):
            if taken:
                return True
            taken = 1
            resume = begin + len(key)
        budget -= 1
        if not budget:
            return taken + body.count(key, resume) > 1
        at = find(mark, at + 1)
    return False


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
