"""Lenient typed reading (service/fhir/read.py): dates, prefetch shapes, selection."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.clinical.facts import completed_years
from service.fhir.read import (
    DateError,
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
    # The age itself is a fact (service/clinical/facts): counted from the earliest day a
    # partial birth date can mean, which gives the oldest possible age.
    with pytest.raises(DateError):
        parse_birth_date("1960-01-01T00:00:00Z")
    at = datetime(2026, 6, 1, tzinfo=UTC)

    def age(birth: str) -> int:
        return completed_years(parse_birth_date(birth).at.date(), at)

    assert age("1960-06-01") == 66
    assert age("1960-06-02") == 65
    assert age("1960-07") == 65
    assert age("1960") == 66  # earliest possible birth: oldest age


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


# --- rule set v2: what select hands over ---------------------------------------------------

CPT = "http://www.ama-assn.org/go/cpt"
PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
SNOMED = "http://snomed.info/sct"


def proc(rid: str, system: str, code: str, patient: str = PID, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": rid,
        "status": "completed",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        **extra,
    }


def test_select_keeps_this_patients_completed_liver_resections_as_typed_records() -> None:
    sel = select(
        [
            proc("r", CPT, "47130", performedDateTime="2025-10-01T09:00:00Z"),
            proc("l", PCS, "0FT20ZZ", performedPeriod={"start": "2024-01-01", "end": "2024-01-02"}),
            proc("w", CPT, "47120"),
            proc("biopsy", PCS, "0FB03ZX"),
            proc("planned", CPT, "47130", status="preparation"),
            proc("theirs", CPT, "47130", patient="other"),
            proc("chole", CPT, "47562"),
        ],
        PID,
    )
    got = {(p.ref, p.extent, p.code) for p in sel.procedures}
    assert got == {
        ("Procedure/r", "hemihepatectomy", "CPT 47130"),
        ("Procedure/l", "hemihepatectomy", "ICD-10-PCS 0FT20ZZ"),
        ("Procedure/w", "other", "CPT 47120"),
    }
    dates = {p.ref: p.performed for p in sel.procedures}
    assert dates["Procedure/r"] == datetime(2025, 10, 1, 9, tzinfo=UTC)
    assert dates["Procedure/l"] == datetime(2024, 1, 2, tzinfo=UTC)  # performedPeriod.end
    assert dates["Procedure/w"] is None
    assert sel.other_patient == 1 and sel.procedures_checked


def test_a_resection_with_an_unreadable_date_still_counts_and_is_noted() -> None:
    sel = select([proc("r", CPT, "47125", performedDateTime="last spring")], PID)
    assert [p.performed for p in sel.procedures] == [None]
    assert [n.resource for n in sel.notes] == ["Procedure/r"]


def test_select_hands_over_procedures_checked_as_given() -> None:
    assert not select([], PID, procedures_checked=False).procedures_checked


def test_bilirubin_reference_range_high_is_kept_only_in_the_values_unit() -> None:
    def bili(unit: str, high: dict[str, Any] | None) -> dict[str, Any]:
        extra: dict[str, Any] = {"valueQuantity": {"value": 22, "code": unit}}
        if high is not None:
            extra["referenceRange"] = [{"low": {"value": 3, "code": unit}, "high": high}]
        return obs("b", "1975-2", **extra)

    def high_of(resource: dict[str, Any]) -> float | None:
        (o,) = select([resource], PID).observations
        return o.reference_high

    assert high_of(bili("umol/L", {"value": 21, "code": "umol/L"})) == 21.0
    assert high_of(bili("umol/L", {"value": 21, "code": "µmol/L"})) == 21.0  # same UCUM unit
    assert high_of(bili("umol/L", {"value": 1.2, "code": "mg/dL"})) is None  # another unit
    assert high_of(bili("umol/L", {"value": 21, "unit": "umol/L"})) is None  # no UCUM code
    assert high_of(bili("umol/L", {"value": "21", "code": "umol/L"})) is None
    assert high_of(bili("umol/L", None)) is None
    (o,) = select([bili("umol/L", None)], PID).observations
    assert o.quantity is not None
    assert (o.quantity.reported, o.quantity.reported_code) == (22.0, "umol/L")


def test_patient_deceased_boolean_and_date() -> None:
    alive = select([{"resourceType": "Patient", "id": PID}], PID).patient
    assert alive is not None and not alive.deceased and alive.deceased_at is None
    dead = select([{"resourceType": "Patient", "id": PID, "deceasedBoolean": True}], PID).patient
    assert dead is not None and dead.deceased
    dated = select(
        [{"resourceType": "Patient", "id": PID, "deceasedDateTime": "2026-01-05"}], PID
    ).patient
    assert dated is not None and dated.deceased_at == datetime(2026, 1, 5, tzinfo=UTC)
    garbled = select([{"resourceType": "Patient", "id": PID, "deceasedDateTime": "yes"}], PID)
    assert garbled.patient is not None and garbled.patient.deceased  # died: date unreadable


def test_a_related_primary_link_to_an_unread_condition_is_resolved_by_select() -> None:
    def cond(rid: str, code: str, patient: str = PID, **extra: Any) -> dict[str, Any]:
        return {
            "resourceType": "Condition",
            "id": rid,
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code}]},
            "subject": {"reference": f"Patient/{patient}"},
            **extra,
        }

    link = {
        "url": "http://hl7.org/fhir/StructureDefinition/condition-related",
        "valueReference": {"reference": "Condition/melanoma"},
    }
    met = cond("met", "C78.7", extension=[link])
    assert select([met, cond("melanoma", "C43.9")], PID).linked_unclassified == {"melanoma"}
    refuted = cond(
        "melanoma",
        "C43.9",
        verificationStatus={"coding": [{"code": "refuted"}]},
    )
    assert select([met, refuted], PID).linked_unclassified == frozenset()
    theirs = cond("melanoma", "C43.9", patient="other")
    assert select([met, theirs], PID).linked_unclassified == frozenset()


def test_condition_codes_and_recorded_date_are_handed_over() -> None:
    sel = select(
        [
            {
                "resourceType": "Condition",
                "id": "j",
                "code": {
                    "coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "R17"}]
                },
                "subject": {"reference": f"Patient/{PID}"},
                "recordedDate": "2026-04-02",
            }
        ],
        PID,
    )
    (c,) = sel.conditions
    assert c.codes == ("R17",) and c.recorded == datetime(2026, 4, 2, tzinfo=UTC)


def test_body_sites_elsewhere_than_the_liver_are_classified() -> None:
    def met(site_code: str) -> dict[str, Any]:
        return {
            "resourceType": "Condition",
            "id": "m",
            "code": {"coding": [{"system": SNOMED, "code": "128462008"}]},
            "subject": {"reference": f"Patient/{PID}"},
            "bodySite": [{"coding": [{"system": SNOMED, "code": site_code}]}],
        }

    def elsewhere(site_code: str) -> str | None:
        (c,) = select([met(site_code)], PID).conditions
        return c.sites[0].elsewhere

    assert elsewhere("39607008") == "lung"
    assert elsewhere("59441001") == "lymph-node"
    assert elsewhere("12738006") == "other"  # any other coded site
    assert elsewhere("277960005") is None  # segment VI: the liver


# --- never raises on bad data (v2 fields) ------------------------------------------------------

_JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.sampled_from(["completed", "2025-01-01", "47130", CPT, PCS, "0FB03ZX", "umol/L"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(value, _JUNK)


_PROCEDURE = st.fixed_dictionaries(
    {"resourceType": st.just("Procedure")},
    optional={
        "id": _maybe(st.just("p")),
        "status": _maybe(st.just("completed")),
        "code": _maybe(
            st.fixed_dictionaries(
                {
                    "coding": st.lists(
                        st.fixed_dictionaries(
                            {"system": _maybe(st.just(CPT)), "code": _maybe(st.just("47130"))}
                        ),
                        max_size=2,
                    )
                },
                optional={"text": _maybe(st.just("right hepatectomy"))},
            )
        ),
        "subject": _maybe(st.just({"reference": f"Patient/{PID}"})),
        "performedDateTime": _JUNK,
        "performedPeriod": _JUNK,
        "bodySite": _maybe(st.just([{"coding": [{"system": SNOMED, "code": "48521005"}]}])),
    },
)
_PATIENT = st.fixed_dictionaries(
    {"resourceType": st.just("Patient"), "id": st.just(PID)},
    optional={"deceasedBoolean": _JUNK, "deceasedDateTime": _JUNK, "birthDate": _JUNK},
)
_BILIRUBIN = st.builds(
    lambda high: obs(
        "b",
        "1975-2",
        valueQuantity={"value": 30, "code": "umol/L"},
        referenceRange=high,
    ),
    _JUNK,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_PROCEDURE, _PATIENT, _BILIRUBIN), max_size=4))
def test_select_never_raises_on_malformed_v2_fields(resources: list[dict[str, Any]]) -> None:
    sel = select(resources, PID)
    for p in sel.procedures:
        assert p.extent in ("hemihepatectomy", "other")
    for o in sel.observations:
        assert o.reference_high is None or o.reference_high > 0


def test_parse_when_answers_the_same_for_a_repeated_string_and_refuses_every_time() -> None:
    # parse_when caches per string: a repeated timestamp must read the same, and a bad
    # one must be refused each time, not only the first.
    first = parse_when("2026-05-25T09:30:00+02:00")
    assert parse_when("2026-05-25T09:30:00+02:00") == first
    assert first.at.isoformat() == "2026-05-25T07:30:00+00:00"
    for _ in range(2):
        with pytest.raises(DateError):
            parse_when("2026-13-40")
    with pytest.raises(DateError):
        parse_when(20260525)
