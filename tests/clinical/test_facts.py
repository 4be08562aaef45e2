"""Fact extraction as fhir-mapping.md describes it, from small synthetic resources."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from service.clinical.facts import extract_facts, karnofsky_to_ecog
from service.clinical.model import Facts

from .builders import (
    AT,
    FINDINGS,
    ICD,
    LEFT_LOBE,
    LIVER,
    LOINC,
    LUNG_SITE,
    PID,
    RECENT,
    RIGHT_LOBE,
    SCT,
    SEG,
    colorectal_right,
    condition,
    lab_obs,
    observation,
    patient,
    quantity,
    site,
    size_obs,
)


def read(*resources: dict[str, Any]) -> Facts:
    return extract_facts(list(resources), patient_id=PID, at=AT)


def liver_met(*sites: dict[str, Any], rid: str = "met", **kw: Any) -> dict[str, Any]:
    return condition(rid, ICD, "C78.7", sites=list(sites), **kw)


# --- §1 which Conditions count; §2 tumour kind ------------------------------------------------


def test_tumour_kind_from_snomed_and_icd10_with_or_without_dot() -> None:
    assert read(condition("h", SCT, "109841003")).tumour_kind == "hcc"
    assert read(condition("h", ICD, "C22.0")).tumour_kind == "hcc"
    assert read(condition("h", ICD, "C220")).tumour_kind == "hcc"
    assert read(condition("s", SCT, "94381002")).tumour_kind == "secondary"
    assert read(condition("s", ICD, "C78.7")).tumour_kind == "secondary"
    assert read(condition("o", ICD, "C22.1")).tumour_kind == "other-liver-primary"


def test_secondary_by_body_site_liver_vs_elsewhere() -> None:
    on_liver = read(condition("s", SCT, "128462008", sites=[site(SEG["VI"])]))
    assert on_liver.tumour_kind == "secondary" and not on_liver.extrahepatic_disease
    elsewhere = read(condition("s", SCT, "128462008", sites=[site(LUNG_SITE)]))
    assert elsewhere.tumour_kind is None and elsewhere.extrahepatic_disease
    c79 = read(condition("s", ICD, "C79.9", sites=[site(LIVER)]))
    assert c79.tumour_kind == "secondary"
    no_site = read(condition("s", ICD, "C79.9"))
    assert no_site.tumour_kind is None and not no_site.extrahepatic_disease
    assert any("without a coded body site" in n.problem for n in no_site.data_quality)


def test_c7b02_is_a_neuroendocrine_liver_secondary() -> None:
    f = read(condition("s", ICD, "C7B.02", sites=[site(SEG["VIII"])]))
    assert (f.tumour_kind, f.primary_site) == ("secondary", "neuroendocrine")


def test_conditions_refuted_entered_in_error_or_resolved_do_not_count() -> None:
    for kw in (
        {"verification": "refuted"},
        {"verification": "entered-in-error"},
        {"clinical": "resolved"},
        {"clinical": "inactive"},
        {"clinical": "remission"},
    ):
        assert read(liver_met(site(SEG["VI"]), **kw)).tumour_kind is None
    for clinical in (None, "active", "recurrence", "relapse"):
        assert read(liver_met(site(SEG["VI"]), clinical=clinical)).tumour_kind == "secondary"


def test_confirmed_only_when_verification_absent_or_confirmed() -> None:
    assert read(liver_met(verification=None)).confirmed
    for status in ("unconfirmed", "provisional", "differential"):
        assert not read(liver_met(verification=status)).confirmed


def test_hcc_and_secondary_both_found_hcc_applies() -> None:
    f = read(condition("h", ICD, "C22.0"), liver_met())
    assert f.tumour_kind == "hcc" and f.hcc_and_secondary_found


# --- §3 body sites -------------------------------------------------------------------------


def test_distribution_right_left_bilobar_unknown() -> None:
    assert read(liver_met(site(SEG["VI"]), site(SEG["VII"]))).distribution == "right"
    assert read(liver_met(site(SEG["II"]), site(SEG["IVb"]))).distribution == "left"
    assert read(liver_met(site(SEG["II"]), site(SEG["VI"]))).distribution == "bilobar"
    assert read(liver_met(site(LIVER))).distribution == "unknown"
    assert read(liver_met()).distribution == "unknown"
    assert read(liver_met(site(RIGHT_LOBE))).distribution == "right"
    assert read(liver_met(site(LEFT_LOBE))).distribution == "left"


def test_caudate_alone_is_caudate_else_it_counts_as_both_sides_v2() -> None:
    # v2 (fhir-mapping §3): segment I is `caudate` when it is the only sided site (v1: bilobar).
    f = read(liver_met(site(SEG["I"])))
    assert f.distribution == "caudate" and f.single_segment and f.segment == "I"
    assert f.single_section and f.section == "caudate"
    with_right = read(liver_met(site(SEG["I"]), site(SEG["VI"])))
    assert with_right.distribution == "bilobar" and not with_right.single_section


def test_diffuse_qualifier_wins() -> None:
    f = read(liver_met(site(SEG["VI"]), site(LIVER, diffuse=True)))
    assert f.distribution == "diffuse"


def test_single_segment_iva_ivb_count_as_iv_and_lobe_is_not_a_segment() -> None:
    f = read(liver_met(site(SEG["IVa"]), site(SEG["IVb"])))
    assert f.single_segment and f.segment == "IV"
    assert not read(liver_met(site(SEG["VI"]), site(RIGHT_LOBE))).single_segment
    assert not read(liver_met(site(SEG["VI"]), site(SEG["VII"]))).single_segment


def test_surface_needs_every_sided_site_superficial() -> None:
    both = read(liver_met(site(SEG["II"], superficial=True), site(SEG["III"], superficial=True)))
    assert both.surface
    one = read(liver_met(site(SEG["II"], superficial=True), site(SEG["III"])))
    assert not one.surface


def test_sites_of_size_observations_on_the_liver_count() -> None:
    f = read(liver_met(site(SEG["VI"])), size_obs("s1", 2.0, site_code=SEG["III"]))
    assert f.distribution == "bilobar"


def test_wrong_site_codes_seen_in_examples_are_not_liver_sites() -> None:
    f = read(liver_met(site("72481006")))
    assert f.distribution == "unknown"


# --- §4 primary site and other conditions ---------------------------------------------------


def test_primary_site_from_primary_conditions() -> None:
    assert read(liver_met(), condition("p", ICD, "C18.7")).primary_site == "colorectal"
    assert read(liver_met(), condition("p", ICD, "C20")).primary_site == "colorectal"
    assert read(liver_met(), condition("p", SCT, "254837009")).primary_site == "breast"
    assert read(liver_met(), condition("p", ICD, "C25.0")).primary_site == "pancreas"
    assert read(liver_met(), condition("p", ICD, "C25.4")).primary_site == "neuroendocrine"
    assert read(liver_met(), condition("p", ICD, "C7A.012")).primary_site == "neuroendocrine"
    assert read(liver_met(), condition("p", ICD, "C34.1")).primary_site == "lung"
    assert read(liver_met(), condition("p", ICD, "C16.0")).primary_site == "stomach"
    assert read(liver_met()).primary_site == "unknown"


def test_two_primary_sites_give_unknown() -> None:
    f = read(liver_met(), condition("p1", ICD, "C50.9"), condition("p2", ICD, "C34.1"))
    assert f.primary_site == "unknown"


def test_mcode_related_primary_wins() -> None:
    f = read(
        liver_met(related="colon"),
        condition("colon", ICD, "C18.2", clinical="remission"),
        condition("breast", ICD, "C50.9"),
    )
    assert f.primary_site == "colorectal" and f.primary_condition == "Condition/colon"


def test_related_primary_pointing_at_an_unlisted_cancer_is_other() -> None:
    f = read(
        liver_met(related="prostate"),
        condition("prostate", ICD, "C61"),
        condition("colon", ICD, "C18.2"),
    )
    assert f.primary_site == "other"


def test_related_primary_missing_falls_back_with_a_note() -> None:
    f = read(liver_met(related="nowhere"), condition("colon", ICD, "C18.2"))
    assert f.primary_site == "colorectal"
    assert any("related primary" in n.problem for n in f.data_quality)


def test_liver_disease_conditions() -> None:
    f = read(
        liver_met(),
        condition("c", ICD, "K74.60"),
        condition("ph", SCT, "34742003"),
        condition("pvt", ICD, "I81"),
        condition("ehd", ICD, "C78.01"),
    )
    assert f.cirrhosis and f.portal_hypertension == "present"
    assert f.macrovascular_invasion and f.macrovascular_presumed and f.extrahepatic_disease


def test_varices_are_portal_hypertension() -> None:
    assert read(liver_met(), condition("v", ICD, "I85.00")).portal_hypertension == "present"


def test_portal_hypertension_suspected_from_platelets_with_cirrhosis() -> None:
    low = read(liver_met(), condition("c", SCT, "19943007"), lab_obs("plt", "777-3", 85, "10*3/uL"))
    assert low.portal_hypertension == "suspected"
    # v2: platelets 100-149 in cirrhosis no longer read as absent but `not-excluded`.
    boundary = read(
        liver_met(), condition("c", SCT, "19943007"), lab_obs("plt", "777-3", 100, "10*9/L")
    )
    assert boundary.portal_hypertension == "not-excluded"
    assert boundary.portal_hypertension_basis == "platelets"
    no_cirrhosis = read(liver_met(), lab_obs("plt", "777-3", 85, "10*3/uL"))
    assert no_cirrhosis.portal_hypertension == "absent"
    assert no_cirrhosis.portal_hypertension_basis == "no-cirrhosis"
    per_ul = read(
        liver_met(), condition("c", SCT, "19943007"), lab_obs("plt", "777-3", 85000, "/uL")
    )
    assert per_ul.labs["platelets"].value == 85 and per_ul.portal_hypertension == "suspected"


def test_ascites_and_encephalopathy_severity() -> None:
    absent = read(liver_met())
    assert absent.ascites_points is None and not absent.ascites_assumed
    unknown = read(liver_met(), condition("a", ICD, "R18.8"))
    assert (unknown.ascites_points, unknown.ascites_assumed) == (2, True)
    severe = read(liver_met(), condition("a", SCT, "389026000", severity="24484000"))
    assert (severe.ascites_points, severe.ascites_assumed) == (3, False)
    mild = read(liver_met(), condition("e", ICD, "K76.82", severity="255604002"))
    assert (mild.encephalopathy_points, mild.encephalopathy_assumed) == (2, False)


def test_symptoms() -> None:
    f = read(
        liver_met(),
        condition("j", SCT, "18165001"),
        condition("n", ICD, "R11.2"),
        condition("w", ICD, "R63.4"),
        condition("p", ICD, "R10.11"),
        condition("b", ICD, "R14.0"),
        condition("a", ICD, "R63.0"),
    )
    assert f.symptoms == {
        "jaundice",
        "nausea",
        "vomiting",
        "weight-loss",
        "abdominal-pain",
        "bloating",
        "loss-of-appetite",
    }


# --- §5 observations ----------------------------------------------------------------------------


def test_latest_observation_wins_and_stale_labs_are_missing() -> None:
    old = AT - timedelta(days=91)
    f = read(
        liver_met(),
        lab_obs("b-old", "1975-2", 4.0, "mg/dL", when=AT - timedelta(days=30)),
        lab_obs("b-new", "1975-2", 0.8, "mg/dL", when=AT - timedelta(days=2)),
        lab_obs("a-stale", "1751-7", 4.0, "g/dL", when=old),
    )
    assert f.labs["bilirubin"].value == 0.8 and f.labs["bilirubin"].source == "Observation/b-new"
    assert "albumin" not in f.labs and f.stale["albumin"] == old


def test_lookback_boundary_is_inclusive_at_90_days() -> None:
    f = read(liver_met(), lab_obs("a", "1751-7", 4.0, "g/dL", when=AT - timedelta(days=90)))
    assert "albumin" in f.labs


def test_observation_status() -> None:
    f = read(
        liver_met(),
        lab_obs("b", "1975-2", 1.0, "mg/dL", status="preliminary"),
        lab_obs("a", "1751-7", 4.0, "g/dL", status=None),
        lab_obs("i", "6301-6", 1.0, "{INR}", status="amended"),
        lab_obs("c", "2160-0", 1.0, "mg/dL", status="entered-in-error"),
    )
    assert set(f.labs) == {"albumin", "inr"}
    assert any("without a status" in a for a in f.assumptions)


def test_observation_time_order_of_fields() -> None:
    period = observation(
        "b",
        "1975-2",
        when=None,
        valueQuantity=quantity(1.0, "mg/dL"),
        effectivePeriod={"start": "2026-05-01", "end": "2026-05-02"},
    )
    issued = observation(
        "a",
        "1751-7",
        when=None,
        valueQuantity=quantity(4.0, "g/dL"),
        issued="2026-05-03T10:00:00+02:00",
    )
    none = observation("i", "6301-6", when=None, valueQuantity=quantity(1.0, "{INR}"))
    f = read(liver_met(), period, issued, none)
    assert f.labs["bilirubin"].date is not None and f.labs["bilirubin"].date.day == 2
    assert f.labs["albumin"].date is not None and f.labs["albumin"].date.hour == 8
    assert "inr" not in f.labs
    assert any(n.resource == "Observation/i" for n in f.data_quality)


def test_units_convert_on_ucum_code_never_on_free_text() -> None:
    text_only = observation("b", "1975-2", valueQuantity={"value": 1.0, "unit": "mg/dL"})
    wrong = lab_obs("a", "1751-7", 4.0, "mg/dL")
    creat = lab_obs("c", "2160-0", 88.42, "umol/L")
    f = read(liver_met(), text_only, wrong, creat)
    assert "bilirubin" not in f.labs and "albumin" not in f.labs
    assert f.labs["creatinine"].value == 1.0
    problems = {n.resource: n.problem for n in f.data_quality}
    assert "unit" in problems["Observation/b"] and "unit" in problems["Observation/a"]


def test_inr_accepts_no_unit_but_never_seconds() -> None:
    assert read(liver_met(), lab_obs("i", "6301-6", 1.2, None)).labs["inr"].value == 1.2
    assert "inr" not in read(liver_met(), lab_obs("i", "6301-6", 12.5, "s")).labs


def test_values_outside_physical_sense_rejected() -> None:
    f = read(
        liver_met(),
        lab_obs("b", "1975-2", 150, "mg/dL"),
        lab_obs("i", "6301-6", 25, "{INR}"),
        lab_obs("a", "1751-7", -1, "g/dL"),
        lab_obs("n", "2951-2", float("nan"), "mmol/L"),
    )
    assert f.labs == {}
    assert {n.resource for n in f.data_quality} >= {
        "Observation/b",
        "Observation/i",
        "Observation/a",
        "Observation/n",
    }


def test_ecog_integer_answer_code_and_karnofsky() -> None:
    assert read(liver_met(), observation("e", "89247-1", valueInteger=2)).ecog == 2
    answer = observation(
        "e", "89247-1", valueCodeableConcept={"coding": [{"system": LOINC, "code": "LA9625-0"}]}
    )
    assert read(liver_met(), answer).ecog == 3
    kps = read(liver_met(), observation("k", "89243-0", valueInteger=80))
    assert (kps.ecog, kps.ecog_from_karnofsky) == (1, 80)


def test_karnofsky_mapping() -> None:
    expected = {100: 0, 90: 0, 80: 1, 70: 1, 60: 2, 50: 2, 40: 3, 30: 3, 20: 4, 10: 4, 0: 5}
    assert {k: karnofsky_to_ecog(k) for k in expected} == expected
    assert karnofsky_to_ecog(85) == 1  # between bands: the lower band


def test_latest_of_ecog_and_karnofsky_wins_and_stale_ecog() -> None:
    f = read(
        liver_met(),
        observation("e", "89247-1", valueInteger=0, when=AT - timedelta(days=20)),
        observation("k", "89243-0", valueInteger=60, when=AT - timedelta(days=3)),
    )
    assert f.ecog == 2
    old = AT - timedelta(days=200)
    stale = read(liver_met(), observation("e", "89247-1", valueInteger=0, when=old))
    assert stale.ecog is None and stale.stale["ecog"] == old


def test_ecog_out_of_range_is_skipped() -> None:
    f = read(liver_met(), observation("e", "89247-1", valueInteger=7))
    assert f.ecog is None and any(n.resource == "Observation/e" for n in f.data_quality)


# --- §6 lesion count, size, FLR ----------------------------------------------------------------


def test_tumour_size_component_value_quantity_mm_and_cm() -> None:
    assert read(liver_met(), size_obs("s", 28, "mm")).largest_cm == 2.8
    assert read(liver_met(), size_obs("s", 3.1, "cm", component=True)).largest_cm == 3.1


def test_tumour_size_without_liver_site_is_not_used() -> None:
    f = read(
        liver_met(site(SEG["VI"])),
        size_obs("s", 6.0, site_code=None),
        size_obs("t", 5.0, site_code=LUNG_SITE),
    )
    assert f.largest_cm is None and f.lesion_count is None


def test_largest_on_latest_day_and_count_of_distinct_sizes_of_that_day_v2() -> None:
    f = read(
        liver_met(site(SEG["VI"])),
        size_obs("old", 7.0, when=AT - timedelta(days=60), site_code=SEG["VII"]),
        size_obs("a", 3.0, when=RECENT, site_code=SEG["VI"]),
        size_obs("b", 2.0, when=RECENT + timedelta(hours=1), site_code=SEG["VII"]),
    )
    assert f.largest_cm == 3.0
    # v2 (fhir-mapping §6): distinct (site, value) pairs of the latest imaging day only;
    # the earlier 7 cm size is an earlier measurement of the same lesions (v1 counted 3).
    assert f.lesion_count == 2


def test_lesion_count_observation_wins() -> None:
    count = observation(
        "n", "lesion-count", system=FINDINGS, valueInteger=4, bodySite=site(RIGHT_LOBE)
    )
    f = read(liver_met(), count, size_obs("a", 3.0), size_obs("b", 2.0))
    assert f.lesion_count == 4


def test_flr_percent() -> None:
    flr = observation("f", "future-liver-remnant", system=FINDINGS, valueQuantity=quantity(35, "%"))
    assert read(liver_met(), flr).flr_percent == 35.0


# --- age, other patients, dates -----------------------------------------------------------------


def test_age_from_birth_date_partial_gives_oldest_possible() -> None:
    assert read(patient(birth="1966-06-02"), liver_met()).age == 59
    assert read(patient(birth="1966-06-01"), liver_met()).age == 60
    assert read(patient(birth="1966"), liver_met()).age == 60


def test_other_patients_resources_are_ignored_and_counted() -> None:
    f = read(
        patient("someone-else"),
        condition("x", ICD, "C22.0", patient="someone-else"),
        lab_obs("y", "1975-2", 9.0, "mg/dL", patient="someone-else"),
        *colorectal_right(),
    )
    assert f.tumour_kind == "secondary" and f.labs["bilirubin"].value == 0.7
    assert any("another patient" in n.problem for n in f.data_quality)


def test_absolute_subject_reference_is_this_patient() -> None:
    met = liver_met(site(SEG["VI"]))
    met["subject"] = {"reference": f"https://ehr.example/fhir/Patient/{PID}"}
    assert read(met).tumour_kind == "secondary"


def test_datetime_without_timezone_is_read_as_utc_and_said() -> None:
    f = read(liver_met(), lab_obs("b", "1975-2", 1.0, "mg/dL", when="2026-05-20T08:00:00"))
    assert f.labs["bilirubin"].date is not None and f.labs["bilirubin"].date.hour == 8
    assert any("without a timezone" in a for a in f.assumptions)


def test_unparseable_date_is_a_data_quality_note() -> None:
    f = read(liver_met(), lab_obs("b", "1975-2", 1.0, "mg/dL", when="yesterday"))
    assert "bilirubin" not in f.labs
    note = next(n for n in f.data_quality if n.resource == "Observation/b")
    assert "yesterday" not in note.problem


def test_partial_dates_are_accepted() -> None:
    f = read(liver_met(), lab_obs("b", "1975-2", 1.0, "mg/dL", when="2026-05"))
    assert f.labs["bilirubin"].date is not None and f.labs["bilirubin"].date.day == 1


def test_future_observations_are_not_used() -> None:
    f = read(liver_met(), lab_obs("b", "1975-2", 1.0, "mg/dL", when=AT + timedelta(days=1)))
    assert "bilirubin" not in f.labs


def test_duplicate_resources_count_once() -> None:
    a = size_obs("a", 3.0)
    f = read(liver_met(site(SEG["VI"])), a, dict(a))
    assert f.lesion_count == 1


def test_disease_free_interval_counts_calendar_months() -> None:
    from datetime import UTC, datetime

    from service.clinical.facts import completed_months

    def at(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    # One year is 12 months across a leap day or not, so Fong's "< 12 months" point agrees.
    assert completed_months(at("2022-03-01"), at("2023-03-01")) == 12
    assert completed_months(at("2023-03-01"), at("2024-03-01")) == 12
    assert completed_months(at("2023-03-01"), at("2024-02-29")) == 11
    assert completed_months(at("2023-01-31"), at("2023-02-28")) == 0
    assert completed_months(at("2024-05-01"), at("2023-05-01")) == 0
