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
``resourceType`` and ``code.coding[].system/code``, not tracked by the GC), unless its
bytes show it cannot be an Observation (see :func:`_entries`). An Observation
whose codes the rules do not read becomes :data:`SKIPPED_OBSERVATION`, one shared stub,
so entry indices (named in data-quality notes) and the resource count
(``LIVER_CDS_MAX_RESOURCES``) are unchanged. Everything else (and anything a typed probe
refuses: an entry that is not an object, a coding of the wrong type, a value that is not
a Bundle) is parsed with orjson exactly as the full parse would, so the lenient readers
and their notes see the same dicts.

The service runs :class:`HookBodyParser`, the same skim specialised to its declared
prefetch keys, which decodes the envelope and its Bundles in one pass instead of two;
:func:`parse_hook_body` is the general form it falls back to for any other shape.

A small body (a typical chart, up to :data:`SMALL_BODY_BYTES`) holds few unread
Observations, and there the skim's fixed cost per resource is more than building them:
:class:`HookBodyParser` parses it whole with one ``orjson.loads`` and applies the same
probe and stubs to the dicts, giving the skim's exact result (``_declared_document``),
or leaves the body to the skim whenever the two could differ.

The nesting limit (``LIVER_CDS_MAX_JSON_DEPTH``) is checked on exactly the parts that are
built: every slice handed to orjson (and every envelope value) is remembered with the
level it sits at, and :func:`service.jsondepth.check_depth` counts them, one call per
level, before the result is returned. That costs a fraction of counting the whole body,
most of which is skipped Observations that nothing ever walks.

The result equals ``orjson.loads(body)`` except for the stubs and the keys the protocol
does not read: top-level keys other than the envelope's, and each entry's ``fullUrl``
(``unpack`` reads an entry's ``resource`` and ``search`` only; a reference is resolved by
the resource's type and id, never by ``fullUrl``). Three differences are deliberate, all
inside what is not built (skipped Observations and entries' ``fullUrl``): a number orjson
refuses (``1e999``) is not looked at, so it no longer makes the whole request a 400;
nesting deeper than the limit is not refused either (msgspec still refuses what passes
Python's recursion limit, about 1,000 levels); and nothing else in them is checked. The
whole body is still required to be UTF-8 and syntactically valid JSON (msgspec checks the
syntax of what it skips). Strict mode (``LIVER_CDS_STRICT_FHIR``) validates every input
resource, so it keeps the full parse and the whole-body depth count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec
import orjson

from service.fhir.bundle import SKIPPED_ENTRY, SKIPPED_OBSERVATION
from service.fhir.codes import OBSERVATION_CODES
from service.fhir.prefetch import expected_type
from service.jsondepth import JsonTooDeep, check_depth, has_escaped_key, json_depth, load_json

__all__ = [
    "SKIPPED_OBSERVATION",
    "SMALL_BODY_BYTES",
    "HookBodyParser",
    "body_parser",
    "parse_hook_body",
]

SMALL_BODY_BYTES: Final = 32 * 1024
"""Bodies up to this size are parsed whole by :class:`HookBodyParser` (one ``orjson.loads``)
and their prefetch skimmed as dicts; larger ones are skimmed on their bytes. Measured
(callgrind): W0 (14 KB, nearly every resource read) costs about a quarter less parsed
whole; W1 (180 KB, mostly unread Observations) twice as much as skimmed. A body much
larger than a typical chart is mostly resources the rules do not read."""

_ABSENT: Final = msgspec.Raw()
"""Default of a ``Raw`` field whose key is absent (a present value is never empty)."""

# Levels of nesting at which the parts built from slices sit in the request document:
# {"context": <1>, "prefetch": {"k": <2> = {"resourceType": "Bundle", "link": <3>,
#  "entry": [<4> = {"resource": <5>}]}}}
_ENVELOPE_LEVEL: Final = 1
_PREFETCH_LEVEL: Final = 2
_BUNDLE_FIELD_LEVEL: Final = 3
_ENTRY_LEVEL: Final = 4
_ENTRY_FIELD_LEVEL: Final = 5
_LEVELS: Final = (
    _ENVELOPE_LEVEL,
    _PREFETCH_LEVEL,
    _BUNDLE_FIELD_LEVEL,
    _ENTRY_LEVEL,
    _ENTRY_FIELD_LEVEL,
)


class _Envelope(msgspec.Struct):
    hook: msgspec.Raw = _ABSENT
    hookInstance: msgspec.Raw = _ABSENT
    context: msgspec.Raw = _ABSENT
    fhirServer: msgspec.Raw = _ABSENT
    fhirAuthorization: msgspec.Raw = _ABSENT
    prefetch: dict[str, msgspec.Raw] | msgspec.UnsetType | None = msgspec.UNSET


_ENVELOPE_KEYS: Final = ("hook", "hookInstance", "context", "fhirServer", "fhirAuthorization")
"""Top-level keys the protocol reads besides ``prefetch``; others (``extension``, ...) are
tolerated and not read, so they are not built."""


class _Search(msgspec.Struct, gc=False):
    mode: str | None = None


class _Entry(msgspec.Struct, gc=False):
    """An entry as ``unpack`` reads it: its ``fullUrl`` (and anything else) is not read, so
    msgspec only checks its syntax."""

    resource: msgspec.Raw = msgspec.Raw(b"null")
    search: _Search | msgspec.UnsetType = msgspec.UNSET


class _Bundle(msgspec.Struct, gc=False):
    resourceType: str
    entry: list[_Entry] | msgspec.UnsetType | None = msgspec.UNSET
    type: msgspec.Raw = _ABSENT
    link: msgspec.Raw = _ABSENT
    total: msgspec.Raw = _ABSENT


class _LooseBundle(msgspec.Struct, gc=False):
    """A Bundle with an entry of another shape: its entries are then decoded one by one."""

    resourceType: str
    entry: list[msgspec.Raw] | msgspec.UnsetType | None = msgspec.UNSET
    type: msgspec.Raw = _ABSENT
    link: msgspec.Raw = _ABSENT
    total: msgspec.Raw = _ABSENT


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
_LETTER_O: Final = ord("O")
_BACKSLASH: Final = ord("\\")
"""Bytes as ints: ``int in bytes`` is a ``memchr``, while ``bytes in bytes`` first tries
the needle as an int and builds (and drops) a ``TypeError`` saying it is not one."""
_BUNDLE_FIELDS: Final = ("type", "link", "total")


class _Built:
    """Builds slices of the body with orjson, remembering each with its nesting level."""

    def __init__(self) -> None:
        self.parts: dict[int, list[msgspec.Raw]] = {level: [] for level in _LEVELS}

    def load(self, raw: msgspec.Raw, level: int) -> Any:
        self.parts[level].append(raw)
        return orjson.loads(memoryview(raw))

    def check_depth(self, max_depth: int) -> None:
        for level, parts in self.parts.items():
            if parts:
                check_depth(parts, level, max_depth)


def parse_hook_body(body: bytes, max_depth: int) -> Any:
    """The parsed hook request, with unread Observations in its prefetch left unbuilt.

    Raises ``orjson.JSONDecodeError`` (a ``ValueError``) where the full parse would,
    ``UnicodeDecodeError`` (also a ``ValueError``) for a body that is not UTF-8, and
    :class:`service.jsondepth.JsonTooDeep` when a part it builds is nested deeper than
    ``max_depth`` (or the body passes the parser's recursion limit). When the envelope is
    not an object of the expected shape the body is checked and parsed in full, so its
    errors are the usual ones.
    """
    return _guarded(_parse, body, max_depth)


def _guarded(parse: Callable[[bytes, int], Any], body: bytes, max_depth: int) -> Any:
    """``parse(body, max_depth)`` for a UTF-8 body, parser recursion reported as too deep."""
    if not body.isascii():  # ASCII is UTF-8, checked without building a str of the body
        body.decode("utf-8")  # skipped parts are not decoded, but the body must be UTF-8
    try:
        return parse(body, max_depth)
    except RecursionError:
        raise JsonTooDeep("JSON is nested too deeply to parse") from None


def _envelope_values(envelope: Any, built: _Built) -> dict[str, Any]:
    """The top-level keys the protocol reads, each built from its slice of the body."""
    data: dict[str, Any] = {}
    for name in _ENVELOPE_KEYS:
        raw = getattr(envelope, name)
        if raw:
            data[name] = built.load(raw, _ENVELOPE_LEVEL)
    return data


def _parse(body: bytes, max_depth: int) -> Any:
    try:
        envelope = _decode_envelope(body)
    except _REFUSED:
        return load_json(body, max_depth)  # not an envelope object: parsed and checked whole
    built = _Built()
    data = _envelope_values(envelope, built)
    prefetch = envelope.prefetch
    if prefetch is None:
        data["prefetch"] = None
    elif prefetch is not msgspec.UNSET:
        data["prefetch"] = {key: _prefetch_value(raw, built) for key, raw in prefetch.items()}
    built.check_depth(max_depth)
    return data


def _prefetch_value(raw: msgspec.Raw, built: _Built) -> Any:
    """One prefetch value: a Bundle with only the entries worth building, else as it is."""
    bundle: _Bundle | _LooseBundle
    try:
        bundle = _decode_bundle(raw)
    except _REFUSED:
        try:
            bundle = _decode_loose_bundle(raw)
        except _REFUSED:
            return built.load(raw, _PREFETCH_LEVEL)  # null, a resource, a broken Bundle
    if bundle.resourceType != "Bundle" or not isinstance(bundle.entry, list):
        return built.load(raw, _PREFETCH_LEVEL)
    if isinstance(bundle, _Bundle):
        entries = _entries(bundle.entry, built)
    else:
        entries = [_loose_entry(item, built) for item in bundle.entry]
    return _bundle_value(bundle, entries, built)


def _bundle_value(bundle: _Bundle | _LooseBundle, entries: list[Any], built: _Built) -> Any:
    """The Bundle as the dict the full parse gives for the keys ``unpack`` reads."""
    out: dict[str, Any] = {"resourceType": "Bundle", "entry": entries}
    for name in _BUNDLE_FIELDS:
        field = getattr(bundle, name)
        if field:
            out[name] = built.load(field, _BUNDLE_FIELD_LEVEL)
    return out


def _entries(items: list[_Entry], built: _Built) -> list[Any]:
    """The entries as dicts, each Observation the rules skip as the shared stub entry.

    This loop runs for every entry of every prefetch Bundle (10,000 times in W2), and the
    skip is what happens to nearly every entry, so it is decided inline: one probe decode,
    then a dict lookup per coding (the test ``select`` applies to an Observation's codings),
    with no further call.

    Only an Observation can be skipped: any other resource, and any the probe refuses, is
    built. A resource whose bytes hold neither an ``O`` nor a backslash cannot be one (its
    ``resourceType`` could only say ``Observation`` with that letter, written plainly or
    as a ``\\u`` escape), so it is built without a probe, which costs two ``memchr``
    instead of decoding it. That is tried only after a resource that was not an
    Observation: a Bundle of Observations (W2) pays nothing for it, a Bundle of Conditions
    skips their probes.
    """
    out: list[Any] = []
    append = out.append
    codes = OBSERVATION_CODES
    unset = msgspec.UNSET
    probe = _decode_probe
    skipped = SKIPPED_ENTRY
    others = False  # the last resource probed was not an Observation
    letter_o, backslash = _LETTER_O, _BACKSLASH
    for entry in items:
        search = entry.search
        if search is unset or search.mode != "outcome":
            resource = entry.resource
            if others:
                data = bytes(resource)
                if letter_o not in data and backslash not in data:
                    append(_built_entry(entry, built))  # not an Observation
                    continue
            try:
                found = probe(resource)
            except _REFUSED:
                others = True
                append(_built_entry(entry, built))  # not a plain resource: built in full
                continue
            if found.resourceType == "Observation":
                others = False
                concept = found.code
                if concept is None or concept.coding is None:
                    append(skipped)
                    continue
                for coding in concept.coding:
                    hit = codes.get(coding.code)  # type: ignore[arg-type]  # None is no key
                    if hit is not None and coding.system == hit[0]:
                        break  # read: built below
                else:
                    append(skipped)
                    continue
            else:
                others = True
        append(_built_entry(entry, built))
    return out


def _loose_entry(item: msgspec.Raw, built: _Built) -> Any:
    """One entry of a Bundle whose entries are not all objects of the expected shape."""
    try:
        entry = _decode_entry(item)
    except _REFUSED:
        return built.load(item, _ENTRY_LEVEL)  # not an entry object: unpack() notes it
    [value] = _entries([entry], built)
    return value


def _built_entry(entry: _Entry, built: _Built) -> dict[str, Any]:
    """The entry as the dict the full parse gives for the keys ``unpack`` reads."""
    out: dict[str, Any] = {}
    search = entry.search
    if search is not msgspec.UNSET:
        out["search"] = {"mode": search.mode}
    out["resource"] = built.load(entry.resource, _ENTRY_FIELD_LEVEL)
    return out


class HookBodyParser:
    """:func:`parse_hook_body` for one service: one pass for its declared prefetch.

    Why: the general skim decodes the envelope with every prefetch value kept as raw
    bytes, then decodes each Bundle again from those bytes: the bulk of the body (its
    Observations) is scanned twice before any entry is probed. Knowing the service's
    prefetch keys, and which of them are searches (a Bundle) or reads (one resource, as
    ``prefetch.expected_type`` tells), the envelope is decoded once with each search
    typed as a Bundle whose entries keep their resource as raw bytes, and each read kept
    as raw bytes. Keys the service did not declare are not built (``prefetch.resolve``
    ignores them). Anything else, a search answered by an OperationOutcome or by a
    Bundle of another shape, a body that is not an object, goes to the general skim,
    so the result is always what :func:`parse_hook_body` gives for the declared keys.

    A body of at most ``small_body_bytes`` (a typical chart: tens of KB, a few dozen
    resources) is parsed whole instead, by :meth:`_whole`: the skim's fixed cost per
    resource (a probe decode, an ``orjson.loads`` of each built slice, a depth count per
    level) is then several times what one ``orjson.loads`` of the whole body costs, and
    the few unread Observations such a body holds cost little to build. The skim stays the
    path for large bodies, where building the unread Observations is what costs.
    """

    def __init__(
        self, templates: Mapping[str, str], *, small_body_bytes: int = SMALL_BODY_BYTES
    ) -> None:
        self._small_body_bytes = small_body_bytes
        fields: list[tuple[str, Any, Any]] = []
        rename: dict[str, str] = {}
        self._reads: list[tuple[str, str]] = []
        self._searches: list[tuple[str, str]] = []
        for index, (key, template) in enumerate(templates.items()):
            name = f"key{index}"  # prefetch keys need not be Python identifiers
            rename[name] = key
            if expected_type(template) is None:
                fields.append((name, _Bundle | None | msgspec.UnsetType, msgspec.UNSET))
                self._searches.append((name, key))
            else:
                fields.append((name, msgspec.Raw, _ABSENT))
                self._reads.append((name, key))
        # The prefetch keys by kind, for the whole-body path (_declared_document).
        self._read_keys = tuple(key for _, key in self._reads)
        self._search_keys = tuple(key for _, key in self._searches)
        prefetch = msgspec.defstruct("DeclaredPrefetch", fields, rename=rename, gc=False)
        envelope = msgspec.defstruct(
            "DeclaredEnvelope",
            [(name, msgspec.Raw, _ABSENT) for name in _ENVELOPE_KEYS]
            + [("prefetch", prefetch | None | msgspec.UnsetType, msgspec.UNSET)],
        )
        self._decode: Callable[[bytes], Any] = msgspec.json.Decoder(envelope).decode

    def __call__(self, body: bytes, max_depth: int) -> Any:
        """Parse ``body`` as :func:`parse_hook_body` does, raising what it raises."""
        if len(body) <= self._small_body_bytes:
            data = self._whole(body, max_depth)
            if data is not None:
                return data
        return _guarded(self._parse, body, max_depth)

    def _whole(self, body: bytes, max_depth: int) -> dict[str, Any] | None:
        """The skim's result computed from one ``orjson.loads`` of the whole body, or None
        when the skim must decide (then nothing was decided here).

        None when: orjson refuses the body (the skim then says why, or accepts it: it does
        not look inside unread Observations); the whole body nests deeper than the limit
        (the skim counts only what it builds, so it may still accept it); a key is spelled
        with ``\\u`` escapes (msgspec, which the skim decodes with, does not unescape
        keys); or the document is not of the shape the declared envelope struct accepts
        (:func:`_declared_document`). Otherwise the skim would accept the body, and its
        result is what :func:`_declared_document` rebuilds from the parsed document: where
        the whole body nests within the limit so does every part the skim builds, and the
        two parsers read the same values (both keep a repeated key's last value).
        """
        if has_escaped_key(body):
            return None
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if json_depth(body, max_depth) > max_depth:
            return None
        return _declared_document(document, self._read_keys, self._search_keys)

    def _parse(self, body: bytes, max_depth: int) -> Any:
        try:
            envelope = self._decode(body)
        except _REFUSED:
            return _parse(body, max_depth)  # not the declared shape: the general skim
        built = _Built()
        data = _envelope_values(envelope, built)
        prefetch = envelope.prefetch
        if prefetch is None:
            data["prefetch"] = None
        elif prefetch is not msgspec.UNSET:
            values: dict[str, Any] = {}
            for name, key in self._reads:
                raw = getattr(prefetch, name)
                if raw:  # a resource, or whatever was sent: as the general skim reads it
                    values[key] = _prefetch_value(raw, built)
            for name, key in self._searches:
                bundle = getattr(prefetch, name)
                if bundle is None:
                    values[key] = None
                elif bundle is not msgspec.UNSET:
                    if bundle.resourceType != "Bundle" or not isinstance(bundle.entry, list):
                        return _parse(body, max_depth)  # e.g. an OperationOutcome
                    values[key] = _bundle_value(bundle, _entries(bundle.entry, built), built)
            data["prefetch"] = values
        built.check_depth(max_depth)
        return data


# --- the same result from a document parsed whole -------------------------------------------
#
# Each function below mirrors one struct of the declared envelope (``HookBodyParser``):
# None where msgspec would refuse the value (then the skim decides), else the value the
# skim builds. msgspec ignores keys a struct does not name, keeps a repeated key's last
# value as orjson does, and refuses a typed field of another type, including ``null``
# where the type does not allow it.


def _declared_document(
    document: Any, read_keys: tuple[str, ...], search_keys: tuple[str, ...]
) -> dict[str, Any] | None:
    """``HookBodyParser._parse``'s result for an accepted ``document``, else None."""
    if document.__class__ is not dict:
        return None
    data = {name: document[name] for name in _ENVELOPE_KEYS if name in document}
    if "prefetch" not in document:
        return data
    prefetch = document["prefetch"]
    if prefetch is None:
        data["prefetch"] = None
        return data
    if prefetch.__class__ is not dict:
        return None
    values: dict[str, Any] = {}
    for key in read_keys:
        if key in prefetch:
            value = prefetch[key]
            if value.__class__ is dict and value.get("resourceType") == "Bundle":
                return None  # a Bundle for a read: the skim skims it (rare, left to it)
            values[key] = value
    for key in search_keys:
        if key in prefetch:
            bundle = prefetch[key]
            if bundle is None:
                values[key] = None
                continue
            value = _declared_bundle(bundle)
            if value is None:
                return None
            values[key] = value
    data["prefetch"] = values
    return data


def _declared_bundle(bundle: Any) -> dict[str, Any] | None:
    """:func:`_bundle_value` of a search Bundle (``_Bundle``), else None.

    Only a Bundle with a list of entries is skimmed by the declared parser (anything else,
    an OperationOutcome, an entry that is not an object, goes to the general skim)."""
    if bundle.__class__ is not dict or bundle.get("resourceType") != "Bundle":
        return None
    items = bundle.get("entry")
    if items.__class__ is not list:
        return None
    entries: list[Any] = []
    append = entries.append
    for entry in items:
        if entry.__class__ is not dict:
            return None
        if "search" in entry:
            search = entry["search"]
            if search.__class__ is not dict:
                return None  # ``_Entry.search`` is a ``_Search`` or absent, never null
            mode = search.get("mode")
            if mode is not None and mode.__class__ is not str:
                return None
            if mode != "outcome" and _unread_observation(entry.get("resource")):
                append(SKIPPED_ENTRY)
                continue
            built: dict[str, Any] = {"search": {"mode": mode}}
        elif _unread_observation(entry.get("resource")):
            append(SKIPPED_ENTRY)
            continue
        else:
            built = {}
        built["resource"] = entry.get("resource")
        append(built)
    out: dict[str, Any] = {"resourceType": "Bundle", "entry": entries}
    for name in _BUNDLE_FIELDS:
        if name in bundle:
            out[name] = bundle[name]
    return out


def _unread_observation(resource: Any) -> bool:
    """The skim's test in :func:`_entries`: the ``_Probe`` decodes, and it is an Observation
    with no coding the rules read. A resource the probe refuses (a ``code`` that is not an
    object, a coding that is not one, a ``system`` that is not a string) is built."""
    if resource.__class__ is not dict or resource.get("resourceType") != "Observation":
        return False
    concept = resource.get("code")
    if concept is None:
        return True
    if concept.__class__ is not dict:
        return False
    coding = concept.get("coding")
    if coding is None:
        return True
    if coding.__class__ is not list:
        return False
    read = False
    codes = OBSERVATION_CODES
    for item in coding:
        if item.__class__ is not dict:
            return False
        system = item.get("system")
        code = item.get("code")
        if system is not None and system.__class__ is not str:
            return False
        if code is not None:
            if code.__class__ is not str:
                return False
            hit = codes.get(code)
            if hit is not None and system == hit[0]:
                read = True  # the probe has checked every coding's types before this
    return not read


def body_parser(templates: Mapping[str, str], *, strict: bool) -> Callable[[bytes, int], Any]:
    """How a service's hook bodies are parsed: the skim for its declared prefetch, or, in
    strict mode (which validates every input resource, so needs every one built), the full
    parse. The hook endpoint and the tests that replay fixtures both take it from here."""
    return load_json if strict else HookBodyParser(templates)
