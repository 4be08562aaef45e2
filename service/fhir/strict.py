"""Strict FHIR R4 validation with ``fhir.resources.R4B``: every schema problem, as notes.

Off the hot path on purpose (about 160 µs per resource): it runs when the strict-mode
setting (``LIVER_CDS_STRICT_FHIR``) is on, in ``liver-cds validate``, and in the tests of
fixtures and emitted ServiceRequests. Each problem is a :class:`DataQualityNote` naming
the resource and the field path and what is wrong — never the field's value (no PHI).

R4B is used because fhir.resources ships no plain R4 package; R4B differs from R4 (4.0.1)
only in resources the rules do not read, and is stricter nowhere that matters here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from service.fhir.read import resource_ref
from service.notes import DataQualityNote

MAX_PROBLEMS_PER_RESOURCE: Final = 50


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(resource)"


def _safe_message(message: str, value: object) -> str:
    """The validator's message without the offending value (which may be PHI)."""
    if isinstance(value, str) and len(value) >= 2 and value in message:
        message = message.replace(value, "…")
    return message[:200]


def validate_resource(resource: object, position: int | None = None) -> list[DataQualityNote]:
    """Every R4B schema problem of one resource (empty when it is valid)."""
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    if not isinstance(resource, Mapping):
        where = f"item {position}" if position is not None else "item"
        return [DataQualityNote(where, "not a JSON object")]
    ref = resource_ref(resource, position)
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        return [DataQualityNote(ref, "resourceType is missing or not a string")]
    try:
        model = get_fhir_model_class(rtype)
    except (ValueError, KeyError, AttributeError):
        return [DataQualityNote(ref, "resourceType is not a FHIR R4 resource type")]
    try:
        model.model_validate(dict(resource))
    except ValidationError as exc:
        notes = []
        for error in exc.errors()[:MAX_PROBLEMS_PER_RESOURCE]:
            message = _safe_message(str(error.get("msg", "invalid")), error.get("input"))
            notes.append(DataQualityNote(ref, f"{_path(tuple(error.get('loc', ())))}: {message}"))
        if exc.error_count() > MAX_PROBLEMS_PER_RESOURCE:
            notes.append(
                DataQualityNote(
                    ref, f"... and {exc.error_count() - MAX_PROBLEMS_PER_RESOURCE} more problems"
                )
            )
        return notes
    except (TypeError, ValueError, RecursionError) as exc:  # defensive: never raise on data
        return [DataQualityNote(ref, f"could not be validated ({type(exc).__name__})")]
    return []


def validate_resources(resources: Iterable[object]) -> list[DataQualityNote]:
    """Every schema problem of every resource, in input order (nested Bundles included).

    A Bundle is validated as a whole, which covers its entries' resources too.
    """
    notes: list[DataQualityNote] = []
    for position, resource in enumerate(resources):
        notes += validate_resource(resource, position)
    return notes
