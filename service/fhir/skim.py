"""Parse a hook request body, building Python objects only for the resources the rules read.

Why: an EHR's ``observations`` prefetch is mostly Observations the rules never read
(vital signs, blood counts, years of history): a 5 MB body with 10,000 of them parses
into ~450,000 dicts and lists, and building, garbage-collecting and freeing them costs
more than everything else the service does. :func:`service.fhir.read.select` drops such an
Observation on its first test (no ``code.coding`` the rules read), so deciding that on
the bytes instead of on a dict changes no answer and saves nearly all of that work.

How: msgspec decodes the envelope into a struct whose ``prefetch`` values stay
:class:`msgspec.Raw` (slices of the body); a Bundle's entries are decoded with their
``resource`` again ``Raw``; each resource is probed with a tiny typed struct (its
``resourceType`` and ``code.coding[].system/code``, not tracked by the GC). An Observation
whose codes the rules do not read becomes :data:`SKIPPED_OBSERVATION`, one shared stub,
so entry indices (named in data-quality notes) and the resource count
(``LIVER_CDS_MAX_RESOURCES``) are unchanged. Everything else (and anything a typed probe
refuses: an entry that is not an object, a coding of the wrong type, a value that is not
a Bundle) is parsed with orjson exactly as the full parse would, so the lenient readers
and their notes see the same dicts.

The result equals ``orjson.loads(body)`` except for the stubs and top-level keys the
protocol does not read. Two differences are deliberate, both inside skipped Observations:
a number orjson refuses (``1e999``) is not looked at, so it no longer makes the whole
request a 400; and nothing else in them is checked either. The whole body is still
required to be UTF-8 and syntactically valid JSON (msgspec checks the syntax of what it
skips). Strict mode (``LIVER_CDS_STRICT_FHIR``) validates every input resource, so it keeps
the full parse.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
import orjson

from service.fhir.bundle import SKIPPED_ENTRY, SKIPPED_OBSERVATION
from service.fhir.codes import OBSERVATION_CODES

__all__ = ["SKIPPED_OBSERVATION", "parse_hook_body"]


_ENVELOPE_KEYS: Final = ("hook", "hookInstance", "context", "fhirServer", "fhirAuthorization")
"""Top-level keys the protocol reads besides ``prefetch``; others (``extension``, ...) are
tolerated and not read, so they are not built."""


class _Envelope(msgspec.Struct):
    hook: Any = msgspec.UNSET
    hookInstance: Any = msgspec.UNSET
    context: Any = msgspec.UNSET
    fhirServer: Any = msgspec.UNSET
    fhirAuthorization: Any = msgspec.UNSET
    prefetch: dict[str, msgspec.Raw] | msgspec.UnsetType | None = msgspec.UNSET


class _Search(msgspec.Struct, gc=False):
    mode: Any = None


class _Entry(msgspec.Struct, gc=False):
    resource: msgspec.Raw = msgspec.Raw(b"null")
    search: _Search | msgspec.UnsetType = msgspec.UNSET
    fullUrl: Any = msgspec.UNSET


class _Bundle(msgspec.Struct, gc=False):
    resourceType: str
    entry: list[_Entry] | msgspec.UnsetType | None = msgspec.UNSET
    type: Any = msgspec.UNSET
    link: Any = msgspec.UNSET
    total: Any = msgspec.UNSET


class _LooseBundle(msgspec.Struct, gc=False):
    """A Bundle with an entry of another shape: its entries are then decoded one by one."""

    resourceType: str
    entry: list[msgspec.Raw] | msgspec.UnsetType | None = msgspec.UNSET
    type: Any = msgspec.UNSET
    link: Any = msgspec.UNSET
    total: Any = msgspec.UNSET


class _Coding(msgspec.Struct, gc=False):
    system: str | None = None
    code: str | None = None


class _Concept(msgspec.Struct, gc=False):
    coding: list[_Coding] | None = None


class _Probe(msgspec.Struct, gc=False):
    resourceType: str | None = None
    code: _Concept | None = None


_decode_envelope: Final = msgspec.json.Decoder(_Envelope).decode
_decode_bundle: Final = msgspec.json.Decoder(_Bundle).decode
_decode_loose_bundle: Final = msgspec.json.Decoder(_LooseBundle).decode
_decode_entry: Final = msgspec.json.Decoder(_Entry).decode
_decode_probe: Final = msgspec.json.Decoder(_Probe).decode
_REFUSED: Final = (msgspec.ValidationError, msgspec.DecodeError)
_BUNDLE_FIELDS: Final = ("type", "link", "total")


def parse_hook_body(body: bytes) -> Any:
    """The parsed hook request, with unread Observations in its prefetch left unbuilt.

    Raises ``orjson.JSONDecodeError`` (a ``ValueError``) where the full parse would, and
    ``UnicodeDecodeError`` (also a ``ValueError``) for a body that is not UTF-8; when the
    envelope is not an object of the expected shape the body is parsed in full, so its
    errors are the usual ones.
    """
    body.decode("utf-8")  # skipped parts are not decoded, but the body must still be UTF-8
    try:
        envelope = _decode_envelope(body)
    except _REFUSED:
        return orjson.loads(body)
    data: dict[str, Any] = {}
    for name in _ENVELOPE_KEYS:
        value = getattr(envelope, name)
        if value is not msgspec.UNSET:
            data[name] = value
    prefetch = envelope.prefetch
    if prefetch is None:
        data["prefetch"] = None
    elif prefetch is not msgspec.UNSET:
        data["prefetch"] = {key: _prefetch_value(raw) for key, raw in prefetch.items()}
    return data


def _prefetch_value(raw: msgspec.Raw) -> Any:
    """One prefetch value: a Bundle with only the entries worth building, else as it is."""
    bundle: _Bundle | _LooseBundle
    try:
        bundle = _decode_bundle(raw)
    except _REFUSED:
        try:
            bundle = _decode_loose_bundle(raw)
        except _REFUSED:
            return orjson.loads(memoryview(raw))  # null, a resource of any shape, a broken Bundle
    if bundle.resourceType != "Bundle" or not isinstance(bundle.entry, list):
        return orjson.loads(memoryview(raw))
    entries: list[Any] = []
    for item in bundle.entry:
        if isinstance(item, _Entry):
            entries.append(_entry_value(item))
            continue
        try:
            entry = _decode_entry(item)
        except _REFUSED:
            entries.append(orjson.loads(memoryview(item)))  # not an entry object: unpack() notes it
            continue
        entries.append(_entry_value(entry))
    out: dict[str, Any] = {"resourceType": "Bundle", "entry": entries}
    for name in _BUNDLE_FIELDS:
        value = getattr(bundle, name)
        if value is not msgspec.UNSET:
            out[name] = value
    return out


def _entry_value(entry: _Entry) -> dict[str, Any]:
    """The entry as a dict, or the shared stub entry for an Observation the rules skip.

    The skip is decided first: it is what happens to nearly every entry of a large Bundle,
    so it must cost no more than the probe.
    """
    search = entry.search
    mode = None if search is msgspec.UNSET else search.mode
    if mode != "outcome":
        try:
            if not _rules_read(_decode_probe(entry.resource)):
                return SKIPPED_ENTRY
        except _REFUSED:
            pass  # not a plain resource: the lenient path sees all of it
    out: dict[str, Any] = {}
    if search is not msgspec.UNSET:
        out["search"] = {"mode": mode}
    if entry.fullUrl is not msgspec.UNSET:
        out["fullUrl"] = entry.fullUrl
    out["resource"] = orjson.loads(memoryview(entry.resource))
    return out


def _rules_read(probe: _Probe) -> bool:
    """False only for an Observation none of whose codings the rules read (as ``select``)."""
    if probe.resourceType != "Observation":
        return True
    concept = probe.code
    if concept is None or concept.coding is None:
        return False
    for coding in concept.coding:
        code = coding.code
        if code is not None:
            hit = OBSERVATION_CODES.get(code)
            if hit is not None and coding.system == hit[0]:
                return True
    return False
