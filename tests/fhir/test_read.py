"""Lenient typed reading (service/fhir/read.py): dates, prefetch shapes, selection."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from service.fhir.read import (
    DateError,
    age_at,
    parse_birth_date,
    parse_when,
    resource_ref,
    select,
)

PID = "p1"
LOINC = "http://loinc.org"


def obs(rid: str, code: str, patient: str = PID, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": "2026-05-20T08:00:00Z",
        **extra,
    }


# --- dates --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "assumed", "precision"),
    [
        ("2026", datetime(2026, 1, 1, tzinfo=UTC), False, "year"),
        ("2026-05", datetime(2026, 5, 1, tzinfo=UTC), False, "month"),
        ("2026-05-20", datetime(2026, 5, 20, tzinfo=UTC), False, "day"),
        ("2026-05-20T08:30:00Z", datetime(2026, 5, 20, 8, 30, tzinfo=UTC), False, "second"),
        ("2026-05-20T08:30:00+02:00", datetime(2026, 5, 20, 6, 30, tzinfo=UTC), False, "second"),
        (
            "2026-05-20T08:30:00.123-05:00",
            datetime(2026, 5, 20, 13, 30, 0, 123000, tzinfo=UTC),
            False,
            "second",
        ),
        ("2026-05-20T08:30:00", datetime(2026, 5, 20, 8, 30, tzinfo=UTC), True, "second"),
    ],
)
def test_parse_when(text: str, expected: datetime, assumed: bool, precision: str) -> None:
    when = parse_when(text)
    assert (when.at, when.timezone_assumed, when.precision) == (expected, assumed, precision)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2026-13-01",
        "2026-02-30",
        "20260520",
        "2026-05-20 08:30",
        "2026-05-20T25:00:00Z",
        20260520,
        None,
        ["2026"],
    ],
)
def test_parse_when_rejects(text: Any) -> None:
    with pytest.raises(DateError):
        parse_when(text)


def test_birth_date_is_a_date_and_age_counts_completed_years() -> None:
    with pytest.raises(DateError):
        parse_birth_date("1960-01-01T00:00:00Z")
    at = datetime(2026, 6, 1, tzinfo=UTC)
    assert age_at(parse_birth_date("1960-06-01"), at) == 66
    assert age_at(parse_birth_date("1960-06-02"), at) == 65
    assert age_at(parse_birth_date("1960-07"), at) == 65
    assert age_at(parse_birth_date("1960"), at) == 66  # earliest possible birth: oldest age


# --- prefetch shapes -----------------------------------------------------------------------------


def test_prefetch_values_are_unpacked_by_the_bundle_rules_not_by_select() -> None:
    # select() reads resources; Bundles are unpacked before it (service/fhir/bundle.py is
    # their one owner). A Bundle handed to select is a caller's bug: noted, not read.
    single = obs("a", "1975-2", valueQuantity={"value": 1, "code": "mg/dL"})
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": single}]}
    sel = select([bundle], PID)
    assert sel.observations == []
    assert [(n.resource, n.problem) for n in sel.notes] == [("item 0", "a Bundle; not unpacked")]


# --- selection ------------------------------------------------------------------------------------


def test_select_keeps_only_this_patients_relevant_resources() -> None:
    resources = [
        {"resourceType": "Patient", "id": PID, "birthDate": "1960-01-01"},
        {"resourceType": "Patient", "id": "other"},
        obs(
            "bili",
            "1975-2",
            valueQuantity={"value": 1, "code": "mg/dL", "system": "http://unitsofmeasure.org"},
        ),
        obs("hr", "8867-4", valueQuantity={"value": 70}),
        obs("theirs", "1975-2", patient="other", valueQuantity={"value": 1, "code": "mg/dL"}),
        {"resourceType": "MedicationRequest", "id": "m"},
    ]
    sel = select(resources, PID)
    assert sel.patient is not None and sel.patient.ref == f"Patient/{PID}"
    assert [o.ref for o in sel.observations] == ["Observation/bili"]
    assert sel.other_patient == 2  # the other Patient and the other patient's Observation


def test_select_reads_values_in_canonical_units() -> None:
    sel = select([obs("b", "1975-2", valueQuantity={"value": 34.2, "code": "umol/L"})], PID)
    q = sel.observations[0].quantity
    assert q is not None and (q.value, q.unit) == (2.0, "mg/dL")


def test_select_notes_name_resource_and_problem_never_values() -> None:
    sel = select(
        [
            obs("b", "1975-2", valueQuantity={"value": "Mrs Smith", "code": "mg/dL"}),
            obs(
                "c",
                "1975-2",
                effectiveDateTime="Mrs Smith's birthday",
                valueQuantity={"value": 1, "code": "mg/dL"},
            ),
            {**obs("d", "1975-2"), "subject": None},
        ],
        PID,
    )
    assert [n.resource for n in sel.notes] == ["Observation/b", "Observation/c", "Observation/d"]
    assert all("Smith" not in n.problem for n in sel.notes)


def test_resource_ref_never_echoes_odd_ids() -> None:
    assert resource_ref({"resourceType": "Condition", "id": "abc-1.2"}) == "Condition/abc-1.2"
    assert resource_ref({"resourceType": "Condition", "id": "<b>x</b>"}) == "Condition (no id)"
    assert resource_ref({"resourceType": "Condition"}, 4) == "Condition (no id, item 4)"
    assert resource_ref({"resourceType": "<script>"}, 2) == "item 2"


def test_an_inr_in_seconds_without_unit_code_is_skipped_with_a_note() -> None:
    # A prothrombin time sent on the INR code with only a text unit must not become INR 12.5.
    sel = select([obs("pt", "6301-6", valueQuantity={"value": 12.5, "unit": "s"})], PID)
    assert sel.observations == []
    assert [n.resource for n in sel.notes] == ["Observation/pt"]
    assert "not a unitless inr" in sel.notes[0].problem
