"""Every fixture patient of ``fixtures/manifest.json`` gives the expected result.

The expectations were derived by hand from clinical-rules.md by the fixtures' author; list
values are sets (the manifest's schema says order is not significant). Skips with a reason
when the manifest is absent.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from service.clinical.engine import assess
from service.clinical.model import DataQualityNote
from service.fhir.read import flatten

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
MANIFEST = FIXTURES / "manifest.json"


def _manifest() -> dict[str, Any]:
    if not MANIFEST.exists():
        return {"patients": []}
    data: dict[str, Any] = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return data


ENTRIES = _manifest()["patients"]
pytestmark = pytest.mark.skipif(not ENTRIES, reason=f"no fixture manifest at {MANIFEST}")


def _run(entry: dict[str, Any]) -> Any:
    manifest = _manifest()
    request = json.loads((FIXTURES / entry["file"]).read_text(encoding="utf-8"))
    notes: list[DataQualityNote] = []
    resources: list[Any] = []
    for value in (request.get("prefetch") or {}).values():
        resources += flatten(value, notes)
    at = datetime.fromisoformat(manifest["evaluated_at"].replace("Z", "+00:00"))
    return assess(resources, patient_id=request["context"]["patientId"], at=at, notes=notes)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["patient_id"] for e in ENTRIES])
def test_fixture_patient(entry: dict[str, Any]) -> None:
    a = _run(entry)
    expected = entry["expected"]
    assert (a.verdict, a.rule) == (expected["verdict"], expected["rule"])
    assert set(a.recommended) == set(expected["recommended"])
    assert {o.code for o in a.options if not o.recommended} == set(
        expected["offered_not_recommended"]
    )
    assert {m.fact for m in a.missing if m.essential} == set(expected["missing_essential"])
    cp = a.scores.child_pugh
    assert (cp.category if cp else None) == expected["child_pugh_class"]
    assert (cp.value if cp else None) == expected["child_pugh_points"]
