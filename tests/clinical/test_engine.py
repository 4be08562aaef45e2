"""``engine.assess``: the contract the HTTP layer relies on.

Any resource type mixed in, other patients ignored, never raises on bad data, selection by
type and code before any decoding, deterministic, strict mode adds schema problems.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from service.clinical.engine import assess
from service.clinical.model import DataQualityNote

from .builders import AT, ICD, PID, SEG, colorectal_right, condition, lab_obs, site


def run(resources: list[Any], **kw: Any) -> Any:
    return assess(resources, patient_id=PID, at=AT, **kw)


def test_resectable_colorectal_case() -> None:
    a = run(colorectal_right())
    assert (a.verdict, a.rule) == ("resectable", "21")
    # one metastasis in segment VI: single segment -> local resection R, hemihepatectomy o
    assert a.recommended == ("resection-local", "mdt-review")
    assert "resection-right-hepatectomy" in a.offered
    assert a.scores.child_pugh is not None and a.scores.child_pugh.category == "A"
    assert a.facts.liver_conditions == ("Condition/met",)


def test_no_resources_is_rule_0() -> None:
    a = run([])
    assert a.verdict is None and a.rule == "0" and not a.has_cards


JUNK: list[Any] = [
    None,
    1,
    "Observation",
    [],
    {},
    {"resourceType": 5},
    {"resourceType": "Observation"},
    {"resourceType": "Observation", "code": "777-3"},
    {"resourceType": "Observation", "code": {"coding": "777-3"}},
    {"resourceType": "Observation", "code": {"coding": [None, 1, {"code": ["777-3"]}]}},
    {
        "resourceType": "Observation",
        "code": {"coding": [{"system": "http://loinc.org", "code": "777-3"}]},
    },
    {
        "resourceType": "Observation",
        "code": {"coding": [{"system": "http://loinc.org", "code": "1975-2"}]},
        "subject": {"reference": f"Patient/{PID}"},
        "status": ["final"],
    },
    {
        "resourceType": "Observation",
        "code": {"coding": [{"system": "http://loinc.org", "code": "1975-2"}]},
        "subject": {"reference": f"Patient/{PID}"},
        "status": "final",
        "effectiveDateTime": 20260501,
        "valueQuantity": {"value": "1.0"},
    },
    {
        "resourceType": "Observation",
        "code": {"coding": [{"system": "http://loinc.org", "code": "21889-1"}]},
        "subject": {"reference": f"Patient/{PID}"},
        "status": "final",
        "effectiveDateTime": "2026-05-01",
        "component": "x",
        "bodySite": "liver",
    },
    {
        "resourceType": "Condition",
        "code": {"coding": [{"system": ICD, "code": "C78.7"}]},
        "subject": f"Patient/{PID}",
    },
    {
        "resourceType": "Condition",
        "code": {"coding": [{"system": ICD, "code": "C78.7"}]},
        "subject": {"reference": f"Patient/{PID}"},
        "clinicalStatus": "active",
    },
    {"resourceType": "Condition", "code": {"coding": [{"system": ICD, "code": 787}]}},
    {
        "resourceType": "Condition",
        "id": "odd",
        "code": {"coding": [{"system": ICD, "code": "C78.7"}]},
        "subject": {"reference": f"Patient/{PID}"},
        "bodySite": {"coding": []},
        "severity": [],
        "onsetDateTime": "not a date",
        "extension": "x",
    },
    {"resourceType": "Patient", "id": PID, "birthDate": "1960-13-45"},
    {
        "resourceType": "Bundle",
        "entry": [None, {"resource": 3}, {"search": {"mode": "outcome"}, "resource": {}}],
    },
    {"resourceType": "Bundle", "entry": "x"},
    {"resourceType": "OperationOutcome", "issue": []},
]


def test_never_raises_on_junk_and_names_skipped_resources() -> None:
    a = run(JUNK)
    assert isinstance(a.data_quality, tuple)
    assert all(isinstance(n, DataQualityNote) for n in a.data_quality)
    a = run(colorectal_right() + JUNK)
    assert a.verdict is not None
    assert any(n.resource == "Condition/odd" for n in a.data_quality)


def test_junk_does_not_change_the_verdict_except_data_it_adds() -> None:
    base = run(colorectal_right())
    noisy = run(JUNK + colorectal_right())
    assert (noisy.verdict, noisy.rule, noisy.options) == (base.verdict, base.rule, base.options)


def test_selection_by_code_before_decoding_unrelated_observations() -> None:
    """An unrelated Observation is never read, so even a malformed one adds no note."""
    unrelated = {
        "resourceType": "Observation",
        "id": "hr",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{PID}"},
        "status": 42,
        "effectiveDateTime": "garbage",
        "valueQuantity": {"value": "fast"},
    }
    a = run([*colorectal_right(), unrelated])
    assert not any(n.resource == "Observation/hr" for n in a.data_quality)
    many = run([*colorectal_right(), *[dict(unrelated, id=f"hr{i}") for i in range(10_000)]])
    assert (many.verdict, many.options) == (a.verdict, a.options)


def test_other_patients_data_is_ignored() -> None:
    theirs = [r for r in colorectal_right("someone-else")]
    for r in theirs:
        r["id"] = "other-" + str(r.get("id"))
    hcc = condition("hcc", ICD, "C22.0", patient="someone-else", sites=[site(SEG["II"])])
    bad_lab = lab_obs("bili", "1975-2", 9.0, "mg/dL", patient="someone-else")
    a = run([*theirs, hcc, bad_lab, *colorectal_right()])
    b = run(colorectal_right())
    assert (a.verdict, a.rule, a.options, a.scores) == (b.verdict, b.rule, b.options, b.scores)
    assert any("another patient" in n.problem for n in a.data_quality)


def test_notes_from_the_caller_are_kept() -> None:
    note = DataQualityNote("Bundle entry 3", "no resource")
    assert note in run(colorectal_right(), notes=[note]).data_quality


def test_naive_evaluation_time_is_utc() -> None:
    a = assess(colorectal_right(), patient_id=PID, at=datetime(2026, 6, 1, 12, 0))
    assert a.facts.evaluated_at == AT


def test_deterministic_and_input_not_mutated() -> None:
    resources = colorectal_right() + JUNK
    before = copy.deepcopy(resources)
    assert run(resources) == run(resources)
    assert resources == before


def test_strict_mode_lists_schema_problems() -> None:
    resources = colorectal_right()
    resources[3]["colour"] = "red"  # not a FHIR element: lenient reading ignores it
    resources[4]["effectiveDateTime"] = "2026-05-20T08:00:00"  # dateTime without timezone
    lenient = run(resources)
    strict = run(resources, strict=True)
    assert lenient.data_quality == ()
    problems = {(n.resource, n.problem.split(":")[0]) for n in strict.data_quality}
    assert ("Observation/bili", "colour") in problems
    assert ("Observation/alb", "effectiveDateTime") in problems
    assert all("red" not in n.problem for n in strict.data_quality)


def test_strict_mode_on_valid_data_adds_nothing() -> None:
    assert run(colorectal_right(), strict=True).data_quality == ()
