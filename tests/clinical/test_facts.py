"""Fact extraction as fhir-mapping.md describes it, from small synthetic resources."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from service.clinical.facts import extract_facts, karnofsky_to_ecog
from service.clinical.model import Facts
from service.clinical.thresholds import Thresholds

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
    iso,
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


# ================================================================================================
# Rule set v2 (fhir-mapping rows marked v2, §8 Procedures, §9 Patient)
# ================================================================================================

CIRRHOSIS = ("cirr", ICD, "K74.60")
CPT = "http://www.ama-assn.org/go/cpt"
PCS = "http://www.cms.gov/Medicare/Coding/ICD10"


def cond(rid: str, system: str, code: str, **kw: Any) -> dict[str, Any]:
    return condition(rid, system, code, **kw)


def with_reference_high(resource: dict[str, Any], high: float, unit: str) -> dict[str, Any]:
    resource["referenceRange"] = [{"high": {"value": high, "code": unit, "system": UCUM_SYS}}]
    return resource


UCUM_SYS = "http://unitsofmeasure.org"


def procedure(
    rid: str,
    system: str,
    code: str,
    *,
    status: str = "completed",
    performed: str | None = "2025-09-01",
    period_end: str | None = None,
    patient_id: str = PID,
    text: str | None = None,
    body_site: str | None = None,
) -> dict[str, Any]:
    r: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": rid,
        "status": status,
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    if text is not None:
        r["code"]["text"] = text
    if performed is not None:
        r["performedDateTime"] = performed
    if period_end is not None:
        r["performedPeriod"] = {"start": "2025-08-30", "end": period_end}
    if body_site is not None:
        r["bodySite"] = [site(body_site)]
    return r


# --- §2 tumour kind: C22.8 / C22.9 -------------------------------------------------------------


def test_c22_8_is_unspecified_whatever_other_primaries_exist() -> None:
    f = read(cond("l", ICD, "C22.8", sites=[site(SEG["VI"])]), cond("p", ICD, "C18.7"))
    assert f.tumour_kind == "unspecified" and f.unspecified_codes == ("C22.8",)
    assert f.primary_site is None and not f.liver_code_unstated


def test_c22_9_alone_is_unspecified_and_names_its_code() -> None:
    f = read(cond("l", ICD, "C22.9", sites=[site(SEG["VI"])]))
    assert f.tumour_kind == "unspecified" and f.unspecified_codes == ("C22.9",)
    assert f.liver_conditions == ("Condition/l",) and f.confirmed


def test_c22_9_with_a_colon_primary_is_a_secondary_whose_code_did_not_say_so() -> None:
    f = read(cond("l", ICD, "C22.9", sites=[site(SEG["VI"])]), cond("p", ICD, "C18.7"))
    assert (f.tumour_kind, f.primary_site) == ("secondary", "colorectal")
    assert f.liver_code_unstated and f.unspecified_codes == ()
    resected = read(
        cond("l", ICD, "C22.9", sites=[site(SEG["VI"])]),
        cond("p", ICD, "C18.7", clinical="resolved"),
    )
    assert (resected.tumour_kind, resected.primary_site) == ("secondary", "colorectal")


def test_c22_9_in_cirrhosis_stays_unspecified_unless_a_link_names_the_primary() -> None:
    unlinked = read(
        cond("l", ICD, "C22.9", sites=[site(SEG["VI"])]),
        cond("p", ICD, "C18.7"),
        cond(*CIRRHOSIS),
    )
    assert unlinked.tumour_kind == "unspecified" and not unlinked.liver_code_unstated
    linked = read(
        cond("l", ICD, "C22.9", sites=[site(SEG["VI"])], related="p"),
        cond("p", ICD, "C18.7"),
        cond(*CIRRHOSIS),
    )
    assert (linked.tumour_kind, linked.primary_site) == ("secondary", "colorectal")


def test_unspecified_decides_only_when_no_other_liver_kind_is_present() -> None:
    f = read(cond("h", ICD, "C22.0"), cond("l", ICD, "C22.8"))
    assert f.tumour_kind == "hcc" and f.liver_kinds == {"hcc", "unspecified"}
    assert read(cond("m", ICD, "C78.7"), cond("l", ICD, "C22.8")).tumour_kind == "secondary"


def test_c22_9_with_a_cancer_outside_the_primary_rows_is_unspecified() -> None:
    # Prostate cancer (C61) is not a primary row of §4: not read as the primary.
    f = read(cond("l", ICD, "C22.9"), cond("p", ICD, "C61"))
    assert f.tumour_kind == "unspecified"


# --- §4 primary site -------------------------------------------------------------------------


def test_neuroendocrine_carcinoma_decides_even_with_c7b_02() -> None:
    assert read(liver_met(site(SEG["VI"])), cond("p", ICD, "C7A.1")).primary_site == (
        "neuroendocrine-carcinoma"
    )
    f = read(cond("m", ICD, "C7B.02", sites=[site(SEG["VI"])]), cond("p", ICD, "C7A.1"))
    assert f.primary_site == "neuroendocrine-carcinoma" and f.primary_condition == "Condition/p"
    well = read(cond("m", ICD, "C7B.02", sites=[site(SEG["VI"])]), cond("p", ICD, "C7A.012"))
    assert well.primary_site == "neuroendocrine"


def test_a_primary_counts_whatever_its_status_current_ones_first() -> None:
    for status in ("resolved", "remission", "inactive"):
        f = read(liver_met(site(SEG["VI"])), cond("p", ICD, "C18.7", clinical=status))
        assert f.primary_site == "colorectal", status
    current_first = read(
        liver_met(site(SEG["VI"])),
        cond("old", ICD, "C50.911", clinical="resolved"),
        cond("p", ICD, "C18.7"),
    )
    assert current_first.primary_site == "colorectal"
    both_past = read(
        liver_met(site(SEG["VI"])),
        cond("old", ICD, "C50.911", clinical="resolved"),
        cond("p", ICD, "C18.7", clinical="remission"),
    )
    assert both_past.primary_site == "unknown"
    refuted = read(liver_met(site(SEG["VI"])), cond("p", ICD, "C18.7", verification="refuted"))
    assert refuted.primary_site == "unknown"


# --- §4 extrahepatic disease by site ----------------------------------------------------------


def test_extrahepatic_sites_lung_and_lymph_node_are_limited() -> None:
    lung = read(liver_met(site(SEG["VI"])), cond("e", ICD, "C78.01"))
    assert lung.extrahepatic_disease and lung.extrahepatic_sites == {"lung"}
    assert lung.extrahepatic_limited
    nodes = read(liver_met(site(SEG["VI"])), cond("e", ICD, "C77.2"), cond("e2", ICD, "C78.00"))
    assert nodes.extrahepatic_sites == {"lung", "lymph-node"} and nodes.extrahepatic_limited
    by_site = read(
        liver_met(site(SEG["VI"])),
        cond("e", SCT, "128462008", sites=[site("39607008")]),
        cond("e2", SCT, "128462008", sites=[site("59441001")]),
    )
    assert by_site.extrahepatic_sites == {"lung", "lymph-node"} and by_site.extrahepatic_limited


def test_bone_brain_or_an_unknown_site_is_not_limited() -> None:
    bone = read(liver_met(site(SEG["VI"])), cond("e", ICD, "C79.51"), cond("e2", ICD, "C78.01"))
    assert bone.extrahepatic_sites == {"lung", "other"} and not bone.extrahepatic_limited
    other_site = read(
        liver_met(site(SEG["VI"])),
        cond("e", SCT, "128462008", sites=[site(LIVER), site("12345678")]),
    )
    assert other_site.extrahepatic_sites == {"other"} and not other_site.extrahepatic_limited
    none = read(liver_met(site(SEG["VI"])))
    assert not none.extrahepatic_disease and not none.extrahepatic_limited


def test_c7b_04_is_a_lymph_node_site_only_with_a_neuroendocrine_primary() -> None:
    net = read(cond("m", ICD, "C7B.02", sites=[site(SEG["VI"])]), cond("e", ICD, "C7B.04"))
    assert net.extrahepatic_sites == {"lymph-node"} and net.extrahepatic_limited
    colon = read(liver_met(site(SEG["VI"])), cond("p", ICD, "C18.7"), cond("e", ICD, "C7B.04"))
    assert colon.extrahepatic_sites == {"other"} and not colon.extrahepatic_limited


def test_c7b_00_secondary_carcinoid_of_unspecified_site_is_not_counted() -> None:
    f = read(cond("m", ICD, "C7B.02", sites=[site(SEG["VI"])]), cond("e", ICD, "C7B.00"))
    assert not f.extrahepatic_disease


def test_malignant_ascites_is_extrahepatic_and_ascites_but_never_portal_hypertension() -> None:
    f = read(hcc_in(SEG["VI"]), cond("a", ICD, "R18.0"), cond(*CIRRHOSIS), platelets(200))
    assert f.extrahepatic_disease and f.extrahepatic_sites == {"other"}
    assert "ascites" in f.symptoms and f.ascites_points == 2 and f.ascites_assumed
    assert f.portal_hypertension == "absent" and f.portal_hypertension_basis == "platelets"
    no_platelets = read(hcc_in(SEG["VI"]), cond("a", ICD, "R18.0"), cond(*CIRRHOSIS))
    assert no_platelets.portal_hypertension == "unknown"


def hcc_in(segment: str) -> dict[str, Any]:
    return cond("h", ICD, "C22.0", sites=[site(segment)])


def platelets(count: float, **kw: Any) -> dict[str, Any]:
    return lab_obs("plt", "777-3", count, "10*9/L", **kw)


# --- §2 portal hypertension -------------------------------------------------------------------


def test_ascites_with_cirrhosis_or_hcc_is_portal_hypertension_present() -> None:
    for code in (
        ("a", ICD, "R18.8"),
        ("a", ICD, "K70.11"),
        ("a", ICD, "K71.51"),
        ("a", SCT, "389026000"),
    ):
        f = read(liver_met(site(SEG["VI"])), cond(*code), cond(*CIRRHOSIS), platelets(250))
        assert (f.portal_hypertension, f.portal_hypertension_basis) == ("present", "ascites"), code
    alcoholic = read(liver_met(site(SEG["VI"])), cond("a", ICD, "K70.31"))
    assert alcoholic.cirrhosis and alcoholic.portal_hypertension == "present"
    hcc_no_cirrhosis = read(hcc_in(SEG["VI"]), cond("a", ICD, "R18.8"))
    assert hcc_no_cirrhosis.portal_hypertension == "present"
    secondary_no_cirrhosis = read(liver_met(site(SEG["VI"])), cond("a", ICD, "R18.8"))
    assert secondary_no_cirrhosis.portal_hypertension == "absent"


@pytest.mark.parametrize(
    ("count", "status"),
    [
        (99, "suspected"),
        (100, "not-excluded"),
        (149, "not-excluded"),
        (149.9, "not-excluded"),
        (150, "absent"),
    ],
)
def test_portal_hypertension_by_platelets_in_cirrhosis(count: float, status: str) -> None:
    f = read(hcc_in(SEG["VI"]), cond(*CIRRHOSIS), platelets(count))
    assert (f.portal_hypertension, f.portal_hypertension_basis) == (status, "platelets")


def test_portal_hypertension_unknown_in_cirrhosis_without_a_platelet_count_in_the_lookback() -> (
    None
):
    f = read(hcc_in(SEG["VI"]), cond(*CIRRHOSIS))
    assert (f.portal_hypertension, f.portal_hypertension_basis) == ("unknown", "unknown")
    stale = read(hcc_in(SEG["VI"]), cond(*CIRRHOSIS), platelets(200, when=AT - timedelta(days=91)))
    assert stale.portal_hypertension == "unknown" and "platelets" in stale.stale
    coded = read(hcc_in(SEG["VI"]), cond(*CIRRHOSIS), cond("ph", ICD, "K76.6"))
    assert (coded.portal_hypertension, coded.portal_hypertension_basis) == ("present", "condition")
    assert not any("taken as absent" in a for a in f.assumptions)


# --- §2 bilirubin above normal and jaundice ---------------------------------------------------


def bilirubin(value: float, unit: str, rid: str = "bili", **kw: Any) -> dict[str, Any]:
    return lab_obs(rid, "1975-2", value, unit, **kw)


@pytest.mark.parametrize(
    ("value", "unit", "above"),
    [(1.2, "mg/dL", False), (1.21, "mg/dL", True), (20.5, "umol/L", False), (20.6, "umol/L", True)],
)
def test_bilirubin_above_the_default_upper_limit_of_normal(
    value: float, unit: str, above: bool
) -> None:
    f = read(hcc_in(SEG["VI"]), bilirubin(value, unit))
    assert f.bilirubin_above_normal is above
    assert f.bilirubin_uln is not None and f.bilirubin_uln.unit == unit
    assert f.bilirubin_uln.value == (1.2 if unit == "mg/dL" else 20.5)


def test_bilirubin_upper_limit_from_the_reference_range_in_the_same_unit() -> None:
    own = read(hcc_in(SEG["VI"]), with_reference_high(bilirubin(1.1, "mg/dL"), 1.0, "mg/dL"))
    assert own.bilirubin_above_normal and own.bilirubin_uln is not None
    assert own.bilirubin_uln.value == 1.0 and own.bilirubin_uln.source == "Observation/bili"
    si = read(hcc_in(SEG["VI"]), with_reference_high(bilirubin(22, "umol/L"), 24, "umol/L"))
    assert not si.bilirubin_above_normal
    other_unit = read(hcc_in(SEG["VI"]), with_reference_high(bilirubin(22, "umol/L"), 1.4, "mg/dL"))
    assert other_unit.bilirubin_above_normal  # range in mg/dL ignored: default 20.5 umol/L
    assert other_unit.bilirubin_uln is not None and other_unit.bilirubin_uln.value == 20.5


@pytest.mark.parametrize(
    ("value", "unit", "jaundice"),
    [(2.0, "mg/dL", False), (2.01, "mg/dL", True), (34, "umol/L", False), (34.1, "umol/L", True)],
)
def test_jaundice_from_the_latest_bilirubin_in_its_reported_unit(
    value: float, unit: str, jaundice: bool
) -> None:
    # 34.1 umol/L is 1.99 mg/dL: compared with 34 in umol/L, not with 2.0 after conversion.
    f = read(liver_met(site(SEG["VI"])), bilirubin(value, unit))
    assert f.jaundice is jaundice
    assert "jaundice" not in f.symptoms  # the symptom set comes from Conditions only


def test_a_jaundice_condition_counts_until_a_normal_bilirubin_follows_its_onset() -> None:
    onset = (RECENT - timedelta(days=20)).strftime("%Y-%m-%d")
    current = read(liver_met(site(SEG["VI"])), cond("j", ICD, "R17", onset=onset))
    assert current.jaundice and "jaundice" in current.symptoms
    resolved = read(
        liver_met(site(SEG["VI"])), cond("j", ICD, "R17", onset=onset), bilirubin(0.8, "mg/dL")
    )
    assert not resolved.jaundice and "jaundice" not in resolved.symptoms
    before_onset = read(
        liver_met(site(SEG["VI"])),
        cond("j", ICD, "R17", onset=onset),
        bilirubin(0.8, "mg/dL", when=RECENT - timedelta(days=30)),
    )
    assert before_onset.jaundice
    still_high = read(
        liver_met(site(SEG["VI"])), cond("j", ICD, "R17", onset=onset), bilirubin(1.5, "mg/dL")
    )
    assert still_high.jaundice  # 1.5 mg/dL is above the 1.2 upper limit: not resolved


def test_a_jaundice_condition_without_onset_expires_from_its_recorded_date() -> None:
    j = cond("j", ICD, "R17")
    j["recordedDate"] = (RECENT - timedelta(days=3)).strftime("%Y-%m-%d")
    assert not read(liver_met(site(SEG["VI"])), j, bilirubin(0.8, "mg/dL")).jaundice
    undated = cond("j", ICD, "R17")
    assert read(liver_met(site(SEG["VI"])), undated, bilirubin(0.8, "mg/dL")).jaundice


# --- §3 caudate, single section ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("segments", "section"),
    [
        (("II", "III"), "left-lateral"),
        (("IV", "IVa", "IVb"), "left-medial"),
        (("V", "VIII"), "right-anterior"),
        (("VI", "VII"), "right-posterior"),
        (("VI",), "right-posterior"),
        (("I",), "caudate"),
    ],
)
def test_single_section(segments: tuple[str, ...], section: str) -> None:
    f = read(liver_met(*(site(SEG[s]) for s in segments)))
    assert f.single_section and f.section == section


def test_not_a_single_section() -> None:
    for sites in (("V", "VI"), ("IV", "III"), ("I", "II")):
        f = read(liver_met(*(site(SEG[s]) for s in sites)))
        assert not f.single_section and f.section is None, sites
    lobe = read(liver_met(site(SEG["VI"]), site(RIGHT_LOBE)))
    assert not lobe.single_section  # a lobe code is not a section


# --- §6 imaging: counted once, imaging lookback ----------------------------------------------


def count_obs(n: int, when: Any = RECENT, code: str = RIGHT_LOBE) -> dict[str, Any]:
    return observation(
        "n", "lesion-count", system=FINDINGS, valueInteger=n, when=when, bodySite=site(code)
    )


def flr_obs(value: float, when: Any = RECENT) -> dict[str, Any]:
    return observation(
        "f", "future-liver-remnant", system=FINDINGS, when=when, valueQuantity=quantity(value, "%")
    )


def test_one_lesion_measured_on_two_dates_counts_once() -> None:
    f = read(
        hcc_in(SEG["VI"]),
        size_obs("s1", 2.5, when=RECENT - timedelta(days=40)),
        size_obs("s2", 2.8, when=RECENT),
    )
    assert f.lesion_count == 1 and f.largest_cm == 2.8


def test_stale_imaging_counts_as_missing_with_its_date() -> None:
    old = AT - timedelta(days=91)
    f = read(
        liver_met(site(SEG["VI"])),
        count_obs(2, when=old),
        size_obs("s", 3.0, when=old),
        flr_obs(45, when=old),
    )
    assert (f.lesion_count, f.largest_cm, f.flr_percent) == (None, None, None)
    assert f.stale["lesion_count"] == f.stale["largest_cm"] == f.stale["flr_percent"] == old
    assert f.imaging_date is None


def test_imaging_lookback_boundary_is_inclusive_and_a_setting() -> None:
    at_90 = read(liver_met(site(SEG["VI"])), flr_obs(45, when=AT - timedelta(days=90)))
    assert at_90.flr_percent == 45
    longer = extract_facts(
        [liver_met(site(SEG["VI"])), flr_obs(45, when=AT - timedelta(days=200))],
        patient_id=PID,
        at=AT,
        thresholds=Thresholds(imaging_lookback_days=365),
    )
    assert longer.flr_percent == 45 and "flr_percent" not in longer.stale


def test_a_stale_lesion_count_falls_back_to_fresh_sizes() -> None:
    f = read(
        liver_met(site(SEG["VI"])),
        count_obs(5, when=AT - timedelta(days=120)),
        size_obs("a", 2.0, site_code=SEG["VI"]),
        size_obs("b", 1.5, site_code=SEG["VII"]),
    )
    assert f.lesion_count == 2 and "lesion_count" not in f.stale
    assert f.imaging_date == RECENT


def test_stale_imaging_sites_do_not_decide_distribution_condition_sites_still_count() -> None:
    old = AT - timedelta(days=120)
    f = read(
        liver_met(site(SEG["VI"])),
        size_obs("old", 2.0, site_code=SEG["III"], when=old),
    )
    assert f.distribution == "right" and f.single_segment and f.segment == "VI"
    only_old = read(liver_met(), size_obs("old", 2.0, site_code=SEG["III"], when=old))
    assert only_old.distribution == "unknown" and only_old.stale["distribution"] == old
    assert "distribution" not in f.stale


def test_imaging_date_is_the_latest_imaging_observation_used() -> None:
    f = read(
        liver_met(site(SEG["VI"])), size_obs("s", 2.0, when=RECENT - timedelta(days=5)), flr_obs(40)
    )
    assert f.imaging_date == RECENT


# --- §8 previous liver resection ---------------------------------------------------------------


def test_previous_hemihepatectomy_from_cpt_with_its_date() -> None:
    f = read(liver_met(site(SEG["VI"])), procedure("p", CPT, "47125", performed="2025-09-01"))
    assert f.prior_liver_resection == "hemihepatectomy"
    assert f.prior_liver_resection_date is not None
    assert f.prior_liver_resection_date.date().isoformat() == "2025-09-01"
    assert f.prior_liver_resection_source == "Procedure/p" and f.procedures_checked


def test_hemihepatectomy_wins_over_other_and_the_date_may_come_from_the_period_end() -> None:
    f = read(
        liver_met(site(SEG["VI"])),
        procedure("wedge", CPT, "47120", performed="2026-01-10"),
        procedure("right", PCS, "0FT10ZZ", performed=None, period_end="2024-03-02"),
    )
    assert f.prior_liver_resection == "hemihepatectomy"
    assert f.prior_liver_resection_source == "Procedure/right"
    assert f.prior_liver_resection_date is not None
    assert f.prior_liver_resection_date.date().isoformat() == "2024-03-02"
    wedge = read(liver_met(site(SEG["VI"])), procedure("wedge", CPT, "47120"))
    assert wedge.prior_liver_resection == "other"


def test_only_this_patients_completed_resections_count_and_biopsies_never() -> None:
    for proc in (
        procedure("p", CPT, "47130", status="in-progress"),
        procedure("p", CPT, "47130", status="not-done"),
        procedure("p", CPT, "47130", status="entered-in-error"),
        procedure("p", CPT, "47130", patient_id="someone-else"),
        procedure("p", PCS, "0FB03ZX"),
    ):
        assert read(liver_met(site(SEG["VI"])), proc).prior_liver_resection == "none"


def test_an_uncoded_liver_resection_is_named_for_the_mdt_not_guessed() -> None:
    f = read(
        liver_met(site(SEG["VI"])),
        procedure(
            "p", "http://example.org/local", "LR-7", text="Right hepatectomy", body_site=RIGHT_LOBE
        ),
    )
    assert f.prior_liver_resection == "none"
    assert any(n.resource == "Procedure/p" and "MDT" in n.problem for n in f.data_quality)
    elsewhere = read(
        liver_met(site(SEG["VI"])),
        procedure(
            "p", "http://example.org/local", "LR-7", text="Colon resection", body_site=LUNG_SITE
        ),
    )
    assert not any(n.resource == "Procedure/p" for n in elsewhere.data_quality)


def test_procedures_not_obtained_means_previous_surgery_unchecked() -> None:
    f = extract_facts([liver_met(site(SEG["VI"]))], patient_id=PID, at=AT, procedures_checked=False)
    assert not f.procedures_checked and f.prior_liver_resection == "none"
    assert read(liver_met(site(SEG["VI"]))).procedures_checked


# --- §9 deceased ------------------------------------------------------------------------------


def test_deceased_from_boolean_or_a_date_at_or_before_the_evaluation_time() -> None:
    p = patient()
    p["deceasedBoolean"] = True
    assert read(p, liver_met(site(SEG["VI"]))).deceased
    p = patient()
    p["deceasedDateTime"] = iso(AT)
    assert read(p, liver_met(site(SEG["VI"]))).deceased
    p["deceasedDateTime"] = iso(AT + timedelta(days=1))
    assert not read(p, liver_met(site(SEG["VI"]))).deceased
    p = patient()
    p["deceasedBoolean"] = False
    assert not read(p, liver_met(site(SEG["VI"]))).deceased
