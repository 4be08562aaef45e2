"""Card suggestions: one ``create`` action proposing a draft ServiceRequest each.

A suggestion never places an order: the resource is a ``draft`` ServiceRequest with intent
``proposal`` that the clinician reviews and signs in the EHR (CDS Hooks 2.0 "Action").
Every resource built here validates under ``fhir.resources.R4B`` (checked in the tests,
not at run time, to keep rendering fast).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from service.render import templates

DATA_REQUEST_SYSTEM = "https://liver-cds.org/fhir/CodeSystem/data-request"
"""This project's codes for the orders of the data-needed card (cards/data-needed.yaml)."""

_CONDITION_REFERENCE = re.compile(r"^Condition/[A-Za-z0-9\-.]{1,64}$")


REASON_CAP = 10
"""At most this many liver Conditions are named in a proposal's ``reasonReference``; the
rest are counted in its note ("and 9,990 more liver Conditions"). A chart with thousands of
liver Conditions (duplicates from an interface) must not make every suggestion, and so the
response, grow with it (issue 15: 10,000 Conditions once gave a 2.65 MB response)."""


@dataclass(frozen=True)
class Reasons:
    """The liver Conditions a proposal cites: the first :data:`REASON_CAP`, and a count of
    the others."""

    references: tuple[str, ...]
    more: int = 0


def reason_references(conditions: Iterable[str]) -> Reasons:
    """Well-formed, distinct ``Condition/<id>`` references in order: the first
    :data:`REASON_CAP`, and how many more there are."""
    distinct = dict.fromkeys(r for r in conditions if _CONDITION_REFERENCE.match(r))
    kept = tuple(itertools.islice(distinct, REASON_CAP))
    return Reasons(kept, len(distinct) - len(kept))


def service_request(
    patient_id: str,
    codings: Iterable[Mapping[str, str]],
    text: str,
    reasons: Reasons,
    more_note: str = "",
) -> dict[str, Any]:
    """A draft, proposed ServiceRequest for ``Patient/<patient_id>``.

    ``more_note`` is the card content's template (``{count}``) for the Conditions beyond
    the cap, put in ``note`` so the proposal still says what it is based on."""
    return proposal(proposal_code(codings, text), for_patient(patient_id, reasons, more_note))


def proposal_code(codings: Iterable[Mapping[str, str]], text: str) -> dict[str, Any]:
    """A proposal's ``code``: copies of ``codings``, and ``text``."""
    return {"coding": list(map(dict, codings)), "text": text}


def for_patient(patient_id: str, reasons: Reasons, more_note: str = "") -> dict[str, Any]:
    """The patient's part of a proposal (``subject``, ``reasonReference``, ``note``): the same
    for every proposal of a card, so a card makes it once (:func:`proposal`)."""
    part: dict[str, Any] = {"subject": {"reference": f"Patient/{patient_id}"}}
    if reasons.references:
        part["reasonReference"] = [{"reference": r} for r in reasons.references]
    if reasons.more and more_note:
        part["note"] = [{"text": templates.fill(more_note, {"count": f"{reasons.more:,}"})}]
    return part


_DRAFT_PROPOSAL: Final[Mapping[str, str]] = {
    "resourceType": "ServiceRequest",
    "status": "draft",
    "intent": "proposal",
}


def proposal(code: dict[str, Any], patient: Mapping[str, Any]) -> dict[str, Any]:
    """A draft, proposed ServiceRequest with ``code`` and the patient's part
    (:func:`for_patient`); the proposals of one card share ``patient``'s values, and a
    prepared ``code`` may be shared by every response (:mod:`service.render.prepared`):
    nothing mutates a rendered card."""
    return {**_DRAFT_PROPOSAL, "code": code, **patient}


def suggestion(
    new_uuid: Callable[[], str],
    label: str,
    recommended: bool,
    description: str,
    resource: dict[str, Any],
) -> dict[str, Any]:
    """A suggestion with exactly one ``create`` action; ``isRecommended`` always present."""
    return {
        "uuid": new_uuid(),
        "label": label,
        "isRecommended": recommended,
        "actions": [{"type": "create", "description": description, "resource": resource}],
    }
