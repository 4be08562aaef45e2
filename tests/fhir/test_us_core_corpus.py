"""Real-world-shaped data: the HL7 US Core example resources (4.0.0 and 9.0.0).

Every example is read by the engine without error (as the data of its own patient,
``Patient/example``, so the readers really run on it), and mixing all of them into a small
synthetic colorectal patient's resources does not change that patient's verdict — neither
when they belong to another patient nor when they share the patient's id.

The corpus is not part of the repository: ``TEST_US_CORE_DIR`` names it (see
``reference_data.py`` and the README); the tests skip with that reason when it is not set.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from reference_data import US_CORE_ENV, missing, us_core_directory, us_core_examples

from service.clinical.engine import assess
from service.clinical.model import Assessment

CORPUS = us_core_directory() or Path()
FILES = us_core_examples()
AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
RECENT = "2026-05-25T09:00:00Z"

pytestmark = pytest.mark.skipif(
    not FILES, reason=missing(US_CORE_ENV, "the HL7 US Core example resources")
)

SCT = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
FINDINGS = "https://liver-cds.org/fhir/CodeSystem/liver-findings"


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def synthetic_colorectal(pid: str) -> list[dict[str, Any]]:
    """Sigmoid cancer with two metastases in segments VI and VII: resectable (rule 21)."""
    subject = {"reference": f"Patient/{pid}"}

    def cond(rid: str, code: str, sites: tuple[str, ...] = ()) -> dict[str, Any]:
        r: dict[str, Any] = {
            "resourceType": "Condition",
            "id": rid,
            "subject": subject,
            "code": {"coding": [{"system": ICD, "code": code}]},
        }
        if sites:
            r["bodySite"] = [{"coding": [{"system": SCT, "code": s}]} for s in sites]
        return r

    def obs(rid: str, code: str, system: str = LOINC, **value: Any) -> dict[str, Any]:
        return {
            "resourceType": "Observation",
            "id": rid,
            "status": "final",
            "subject": subject,
            "code": {"coding": [{"system": system, "code": code}]},
            "effectiveDateTime": RECENT,
            **value,
        }

    def qty(value: float, unit: str) -> dict[str, Any]:
        return {"value": value, "unit": unit, "system": UCUM, "code": unit}

    return [
        {"resourceType": "Patient", "id": pid, "birthDate": "1961-02-03"},
        cond("lcds-primary", "C18.7"),
        cond("lcds-met", "C78.7", ("277960005", "277961009")),
        obs("lcds-bili", "1975-2", valueQuantity=qty(0.6, "mg/dL")),
        obs("lcds-alb", "1751-7", valueQuantity=qty(4.1, "g/dL")),
        obs("lcds-inr", "6301-6", valueQuantity=qty(1.0, "{INR}")),
        obs("lcds-ecog", "89247-1", valueInteger=1),
        obs("lcds-count", "lesion-count", FINDINGS, valueInteger=2),
        obs(
            "lcds-size",
            "21889-1",
            valueQuantity=qty(32, "mm"),
            bodySite={"coding": [{"system": SCT, "code": "277960005"}]},
        ),
        obs("lcds-flr", "future-liver-remnant", FINDINGS, valueQuantity=qty(55, "%")),
    ]


def patient_case(pid: str) -> list[dict[str, Any]]:
    return synthetic_colorectal(pid)


def outcome(a: Assessment) -> tuple[Any, ...]:
    return (a.verdict, a.rule, a.options, a.scores, a.missing)


def test_corpus_holds_both_versions() -> None:
    versions = {p.relative_to(CORPUS).parts[0] for p in FILES}
    assert {"v4.0.0", "v9.0.0"} <= versions


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CORPUS)) for p in FILES])
def test_every_example_is_read_without_error(path: Path) -> None:
    resource = load(path)
    a = assess([resource], patient_id="example", at=AT)
    assert a.verdict is None  # none of them is a liver malignancy
    for note in a.data_quality:
        assert isinstance(note.resource, str) and isinstance(note.problem, str)


@pytest.mark.parametrize("pid", ["lcds-synthetic", "example"])
def test_mixing_the_corpus_in_does_not_change_the_verdict(pid: str) -> None:
    corpus = [load(p) for p in FILES]
    alone = assess(patient_case(pid), patient_id=pid, at=AT)
    assert (alone.verdict, alone.rule) == ("resectable", "21")
    before = assess(patient_case(pid) + corpus, patient_id=pid, at=AT)
    after = assess(corpus + patient_case(pid), patient_id=pid, at=AT)
    assert outcome(before) == outcome(alone)
    assert (after.verdict, after.rule, after.options) == (alone.verdict, alone.rule, alone.options)
