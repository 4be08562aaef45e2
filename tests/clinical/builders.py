"""Small builders for the clinical tests: Facts for rule tests, FHIR dicts for reading tests.

The Facts defaults describe the plainest resectable case (a colorectal metastasis of the
right lobe, Child-Pugh A, ECOG 0); each test changes only what its rule is about.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from service.clinical.model import Facts, Measurement

AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
RECENT = AT - timedelta(days=7)
PID = "p1"

SCT = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
FINDINGS = "https://liver-cds.org/fhir/CodeSystem/liver-findings"
QUALIFIER = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-body-location-qualifier"
RELATED = "http://hl7.org/fhir/StructureDefinition/condition-related"

# Liver sites (fhir-mapping.md §3)
SEG = {
    "I": "71133005",
    "II": "277956007",
    "III": "277957003",
    "IV": "277958008",
    "IVa": "871688003",
    "IVb": "871689006",
    "V": "277959000",
    "VI": "277960005",
    "VII": "277961009",
    "VIII": "277962002",
}
RIGHT_LOBE = "48521005"
LEFT_LOBE = "69842003"
LIVER = "10200004"
LUNG_SITE = "39607008"  # lung structure: any non-liver coded site works for these tests


def lab(
    value: float,
    unit: str = "mg/dL",
    day: datetime = RECENT,
    source: str = "Observation/x",
    unrounded: float | None = None,
) -> Measurement:
    return Measurement(value, unit, day, source, None, unrounded)


NORMAL_LABS: dict[str, Measurement] = {
    "bilirubin": lab(0.7),
    "albumin": lab(4.2, "g/dL"),
    "inr": lab(1.0, ""),
    "platelets": lab(230, "10^9/L"),
    "creatinine": lab(0.9),
    "sodium": lab(139, "mmol/L"),
}
CP_B_LABS = {
    **NORMAL_LABS,
    "bilirubin": lab(2.5),
    "albumin": lab(3.0, "g/dL"),
    "inr": lab(1.8, ""),
}  # 2 + 2 + 2 + 1 + 1 = 8 -> B
CP_C_LABS = {
    **NORMAL_LABS,
    "bilirubin": lab(4.0),
    "albumin": lab(2.5, "g/dL"),
    "inr": lab(2.5, ""),
}  # 3 + 3 + 3 + 1 + 1 = 11 -> C
CP_B_LAB_ONLY = {
    **NORMAL_LABS,
    "albumin": lab(2.5, "g/dL"),
    "inr": lab(1.8, ""),
}  # 1 + 3 + 2 + 1 + 1 = 8 -> B with a normal bilirubin (chemotherapy albumin, warfarin INR)


def facts(**changes: Any) -> Facts:
    """A confirmed colorectal liver metastasis, right lobe, 1 lesion of 2 cm, Child-Pugh A,
    ECOG 0, age 60, FLR unknown — with ``changes`` applied.

    Rule set v2: with the FLR unknown this is rule 20a (CT volumetry before the right
    hepatectomy); :func:`resectable` gives the rule 21 case."""
    base = Facts(
        patient_id=PID,
        evaluated_at=AT,
        tumour_kind="secondary",
        liver_conditions=("Condition/liver",),
        confirmed=True,
        primary_site="colorectal",
        distribution="right",
        lesion_count=1,
        largest_cm=2.0,
        ecog=0,
        age=60,
        labs=dict(NORMAL_LABS),
        liver_kinds=frozenset({"secondary"}),
    )
    if changes.get("tumour_kind") == "hcc" and "primary_site" not in changes:
        changes["primary_site"] = None
    return replace(base, **changes)


def resectable(**changes: Any) -> Facts:
    """:func:`facts` with an FLR of 50 %: the plainest resectable case of rule set v2
    (rule 21, right hepatectomy recommended)."""
    return facts(**{"flr_percent": 50.0, **changes})


def hcc(**changes: Any) -> Facts:
    base: dict[str, Any] = {
        "tumour_kind": "hcc",
        "primary_site": None,
        "liver_kinds": frozenset({"hcc"}),
    }
    return facts(**{**base, **changes})


# --------------------------------------------------------------------------------------------
# FHIR resource dicts
# --------------------------------------------------------------------------------------------


def iso(day: datetime) -> str:
    return day.strftime("%Y-%m-%dT%H:%M:%SZ")


def site(code: str, *, superficial: bool = False, diffuse: bool = False) -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": [{"system": SCT, "code": code}]}
    qualifiers = []
    if superficial:
        qualifiers.append({"system": SCT, "code": "26283006"})
    if diffuse:
        qualifiers.append({"system": FINDINGS, "code": "diffuse"})
    if qualifiers:
        concept["extension"] = [
            {"url": QUALIFIER, "valueCodeableConcept": {"coding": [q]}} for q in qualifiers
        ]
    return concept


def condition(
    rid: str,
    system: str,
    code: str,
    *,
    patient: str = PID,
    sites: list[dict[str, Any]] | None = None,
    clinical: str | None = "active",
    verification: str | None = "confirmed",
    onset: str | None = None,
    severity: str | None = None,
    related: str | None = None,
) -> dict[str, Any]:
    r: dict[str, Any] = {
        "resourceType": "Condition",
        "id": rid,
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
    }
    if clinical:
        r["clinicalStatus"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": clinical,
                }
            ]
        }
    if verification:
        r["verificationStatus"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": verification,
                }
            ]
        }
    if sites:
        r["bodySite"] = sites
    if onset:
        r["onsetDateTime"] = onset
    if severity:
        r["severity"] = {"coding": [{"system": SCT, "code": severity}]}
    if related:
        r["extension"] = [{"url": RELATED, "valueReference": {"reference": f"Condition/{related}"}}]
    return r


def observation(
    rid: str,
    code: str,
    *,
    system: str = LOINC,
    patient: str = PID,
    when: datetime | str | None = RECENT,
    status: str | None = "final",
    **value: Any,
) -> dict[str, Any]:
    r: dict[str, Any] = {
        "resourceType": "Observation",
        "id": rid,
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
    }
    if status is not None:
        r["status"] = status
    if isinstance(when, datetime):
        r["effectiveDateTime"] = iso(when)
    elif isinstance(when, str):
        r["effectiveDateTime"] = when
    r.update(value)
    return r


def quantity(value: Any, code: str | None, system: str | None = UCUM) -> dict[str, Any]:
    q: dict[str, Any] = {"value": value}
    if code is not None:
        q["code"] = code
        q["unit"] = code
    if system is not None and code is not None:
        q["system"] = system
    return q


def lab_obs(rid: str, loinc: str, value: Any, unit: str | None, **kw: Any) -> dict[str, Any]:
    return observation(rid, loinc, valueQuantity=quantity(value, unit), **kw)


def size_obs(
    rid: str,
    value: float,
    unit: str = "cm",
    *,
    site_code: str | None = SEG["VI"],
    when: datetime = RECENT,
    component: bool = False,
    **kw: Any,
) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if component:
        extra["component"] = [
            {
                "code": {"coding": [{"system": LOINC, "code": "33728-7"}]},
                "valueQuantity": quantity(value, unit),
            }
        ]
    else:
        extra["valueQuantity"] = quantity(value, unit)
    if site_code is not None:
        extra["bodySite"] = site(site_code)
    return observation(rid, "21889-1", when=when, **extra, **kw)


def patient(pid: str = PID, birth: str | None = "1966-03-10") -> dict[str, Any]:
    r: dict[str, Any] = {"resourceType": "Patient", "id": pid}
    if birth is not None:
        r["birthDate"] = birth
    return r


def colorectal_right(pid: str = PID) -> list[dict[str, Any]]:
    """A resectable colorectal case (rule 21): sigmoid primary, one 2 cm metastasis in
    segment VI, normal liver panel, ECOG 0, FLR 50 %."""
    return [
        patient(pid),
        condition("prim", ICD, "C18.7", patient=pid, onset="2025-01-10"),
        condition("met", ICD, "C78.7", patient=pid, sites=[site(SEG["VI"])], onset="2026-04-01"),
        lab_obs("bili", "1975-2", 0.7, "mg/dL", patient=pid),
        lab_obs("alb", "1751-7", 4.2, "g/dL", patient=pid),
        lab_obs("inr", "6301-6", 1.0, "{INR}", patient=pid),
        observation("ecog", "89247-1", patient=pid, valueInteger=0),
        size_obs("size", 2.0, patient=pid),
        observation(
            "flr",
            "future-liver-remnant",
            system=FINDINGS,
            patient=pid,
            valueQuantity=quantity(50, "%"),
        ),
    ]
