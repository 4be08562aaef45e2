"""Benchmark workloads: deterministic hook requests of realistic shape.

W1 is a colorectal patient with liver metastases confined to the right lobe, whose
prefetch also carries ~30 unrelated Conditions and ~300 unrelated Observations (what an
EHR really sends: the whole problem list and recent vitals and labs). W2 is the same
patient with 10,000 unrelated Observations. The unrelated resources use codes the rules do
not read, so the service must select and skip them cheaply. W3 holds W1's resources on a
FHIR server and sends no prefetch.

Dates are relative to :data:`EVALUATED_AT`, today at midnight UTC, because the running
service evaluates at its own clock: labs dated a week before "now" are fresh, so every
workload takes the full path to a verdict (resectable, rule 21, with a data-needed card
for the FLR) instead of stopping early at "labs stale" (rule 5). Within one day the
requests are byte-for-byte deterministic.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

PATIENT_ID = "bench-crc-1"
EVALUATED_AT = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
EXPECTED_VERDICT = "resectable"
"""The verdict every workload's patient gets (rule 21); the benchmark checks it."""
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"

# Codes the rules never read: vital signs and routine chemistry (LOINC), chronic problems
# (ICD-10-CM).
_UNRELATED_OBSERVATIONS = (
    ("8867-4", "Heart rate", "/min", 50, 110),
    ("9279-1", "Respiratory rate", "/min", 10, 24),
    ("8310-5", "Body temperature", "Cel", 36.0, 38.5),
    ("29463-7", "Body weight", "kg", 45, 120),
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 180),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.2, 5.4),
    ("2075-0", "Chloride [Moles/volume] in Serum or Plasma", "mmol/L", 95, 110),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 9, 16),
)
_UNRELATED_CONDITIONS = (
    ("I10", "Essential (primary) hypertension"),
    ("E11.9", "Type 2 diabetes mellitus without complications"),
    ("E78.5", "Hyperlipidemia, unspecified"),
    ("M17.11", "Unilateral primary osteoarthritis, right knee"),
    ("J45.909", "Unspecified asthma, uncomplicated"),
    ("K21.9", "Gastro-esophageal reflux disease without esophagitis"),
)


def _ref() -> dict[str, str]:
    return {"reference": f"Patient/{PATIENT_ID}"}


def _status(code: str, system: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _condition(cid: str, code: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": _status(
            "active", "http://terminology.hl7.org/CodeSystem/condition-clinical"
        ),
        "verificationStatus": _status(
            "confirmed", "http://terminology.hl7.org/CodeSystem/condition-ver-status"
        ),
        "code": code,
        "subject": _ref(),
        **extra,
    }


def _lab(oid: str, loinc: str, value: float, unit: str, when: datetime) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "subject": _ref(),
        "effectiveDateTime": when.isoformat(),
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


def clinical_resources() -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The patient, the Conditions and the Observations the rules read (resectable, rule 21)."""
    week_ago = EVALUATED_AT - timedelta(days=7)
    patient = {
        "resourceType": "Patient",
        "id": PATIENT_ID,
        "birthDate": "1961-03-14",
        "gender": "female",
    }
    conditions = [
        _condition(
            "crc-primary",
            {"coding": [{"system": SNOMED, "code": "363406005"}], "text": "Colon cancer"},
            onsetDateTime="2024-02-01",
        ),
        _condition(
            "liver-mets",
            {"coding": [{"system": SNOMED, "code": "94381002"}], "text": "Liver metastases"},
            bodySite=[{"coding": [{"system": SNOMED, "code": "277960005"}]}],
            onsetDateTime="2026-04-20",
        ),
    ]
    observations = [
        _lab("bili", "1975-2", 0.8, "mg/dL", week_ago),
        _lab("alb", "1751-7", 4.1, "g/dL", week_ago),
        {**_lab("inr", "6301-6", 1.0, "{INR}", week_ago)},
        _lab("plt", "777-3", 240, "10*9/L", week_ago),
        _lab("crea", "2160-0", 0.9, "mg/dL", week_ago),
        _lab("na", "2951-2", 139, "mmol/L", week_ago),
        _lab("cea", "2039-6", 12, "ng/mL", week_ago),
        {
            "resourceType": "Observation",
            "id": "ecog",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "89247-1"}]},
            "subject": _ref(),
            "effectiveDateTime": week_ago.isoformat(),
            "valueInteger": 0,
        },
        {
            "resourceType": "Observation",
            "id": "size-1",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "21889-1"}]},
            "subject": _ref(),
            "effectiveDateTime": week_ago.isoformat(),
            "bodySite": {"coding": [{"system": SNOMED, "code": "277960005"}]},
            "valueQuantity": {"value": 32, "unit": "mm", "system": UCUM, "code": "mm"},
        },
        {
            "resourceType": "Observation",
            "id": "count",
            "status": "final",
            "code": {
                "coding": [
                    {
                        "system": "https://liver-cds.org/fhir/CodeSystem/liver-findings",
                        "code": "lesion-count",
                    }
                ]
            },
            "subject": _ref(),
            "effectiveDateTime": week_ago.isoformat(),
            "valueInteger": 1,
        },
    ]
    return patient, conditions, observations


def unrelated_conditions(n: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        code, text = _UNRELATED_CONDITIONS[i % len(_UNRELATED_CONDITIONS)]
        onset = EVALUATED_AT - timedelta(days=rng.randint(100, 5000))
        out.append(
            _condition(
                f"other-cond-{i}",
                {"coding": [{"system": ICD10, "code": code, "display": text}], "text": text},
                onsetDateTime=onset.date().isoformat(),
            )
        )
    return out


def unrelated_observations(n: int, seed: int = 2) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        loinc, _text, unit, low, high = _UNRELATED_OBSERVATIONS[i % len(_UNRELATED_OBSERVATIONS)]
        when = EVALUATED_AT - timedelta(hours=rng.randint(1, 24 * 365))
        value = round(rng.uniform(low, high), 1)
        out.append(_lab(f"other-obs-{i}", loinc, value, unit, when))
    return out


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {
                "fullUrl": f"urn:uuid:{r['resourceType']}-{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def procedures() -> list[dict[str, Any]]:
    """The patient's recorded procedures: the colectomy of the primary, no liver surgery."""
    return [
        {
            "resourceType": "Procedure",
            "id": "bench-colectomy",
            "status": "completed",
            "subject": {"reference": f"Patient/{PATIENT_ID}"},
            "code": {"text": "Partial colectomy with anastomosis"},
            "performedDateTime": (EVALUATED_AT - timedelta(days=120)).isoformat(),
        }
    ]


def hook_request(unrelated_obs: int, unrelated_cond: int = 30) -> dict[str, Any]:
    """A patient-view hook request with every prefetch key filled."""
    patient, conditions, observations = clinical_resources()
    return {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"userId": "Practitioner/bench", "patientId": PATIENT_ID},
        "prefetch": {
            "patient": patient,
            "conditions": searchset(conditions + unrelated_conditions(unrelated_cond)),
            "observations": searchset(observations + unrelated_observations(unrelated_obs)),
            "procedures": searchset(procedures()),
        },
    }


W0_FIXTURE = "patients/r21-colon-right-icd10.json"
"""W0: a typical small chart (14 KB), where the fixed cost of a call dominates."""


def w0() -> dict[str, Any]:
    """W0: the fixture patient r21 (resectable, rule 21), its dates moved so that the
    record reads today as it did on the manifest's evaluation day (as the demo page does)."""
    import json
    from pathlib import Path

    from service.demo import shift_dates

    fixtures = Path(__file__).resolve().parent.parent / "fixtures"
    manifest = json.loads((fixtures / "manifest.json").read_text(encoding="utf-8"))
    evaluated = datetime.fromisoformat(manifest["evaluated_at"].replace("Z", "+00:00"))
    request: dict[str, Any] = json.loads((fixtures / W0_FIXTURE).read_text(encoding="utf-8"))
    shifted: dict[str, Any] = shift_dates(request, (EVALUATED_AT.date() - evaluated.date()).days)
    return shifted


def w1() -> dict[str, Any]:
    """W1: a realistic patient: ~30 unrelated Conditions and ~300 unrelated Observations."""
    return hook_request(unrelated_obs=300)


def w2() -> dict[str, Any]:
    """W2: the same patient with 10,000 unrelated Observations."""
    return hook_request(unrelated_obs=10_000)


def w3(fhir_server: str, access_token: str | None = None) -> dict[str, Any]:
    """W3: no prefetch; the service fetches the W1 patient from ``fhir_server``, with
    ``access_token`` as the bearer token (``fhirAuthorization``) when given."""
    request: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": "5b0c0f7e-4a34-4b38-9d5c-7a1f0b6c2d11",
        "fhirServer": fhir_server,
        "context": {"userId": "Practitioner/bench", "patientId": PATIENT_ID},
    }
    if access_token is not None:
        request["fhirAuthorization"] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": (
                "patient/Patient.read patient/Condition.read patient/Observation.read "
                "patient/Procedure.read"
            ),
            "subject": "liver-cds-bench",
        }
    return request


def w3_resources() -> list[dict[str, Any]]:
    """What W3's FHIR server holds for the patient (W1's resources)."""
    patient, conditions, observations = clinical_resources()
    return [
        patient,
        *conditions,
        *unrelated_conditions(30),
        *observations,
        *unrelated_observations(300),
        *procedures(),
    ]
