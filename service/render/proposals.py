"""Card suggestions: one ``create`` action proposing a draft ServiceRequest each.

A suggestion never places an order: the resource is a ``draft`` ServiceRequest with intent
``proposal`` that the clinician reviews and signs in the EHR (CDS Hooks 2.0 "Action").
Every resource built here validates under ``fhir.resources.R4B`` (checked in the tests,
not at run time, to keep rendering fast).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

TREATMENT_OPTION_SYSTEM = "https://liver-cds.org/fhir/CodeSystem/treatment-option"
DATA_REQUEST_SYSTEM = "https://liver-cds.org/fhir/CodeSystem/data-request"
"""This project's codes for the orders of the data-needed card (cards/data-needed.yaml)."""

_CONDITION_REFERENCE = re.compile(r"^Condition/[A-Za-z0-9\-.]{1,64}$")


def reason_references(conditions: Iterable[str]) -> list[dict[str, str]]:
    """``reasonReference`` entries for well-formed ``Condition/<id>`` references, in order."""
    seen: set[str] = set()
    out = []
    for reference in conditions:
        if _CONDITION_REFERENCE.match(reference) and reference not in seen:
            seen.add(reference)
            out.append({"reference": reference})
    return out


def service_request(
    patient_id: str,
    codings: Iterable[Mapping[str, str]],
    text: str,
    reasons: list[dict[str, str]],
) -> dict[str, Any]:
    """A draft, proposed ServiceRequest for ``Patient/<patient_id>``."""
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
        "code": {"coding": [dict(coding) for coding in codings], "text": text},
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    if reasons:
        resource["reasonReference"] = [dict(reason) for reason in reasons]
    return resource


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
