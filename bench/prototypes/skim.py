"""Prototype: select before building — skim the request with msgspec, build dicts only for
the resources the rules read.

Today a hook call parses the whole body into Python objects (``orjson.loads``: ~15,000
dicts and lists for W1, ~450,000 for W2), then ``unpack`` and ``select`` walk them and
keep ~45. Building, garbage-collecting and freeing the ~99 % that is thrown away is most
of the service's CPU beyond the floor. This module keeps today's semantics while
building far less:

1. the envelope is decoded with msgspec into a struct whose ``prefetch`` values stay
   :class:`msgspec.Raw` (slices of the body, nothing built);
2. each prefetch Bundle is decoded into entries whose ``resource`` is again ``Raw``;
3. each resource is probed with a tiny typed struct (``resourceType`` and
   ``code.coding[].system/code``: no dicts, not GC-tracked) and an Observation whose
   codes the rules do not read is dropped right there — exactly the test
   :func:`service.fhir.read.select` applies first;
4. every other resource (and anything the typed decoders refuse: a wrong type anywhere
   in the probed fields, an entry that is not an object, ...) is parsed with
   ``orjson.loads`` as today, so the lenient readers and their data-quality notes see
   the same dicts they see now.

The result is the same ``dict`` the handler gets from ``parse_json`` today, except that
each irrelevant Observation is one shared stub ``{"resourceType": "Observation"}`` (so
entry indices in notes and the resource count are unchanged). ``check_skim.py`` compares
the assessments of both paths on every fixture, with junk mixed in. What a real change
must also handle: ``strict`` mode (``LIVER_CDS_STRICT_FHIR``) validates every resource,
so it keeps the full parse; and a number orjson refuses (an integer beyond 64 bits)
inside a skipped resource is no longer a 400, only skipped with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import orjson

from service.fhir.codes import OBSERVATION_CODES

_ENVELOPE_KEYS = ("hook", "hookInstance", "context", "fhirServer", "fhirAuthorization")


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


class _RawBundle(msgspec.Struct, gc=False):
    """A Bundle with an entry that is not a plain entry object: entries one by one."""

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


_envelope = msgspec.json.Decoder(_Envelope)
_bundle = msgspec.json.Decoder(_Bundle)
_raw_bundle = msgspec.json.Decoder(_RawBundle)
_entry = msgspec.json.Decoder(_Entry)
_probe = msgspec.json.Decoder(_Probe)
_FAILED = (msgspec.ValidationError, msgspec.DecodeError)

_SKIPPED: dict[str, Any] = {"resource": {"resourceType": "Observation"}}
"""Stands in for a dropped entry: entry indices (named in data-quality notes) and the
resource count (``LIVER_CDS_MAX_RESOURCES``) stay as they are, and select() ignores an
Observation without code silently, as it ignores an unread code. One shared object."""


def _rules_read(probe: _Probe) -> bool:
    """False only for an Observation whose codings the rules never read (as select())."""
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


def _entry_value(entry: _Entry) -> dict[str, Any]:
    """The entry as a dict, or :data:`_SKIPPED` for an Observation the rules do not read."""
    out: dict[str, Any] = {}
    if entry.search is not msgspec.UNSET:
        out["search"] = {"mode": entry.search.mode}
    if entry.fullUrl is not msgspec.UNSET:
        out["fullUrl"] = entry.fullUrl
    if out.get("search", {}).get("mode") != "outcome":
        try:
            if not _rules_read(_probe.decode(entry.resource)):
                return _SKIPPED
        except _FAILED:
            pass  # not a plain resource: let the lenient path see all of it
    out["resource"] = orjson.loads(bytes(entry.resource))
    return out


def _value(raw: msgspec.Raw) -> Any:
    """One prefetch value: a Bundle with only the entries worth building, else as is."""
    entries: list[Any] = []
    bundle: _Bundle | _RawBundle
    try:
        bundle = _bundle.decode(raw)
    except _FAILED:
        try:  # an entry of another shape: decode the entries one by one
            bundle = _raw_bundle.decode(raw)
        except _FAILED:
            return orjson.loads(bytes(raw))  # null, a resource of any shape, a broken Bundle
    if bundle.resourceType != "Bundle" or not isinstance(bundle.entry, list):
        return orjson.loads(bytes(raw))
    for item in bundle.entry:
        if isinstance(item, _Entry):
            entry: _Entry | None = item
        else:
            try:
                entry = _entry.decode(item)
            except _FAILED:
                entry = None
            if entry is None:
                entries.append(orjson.loads(bytes(item)))  # as today: unpack notes it
                continue
        entries.append(_entry_value(entry))
    out: dict[str, Any] = {"resourceType": "Bundle", "entry": entries}
    for name in ("type", "link", "total"):
        field = getattr(bundle, name)
        if field is not msgspec.UNSET:
            out[name] = field
    return out


def skim_json(body: bytes, fallback: Callable[[bytes], Any]) -> Any:
    """The parsed hook request with irrelevant Observations left out of its prefetch.

    ``fallback`` parses the whole body the usual way; it is used whenever the envelope is
    not a JSON object of the expected shape (its errors are then the usual 400s).
    """
    try:
        envelope = _envelope.decode(body)
    except _FAILED:
        return fallback(body)
    data: dict[str, Any] = {}
    for name in _ENVELOPE_KEYS:
        value = getattr(envelope, name)
        if value is not msgspec.UNSET:
            data[name] = value
    prefetch = envelope.prefetch
    if prefetch is None:
        data["prefetch"] = None
    elif prefetch is not msgspec.UNSET:
        data["prefetch"] = {key: _value(raw) for key, raw in prefetch.items()}
    return data
