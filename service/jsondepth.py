"""Nesting depth of JSON text, counted on the bytes without parsing.

The request body's nesting limit (``LIVER_CDS_MAX_JSON_DEPTH``) keeps deeply nested
values away from every piece of code that walks parsed JSON. Two readers enforce it: the
protocol's full parse checks the whole body (``service/protocol/jsonbody.py``), and the
hook call's selective parse checks exactly the parts it builds (``service/fhir/skim.py``).
Both need the same byte-level count, so it lives here, below both layers.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any, Final

import orjson

__all__ = ["JsonTooDeep", "check_depth", "has_escaped_key", "json_depth", "load_json"]


class JsonTooDeep(ValueError):
    """A JSON value is nested deeper than the limit (the request is then a 400)."""


_KEEP = b'{}[]"'
_BACKSLASH: Final = ord("\\")
_QUOTE: Final = ord('"')
"""Bytes as ints: ``int in bytes`` is a ``memchr``, while ``bytes in bytes`` first tries
the needle as an int and builds (and drops) a ``TypeError`` saying it is not one."""
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

    Several complete JSON texts written one after the other count as the deepest of them,
    which is how :func:`check_depth` checks many parts in one call.
    """
    if _BACKSLASH in body:
        if b"\\\\" in body:
            body = body.replace(b"\\\\", b"")
        if b'\\"' in body:
            body = body.replace(b'\\"', b"")
    brackets = body.translate(None, _DELETE).replace(b'""', b"")
    if _QUOTE in brackets:
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
            break  # unbalanced: the parser will say where
        brackets = peeled
        depth += 1
    return depth


def check_depth(parts: Collection[bytes | memoryview], level: int, max_depth: int) -> None:
    """Raise :class:`JsonTooDeep` if a part, found ``level`` levels deep, nests past the limit.

    ``parts`` are complete, syntactically valid JSON values (slices of a body a parser
    has accepted) that all sit at the same nesting level of their document: the value of
    a top-level key is at level 1, a resource in ``prefetch`` at level 2.

    Most parts are resources with a few dozen brackets, far fewer than the limit, and a
    value cannot nest deeper than the number of ``{`` and ``[`` in it (counting those in
    strings only makes the bound looser). So the brackets that open are counted first,
    for each part in one pass (``\x00``, which valid JSON never holds, keeps the parts
    apart), and only when a part has more of them than the budget are the parts counted
    exactly by :func:`json_depth`, whose bracket peeling costs more than that first pass.
    """
    budget = max_depth - level
    openers = _SEAM.join(parts).translate(None, _NOT_OPENER_OR_SEAM).split(_SEAM)
    if len(openers) == len(parts) and max(map(len, openers)) <= budget:
        return  # every part nests at most as deep as its count of opening brackets
    joined = b"".join(parts)
    if not joined:
        return
    if budget < 0 or json_depth(joined, budget) > budget:
        raise JsonTooDeep(f"JSON is nested more than {max_depth} levels deep")


_SEAM: Final = b"\x00"
_NOT_OPENER_OR_SEAM: Final = bytes(b for b in range(256) if b not in b"{[\x00")


def load_json(body: bytes, max_depth: int) -> Any:
    """``orjson.loads`` after counting the nesting depth of the whole body on its bytes."""
    if json_depth(body, max_depth) > max_depth:
        raise JsonTooDeep(f"JSON is nested more than {max_depth} levels deep")
    return orjson.loads(body)


_ESCAPE_IN_KEY: Final = re.compile(rb'\\u[0-9A-Fa-f]{4}(?:[^"\\]|\\.)*"\s*:')
"""A ``\\u`` escape (four hex digits) followed by the rest of a string and a colon: an
escaped key. (Outside strings JSON has no backslash, and a string followed by ``:`` is a
key.)"""


def has_escaped_key(body: bytes) -> bool:
    """Whether a key of the JSON text may be spelled with ``\\u`` escapes.

    ``"fhir\\u0053erver"`` is ``fhirServer`` to orjson and to the standard library, but
    msgspec matches struct fields on the key as written, so the two readers of a hook body
    would disagree about it. No serializer writes FHIR's ASCII names escaped, so a body
    where this is true is rare, and read the careful way. Never false for such a body (an
    escape in a value may also answer true); costs one ``in`` test when the body has no
    backslash at all.
    """
    return _BACKSLASH in body and _ESCAPE_IN_KEY.search(body) is not None
