"""The one entry point of the clinical engine: raw FHIR resources in, an assessment out.

    resources -> select (by type and code, this patient only)   service/fhir/read.py
              -> facts (clinical-rules.md §2)                   facts/
              -> scores (§4) and the decision table (§3)        scores.py, rules.py

Pure: no I/O, no clock (the evaluation time ``at`` is an argument), never raises on bad
data (a malformed resource becomes a :class:`DataQualityNote`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from service.clinical.facts import facts_from_selection
from service.clinical.model import Assessment, DataQualityNote
from service.clinical.rules import decide
from service.clinical.thresholds import DEFAULT_THRESHOLDS, Thresholds
from service.fhir.read import select


def assess(
    resources: Iterable[Mapping[str, Any]],
    *,
    patient_id: str,
    at: datetime,
    notes: Iterable[DataQualityNote] = (),
    strict: bool = False,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    procedures_checked: bool = True,
) -> Assessment:
    """Assess one patient from the raw (orjson-parsed) resources of all prefetch keys.

    ``resources`` is a flat iterable of resource dicts of any type (a nested Bundle is
    flattened); the engine picks the Patient, Conditions and Observations it needs, ignores
    the rest and resources of other patients. ``notes`` are data-quality notes found earlier
    (Bundle outcome entries, junk entries). ``at`` is the evaluation time (a naive datetime
    is read as UTC). ``strict`` also validates every resource with fhir.resources R4B and
    adds each schema problem as a data-quality note (slow: ~160 µs per resource).
    ``thresholds`` carries every clinical number (defaults: clinical-rules.md).
    ``procedures_checked`` is False when this patient's Procedures could not be had (the
    ``procedures`` prefetch key neither sent nor fetched: ``PrefetchResult.complete``):
    previous liver surgery is then unchecked and the card says so.
    """
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    early = list(notes)
    if strict:
        from service.fhir.strict import validate_resources

        resources = list(resources)
        early += validate_resources(resources)
    selection = select(resources, patient_id, procedures_checked=procedures_checked)
    facts = facts_from_selection(
        selection, patient_id=patient_id, at=at, notes=early, thresholds=thresholds
    )
    return decide(facts, thresholds)
