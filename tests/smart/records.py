"""Hook requests built from resource lists, evaluated as the full view evaluates them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from service.settings import Settings
from service.smart.record import EvaluatedRecord, evaluate_record


def hook_body(resources: list[dict[str, Any]], patient_id: str) -> dict[str, Any]:
    """A patient-view request whose prefetch holds ``resources`` under the declared keys."""
    patient = next((r for r in resources if r["resourceType"] == "Patient"), None)

    def bundle(kind: str) -> dict[str, Any]:
        entries = [{"resource": r} for r in resources if r["resourceType"] == kind]
        return {"resourceType": "Bundle", "type": "searchset", "entry": entries}

    prefetch: dict[str, Any] = {
        "patient": patient,
        "conditions": bundle("Condition"),
        "observations": bundle("Observation"),
        "procedures": bundle("Procedure"),
    }
    return {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"userId": "Practitioner/1", "patientId": patient_id},
        "prefetch": prefetch,
    }


async def evaluated(
    resources: list[dict[str, Any]], patient_id: str, at: datetime, **settings: Any
) -> EvaluatedRecord:
    return await evaluate_record(
        hook_body(resources, patient_id), settings=Settings(**settings), at=at
    )
