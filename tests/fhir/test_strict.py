"""Strict R4 validation (fhir.resources R4B): every schema problem, named without values."""

from __future__ import annotations

from typing import Any

from service.fhir.strict import validate_resource, validate_resources


def observation(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "1975-2"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-05-20T08:00:00Z",
        "valueQuantity": {
            "value": 0.7,
            "unit": "mg/dL",
            "system": "http://unitsofmeasure.org",
            "code": "mg/dL",
        },
        **extra,
    }


def test_valid_resource_has_no_problems() -> None:
    assert validate_resource(observation()) == []


def test_every_problem_is_listed_with_its_path() -> None:
    notes = validate_resource(
        observation(
            effectiveDateTime="2026-05-20T08:00:00",  # time without timezone: not FHIR
            valueQuantity={"value": "seven", "code": "mg/dL"},
            nickname="Bobby",
        )
    )
    paths = {n.problem.split(":")[0] for n in notes}
    assert {"effectiveDateTime", "valueQuantity.value", "nickname"} <= paths
    assert all(n.resource == "Observation/o1" for n in notes)
    assert all("seven" not in n.problem and "Bobby" not in n.problem for n in notes)


def test_not_a_resource() -> None:
    assert validate_resource(["x"], 3)[0].resource == "item 3"
    assert "resourceType" in validate_resource({"id": "x"})[0].problem
    assert "not a FHIR" in validate_resource({"resourceType": "Spaceship"})[0].problem


def test_bundle_entries_are_validated_with_their_position() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": observation()}, {"resource": observation(status=3)}],
    }
    notes = validate_resource(bundle)
    assert notes and all(n.problem.startswith("entry[1].resource") for n in notes)


def test_validate_resources_keeps_input_order() -> None:
    notes = validate_resources([observation(bad=1), observation(), {"resourceType": "Nope"}])
    assert [n.resource for n in notes] == ["Observation/o1", "Nope (no id, item 2)"]
