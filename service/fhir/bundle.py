"""Unpacking one prefetch value or one fetched page into a flat list of resources.

The same rules apply to data the EHR sent in ``prefetch`` and to pages we fetched from
its FHIR server (fhir-mapping.md §1):

* ``null`` is "no data", a resource is itself, a Bundle is its entries;
* entries with ``search.mode = outcome`` and OperationOutcome resources are messages, not
  data: they become a data-quality note quoting their issue text (never ``diagnostics``,
  which servers fill with queries and ids), and the log gets only each issue's severity
  and code (:func:`outcome_codes`): an EHR writes patient names and MRNs into
  ``details.text`` ("Break-the-glass required for ..."), and logs must not hold them;
* an entry that is not an object, has no resource, or a resource without a string
  ``resourceType`` is skipped and named by its index in a note;
* a Bundle nested in a Bundle is read by the same rules, with a note (see
  :func:`_unpack_nested`); this module is the one owner of these rules, for every path;
* a value whose *shape* is wrong (a list, a string, ``entry`` not a list) is an error the
  caller turns into a 400 (prefetch) or a failed fetch (FHIR server).

Notes never quote resource contents: they name the place (key, entry index) and the problem.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Final

from service.notes import DataQualityNote
from service.observability import get_logger

__all__ = [
    "SKIPPED_ENTRY",
    "SKIPPED_OBSERVATION",
    "BundleShapeError",
    "Unpacked",
    "next_link",
    "outcome_codes",
    "outcome_text",
    "unpack",
]

log: Final = get_logger("fhir.bundle")

SKIPPED_OBSERVATION: Final[dict[str, Any]] = {"resourceType": "Observation"}
"""Stands in for an Observation the rules do not read, left unbuilt by the hook body's
parser (``skim.py``). ``select`` passes over it silently (no ``code``), as over the
Observation it replaces; keeping a stand-in keeps entry indices and resource counts."""

SKIPPED_ENTRY: Final[dict[str, Any]] = {"resource": SKIPPED_OBSERVATION}
"""The Bundle entry of :data:`SKIPPED_OBSERVATION`: one shared object, recognised by
identity so that :func:`unpack` spends nothing on it."""

MAX_NESTED_BUNDLES: Final = 3
"""Bundles inside Bundles are read this many levels deep; deeper ones are skipped."""

_MAX_ISSUE_TEXT: Final = 200
_MAX_ISSUES: Final = 5


class BundleShapeError(Exception):
    """The value is not a resource, a Bundle or null; ``message`` names the place."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Unpacked:
    """What one value held: its data resources, notes about what was skipped, and the
    Bundle's ``next`` link when it is one page of several."""

    resources: list[dict[str, Any]] = field(default_factory=list)
    notes: list[DataQualityNote] = field(default_factory=list)
    next_url: str | None = None


def _type_name(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__


_ISSUE_TOKEN: Final = re.compile(r"[a-z][a-z-]{0,39}")
"""What a FHIR ``IssueSeverity`` or ``IssueType`` code looks like (``error``,
``not-found``, ``too-costly``); anything else is not logged as such."""


def outcome_codes(outcome: dict[str, Any]) -> str:
    """``severity code`` of an OperationOutcome's first issues: what may be logged.

    No free text at all: ``details.text`` and ``diagnostics`` can name the patient. A
    severity or code that is not a plain FHIR code token is logged as ``?`` (a server
    that puts a sentence there would otherwise smuggle it into the log).
    """
    issues = outcome.get("issue")
    if not isinstance(issues, list) or not issues:
        return "no issue given"
    parts: list[str] = []
    for issue in issues[:_MAX_ISSUES]:
        if isinstance(issue, dict):
            parts.append(f"{_token(issue.get('severity'))} {_token(issue.get('code'))}")
    if len(issues) > _MAX_ISSUES:
        parts.append(f"and {len(issues) - _MAX_ISSUES} more")
    return "; ".join(parts) if parts else "no readable issue"


def _token(value: object) -> str:
    return value if isinstance(value, str) and _ISSUE_TOKEN.fullmatch(value) else "?"


def outcome_text(outcome: dict[str, Any]) -> str:
    """``severity code: text`` of an OperationOutcome's first issues, for notes and 412s
    (they go back to the EHR that wrote them); never for logs (see :func:`outcome_codes`).

    Only ``severity``, ``code`` and ``details.text`` are read (short, meant for people);
    ``diagnostics`` is left out because servers put stack traces and query strings there.
    """
    issues = outcome.get("issue")
    if not isinstance(issues, list) or not issues:
        return "no issue given"
    parts: list[str] = []
    for issue in issues[:_MAX_ISSUES]:
        if not isinstance(issue, dict):
            continue
        severity = issue.get("severity") if isinstance(issue.get("severity"), str) else "?"
        code = issue.get("code") if isinstance(issue.get("code"), str) else "?"
        details = issue.get("details")
        text = details.get("text") if isinstance(details, dict) else None
        item = f"{severity} {code}"
        if isinstance(text, str) and text.strip():
            item += ": " + " ".join(text.split())[:_MAX_ISSUE_TEXT]
        parts.append(item)
    if len(issues) > _MAX_ISSUES:
        parts.append(f"and {len(issues) - _MAX_ISSUES} more")
    return "; ".join(parts) if parts else "no readable issue"


def next_link(bundle: dict[str, Any]) -> str | None:
    """The Bundle's ``link`` with relation ``next``, if it is a non-empty string."""
    links = bundle.get("link")
    if not isinstance(links, list):
        return None
    for link in links:
        if (
            isinstance(link, dict)
            and link.get("relation") == "next"
            and isinstance(link.get("url"), str)
            and link["url"].strip()
        ):
            url: str = link["url"].strip()
            return url
    return None


def _skip_outcome(out: Unpacked, where: str, resource: dict[str, Any]) -> None:
    # DEBUG: the note below reaches the card, and the call's one INFO line counts it.
    log.debug(
        "FHIR OperationOutcome skipped", extra={"where": where, "issues": outcome_codes(resource)}
    )
    text = outcome_text(resource)
    out.notes.append(DataQualityNote(resource=where, problem=f"the EHR reported a problem: {text}"))


def _unpack_nested(out: Unpacked, bundle: dict[str, Any], place: str, level: int) -> None:
    """A Bundle inside a Bundle: its entries are read by the same rules, and a note says so.

    Decided once for every path (hook call, CLI, tests): reading it is the safe choice.
    Skipping it would drop this patient's Conditions without a trace, and an assessment
    without its liver Condition is "no cards", which looks exactly like a patient with no
    liver disease. Every resource still passes the per-resource checks (type, code,
    subject) in ``select``. A nested Bundle's ``next`` link is not followed (only the
    prefetch value's own paging is), and nesting deeper than :data:`MAX_NESTED_BUNDLES`
    is skipped with a note.
    """
    if level >= MAX_NESTED_BUNDLES:
        out.notes.append(DataQualityNote(place, "skipped: Bundles nested too deeply"))
        return
    try:
        inner = unpack(bundle, place, _level=level + 1)
    except BundleShapeError as exc:
        out.notes.append(DataQualityNote(place, f"skipped: {exc.message}"))
        return
    out.resources.extend(inner.resources)
    out.notes.extend(inner.notes)
    problem = "a Bundle nested in a Bundle: its entries were read"
    if inner.next_url is not None:
        problem += "; its next page was not fetched"
    out.notes.append(DataQualityNote(place, problem))


def _place(where: str, index: int) -> str:
    return f"{where} Bundle entry {index}"


def _unusual_entry(out: Unpacked, entry: dict[str, Any], place: str, level: int) -> None:
    """An entry that is not a plain data resource: a message, a nested Bundle, or skipped
    with a note naming ``place``."""
    search = entry.get("search")
    mode = search.get("mode") if isinstance(search, dict) else None
    resource = entry.get("resource")
    if mode == "outcome":
        if isinstance(resource, dict):
            _skip_outcome(out, place, resource)
        else:
            out.notes.append(DataQualityNote(place, "skipped: an outcome entry"))
        return
    if resource is None:
        out.notes.append(DataQualityNote(place, "skipped: the entry has no resource"))
        return
    if not isinstance(resource, dict):
        out.notes.append(
            DataQualityNote(place, f"skipped: the entry's resource is {_type_name(resource)}")
        )
        return
    entry_type = resource.get("resourceType")
    if not isinstance(entry_type, str) or not entry_type:
        out.notes.append(DataQualityNote(place, "skipped: the resource has no resourceType"))
        return
    if entry_type == "OperationOutcome":
        _skip_outcome(out, place, resource)
        return
    if entry_type == "Bundle":
        _unpack_nested(out, resource, place, level)
        return
    out.resources.append(resource)


def unpack(value: Any, where: str, *, _level: int = 0) -> Unpacked:
    """Flatten ``value`` (a resource, a Bundle or ``None``) into data resources.

    ``where`` names the value in notes and errors, e.g. ``"prefetch 'conditions'"``.
    Raises :class:`BundleShapeError` when ``value`` has a wrong shape.
    """
    out = Unpacked()
    if value is None:
        return out
    if not isinstance(value, dict):
        raise BundleShapeError(
            f"{where} must be a FHIR resource, a searchset Bundle or null, not {_type_name(value)}"
        )
    resource_type = value.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        raise BundleShapeError(f"{where} is an object without a resourceType")
    if resource_type == "OperationOutcome":
        _skip_outcome(out, where, value)
        return out
    if resource_type != "Bundle":
        out.resources.append(value)
        return out

    entries = value.get("entry")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise BundleShapeError(
            f"{where} is a Bundle whose entry is {_type_name(entries)}, not a list"
        )
    out.next_url = next_link(value)
    resources = out.resources
    for index, entry in enumerate(entries):
        if entry is SKIPPED_ENTRY:
            resources.append(SKIPPED_OBSERVATION)
            continue
        # The common entry, an object holding a resource of a data type, is checked inline
        # and names no place: "<where> Bundle entry <index>" is only written for a note.
        if not isinstance(entry, dict):
            out.notes.append(
                DataQualityNote(_place(where, index), f"skipped: the entry is {_type_name(entry)}")
            )
            continue
        search = entry.get("search")
        resource = entry.get("resource")
        if (
            resource.__class__ is dict
            and not (isinstance(search, dict) and search.get("mode") == "outcome")
            and (entry_type := resource.get("resourceType")).__class__ is str
            and entry_type
            and entry_type != "OperationOutcome"
            and entry_type != "Bundle"
        ):
            resources.append(resource)
            continue
        _unusual_entry(out, entry, _place(where, index), _level)
    if out.notes and log.isEnabledFor(logging.DEBUG):
        log.debug("entries skipped", extra={"where": where, "skipped": len(out.notes)})
    return out
