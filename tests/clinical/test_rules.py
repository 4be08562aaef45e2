"""The decision table of clinical-rules.md §3 (rule set v2), one test per row and per addition.

Each test builds the smallest facts that reach its row (``builders.facts`` is a right-lobe
colorectal metastasis with the FLR unknown, ``builders.resectable`` the same with an FLR of
50 %) and checks the verdict, the deciding rule and the options exactly: R = recommended,
o = offered, anything else not offered. Rows new or changed in v2 have a table of cases read
from the spec; v1 tests whose answer v2 changes name the v2 row that changed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from service.clinical.model import Assessment, Facts
from service.clinical.rules import RULE_SET_VERSION, RULES, decide
from service.clinical.thresholds import Thresholds

from .builders import (
    AT,
    CP_B_LAB_ONLY,
    CP_B_LABS,
    CP_C_LABS,
    NORMAL_LABS,
    facts,
    hcc,
    lab,
    resectable,
)

RIGHT = "resection-right-hepatectomy"
LEFT = "resection-left-hepatectomy"
LOCAL = "resection-local"
AUGMENT = "liver-augmentation"


def options(a: Assessment) -> tuple[set[str], set[str]]:
    """(recommended, offered-not-recommended), mdt-review left out of the first set."""
    rec = {o.code for o in a.options if o.recommended} - {"mdt-review"}
    off = {o.code for o in a.options if not o.recommended}
    return rec, off


def check(f: Facts, verdict: str | None, rule: str, rec: set[str], off: set[str]) -> Assessment:
    a = decide(f)
    assert (a.verdict, a.rule) == (verdict, rule)
    assert options(a) == (rec, off)
    if verdict is not None:
        assert "mdt-review" in a.recommended
    return a


@dataclass(frozen=True)
class Case:
    """One line of a row's table: the facts, then the answer the spec gives."""

    name: str
    facts: Facts
    verdict: str | None
    rule: str
    rec: frozenset[str] = frozenset()
    off: frozenset[str] = frozenset()


def case(
    name: str,
    f: Facts,
    verdict: str | None,
    rule: str,
    rec: set[str] | None = None,
    off: set[str] | None = None,
) -> Any:
    return pytest.param(
        Case(name, f, verdict, rule, frozenset(rec or ()), frozenset(off or ())), id=name
    )


def run(c: Case) -> Assessment:
    return check(c.facts, c.verdict, c.rule, set(c.rec), set(c.off))


def missing(a: Assessment) -> dict[str, bool]:
    """fact -> essential."""
    return {m.fact: m.essential for m in a.missing}


def note(a: Assessment, text: str) -> str:
    found = [n for n in a.notes if text in n]
    assert found, f"no note with {text!r} in {a.notes}"
    return found[0]


OLD = AT - timedelta(days=200)
SEGMENT_VI = {"single_segment": True, "segment": "VI", "single_section": True}
SEGMENT_VI |= {"section": "right-posterior"}
CAUDATE = {"distribution": "caudate", "single_segment": True, "segment": "I"}
CAUDATE |= {"single_section": True, "section": "caudate"}
CIRRHOTIC = {"cirrhosis": True}


def test_rules_are_listed_in_the_spec_order_and_findable_by_number() -> None:
    assert [n for n, _ in RULES] == [
        *("0", "1", "1a", "2", "3", "4", "4a", "5", "6", "7", "7a", "8", "9", "10", "11"),
        *("12", "12a", "12b", "13", "13a", "14", "15", "16", "16a", "17", "18", "19", "19a"),
        *("20", "20a", "21", "22", "23"),
    ]
    assert all(fn.__name__ == f"rule_{n}" for n, fn in RULES)
    assert all(fn.__doc__ and fn.__doc__.startswith(f"{n} | ") for n, fn in RULES)
    assert RULE_SET_VERSION == "2026.12"


# --- rule 0 (v2: deceased) -------------------------------------------------------------------


@pytest.mark.parametrize(
    "c",
    [
        case("no liver malignancy", facts(tumour_kind=None, liver_kinds=frozenset()), None, "0"),
        case("v2: deceased, resectable disease", resectable(deceased=True), None, "0"),
        case("v2: deceased hcc", hcc(deceased=True, flr_percent=50.0), None, "0"),
    ],
)
def test_rule_0_no_cards(c: Case) -> None:
    a = run(c)
    assert a.options == () and not a.has_cards and a.missing == ()


# --- rules 1-5 --------------------------------------------------------------------------------


def test_rule_1_unconfirmed_is_indeterminate_and_asks_for_confirmation() -> None:
    a = check(facts(confirmed=False), "indeterminate", "1", set(), set())
    assert a.missing[0].fact == "diagnosis-confirmation" and a.missing[0].essential


@pytest.mark.parametrize(
    "c",
    [
        case(
            "C22.9 alone",
            facts(tumour_kind="unspecified", primary_site=None, unspecified_codes=("C22.9",)),
            "indeterminate",
            "1a",
        ),
        case(
            "C22.8 with cirrhosis",
            facts(
                tumour_kind="unspecified",
                primary_site=None,
                unspecified_codes=("C22.8",),
                cirrhosis=True,
            ),
            "indeterminate",
            "1a",
        ),
        case(
            "unconfirmed unspecified: rule 1 first",
            facts(tumour_kind="unspecified", primary_site=None, confirmed=False),
            "indeterminate",
            "1",
        ),
    ],
)
def test_rule_1a_unspecified_tumour_kind_asks_for_the_tumour_type(c: Case) -> None:
    a = run(c)
    if a.rule == "1a":
        assert missing(a)["tumour-type"] is True
        code = c.facts.unspecified_codes[0]
        assert code in note(a, "primary liver cancer")
        assert code in next(m.detail for m in a.missing if m.fact == "tumour-type")


def test_rule_2_other_liver_primary_is_outside_the_rules() -> None:
    a = check(
        facts(
            tumour_kind="other-liver-primary",
            primary_site=None,
            liver_kinds=frozenset({"other-liver-primary"}),
        ),
        "indeterminate",
        "2",
        set(),
        set(),
    )
    assert any("outside these rules" in n for n in a.notes)
    assert a.missing == ()


@pytest.mark.parametrize(
    "c",
    [
        case("ECOG 3", facts(ecog=3), "not-resectable", "3", {"best-supportive-care"},
             {"systemic-therapy"}),
        case("v2: ECOG 4, no systemic therapy", facts(ecog=4), "not-resectable", "3",
             {"best-supportive-care"}),
        case("v2: ECOG 5, no systemic therapy", hcc(ecog=5), "not-resectable", "3",
             {"best-supportive-care"}),
    ],
)  # fmt: skip
def test_rule_3_ecog_3_or_more_systemic_therapy_only_at_3(c: Case) -> None:
    run(c)


def test_rule_3_decides_before_missing_essentials() -> None:
    a = check(
        facts(ecog=3, distribution="unknown", lesion_count=None, labs={}),
        "not-resectable",
        "3",
        {"best-supportive-care"},
        {"systemic-therapy"},
    )
    assert {m.fact for m in a.missing} >= {"distribution", "lesion-count", "child-pugh"}


@pytest.mark.parametrize(
    "c",
    [
        case("secondary with cirrhosis", facts(labs=CP_C_LABS, cirrhosis=True), "not-resectable",
             "4", {"best-supportive-care"}),
        case("hcc within Milan (hcc needs no cirrhosis)",
             hcc(labs=CP_C_LABS, lesion_count=1, largest_cm=4.0), "not-resectable", "4",
             {"transplant-evaluation"}),
        case("hcc outside Milan", hcc(labs=CP_C_LABS, lesion_count=1, largest_cm=6.0),
             "not-resectable", "4", {"best-supportive-care"}),
        case("v2: secondary without cirrhosis goes to 4a", facts(labs=CP_C_LABS),
             "indeterminate", "4a"),
    ],
)  # fmt: skip
def test_rule_4_child_pugh_c_with_cirrhosis_or_hcc(c: Case) -> None:
    run(c)


def test_rule_4_afp_above_1000_keeps_transplant_evaluation_with_a_meld_exception_note() -> None:
    """v2 §2 afp (second review): AFP 1400 no longer removes transplant evaluation."""
    f = hcc(labs={**CP_C_LABS, "afp": lab(1400, "ng/mL")}, lesion_count=1, largest_cm=4.0)
    a = check(f, "not-resectable", "4", {"transplant-evaluation"}, set())
    text = note(a, "MELD exception")
    assert "above 1000" in text and "below 500" in text
    for afp in (1000, 999.9):
        quiet = decide(hcc(labs={**CP_C_LABS, "afp": lab(afp, "ng/mL")}, largest_cm=4.0))
        assert not any("MELD exception" in n for n in quiet.notes)
    unknown = decide(hcc(labs=CP_C_LABS, largest_cm=4.0))
    assert missing(unknown)["afp"] is False


@pytest.mark.parametrize(
    "c",
    [
        case("jaundice (bilirubin 2.9 mg/dL), CRLM", resectable(jaundice=True,
             labs={**NORMAL_LABS, "bilirubin": lab(2.9)}, bilirubin_above_normal=True),
             "indeterminate", "4a"),
        case("coded jaundice, normal labs", resectable(jaundice=True,
             symptoms=frozenset({"jaundice"})), "indeterminate", "4a"),
        case("lab-only Child-Pugh C without cirrhosis", resectable(labs=CP_C_LABS),
             "indeterminate", "4a"),
        case("breast primary with jaundice", resectable(primary_site="breast", jaundice=True),
             "indeterminate", "4a"),
        case("hcc with jaundice is not 4a (rule 10)", hcc(jaundice=True, largest_cm=2.0,
             flr_percent=50.0), "not-resectable", "10", {"transplant-evaluation", "ablation"},
             {"tace"}),
    ],
)  # fmt: skip
def test_rule_4a_secondary_with_jaundice_or_failing_liver_tests_find_the_cause_first(
    c: Case,
) -> None:
    a = run(c)
    if a.rule == "4a":
        assert missing(a)["jaundice-cause"] is True
        text = note(a, "cause must be found first")
        assert "bile-duct imaging" in text and "not considered" in text
        assert "jaundice" in a.risk_modifiers or "abnormal-liver-tests" in a.risk_modifiers


def test_rule_4a_decides_before_missing_essentials_and_lists_them() -> None:
    a = check(facts(jaundice=True, ecog=None), "indeterminate", "4a", set(), set())
    assert missing(a) == {"jaundice-cause": True, "ecog": True}


def test_rule_5_each_essential_fact_makes_it_indeterminate() -> None:
    for changed in (
        {"distribution": "unknown"},
        {"lesion_count": None},
        {"ecog": None},
        {"labs": {k: v for k, v in NORMAL_LABS.items() if k != "inr"}},
    ):
        a = check(resectable(**changed), "indeterminate", "5", set(), set())
        assert any(m.essential for m in a.missing)


@pytest.mark.parametrize(
    "c",
    [
        case("hcc: size essential", hcc(largest_cm=None), "indeterminate", "5"),
        case("v2: hcc with cirrhosis, no platelet count",
             hcc(cirrhosis=True, portal_hypertension="unknown",
                 portal_hypertension_basis="unknown", flr_percent=50.0),
             "indeterminate", "5"),
        case("v2: diffuse hcc needs no count or size",
             hcc(distribution="diffuse", lesion_count=None, largest_cm=None),
             "not-resectable", "11", {"systemic-therapy"}, {"haic", "tare"}),
        case("v2: stale count is missing",
             resectable(lesion_count=None, stale={"lesion_count": OLD}),
             "indeterminate", "5"),
        case("v2: unknown portal hypertension is not essential for metastases",
             resectable(cirrhosis=True, portal_hypertension="unknown"),
             "resectable", "21", {RIGHT}, {LOCAL, "ablation", "systemic-therapy"}),
    ],
)  # fmt: skip
def test_rule_5_v2_essential_facts(c: Case) -> None:
    a = run(c)
    if a.rule == "5":
        assert any(m.essential for m in a.missing)
    if c.facts.portal_hypertension == "unknown" and c.facts.tumour_kind == "hcc":
        assert missing(a)["portal-hypertension"] is True
    if c.facts.stale:
        count = next(m for m in a.missing if m.fact == "lesion-count")
        assert count.essential and count.stale_since == OLD
    if a.rule == "11":
        assert "lesion-count" not in missing(a) and "largest-size" not in missing(a)


def test_rule_5_size_is_essential_for_hcc_only() -> None:
    a = decide(resectable(largest_cm=None))
    assert a.rule == "21"
    assert [(m.fact, m.essential) for m in a.missing if m.fact == "largest-size"] == [
        ("largest-size", False)
    ]


# --- rules 6-7a ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "c",
    [
        case("ECOG 2, small", facts(ecog=2), "not-resectable", "6", {"systemic-therapy"},
             {"ablation", "sbrt", "monitoring"}),
        case("ECOG 2, 4 cm", facts(ecog=2, largest_cm=4.0), "not-resectable", "6",
             {"systemic-therapy"}, {"sbrt", "monitoring"}),
        case("v2: ECOG 2 pancreas goes to rule 7", facts(ecog=2, primary_site="pancreas"),
             "not-resectable", "7", {"systemic-therapy"}),
        case("v2: ECOG 2 NEC goes to rule 7a",
             facts(ecog=2, primary_site="neuroendocrine-carcinoma"), "not-resectable", "7a",
             {"systemic-therapy"}),
    ],
)  # fmt: skip
def test_rule_6_ecog_2_except_pancreas_and_nec(c: Case) -> None:
    run(c)


def test_rule_7_pancreas_primary_no_monitoring() -> None:
    """v2 addition: monitoring is never offered for pancreatic cancer."""
    check(resectable(primary_site="pancreas"), "not-resectable", "7", {"systemic-therapy"}, set())


@pytest.mark.parametrize(
    "c",
    [
        case("NEC, right lobe, FLR 50 %", resectable(primary_site="neuroendocrine-carcinoma"),
             "not-resectable", "7a", {"systemic-therapy"}),
        case("NEC, bilobar", resectable(primary_site="neuroendocrine-carcinoma",
             distribution="bilobar", lesion_count=6), "not-resectable", "7a",
             {"systemic-therapy"}),
        case("well-differentiated NET stays resectable",
             resectable(primary_site="neuroendocrine"), "resectable", "21", {RIGHT},
             {"ablation", "systemic-therapy"}),
    ],
)  # fmt: skip
def test_rule_7a_neuroendocrine_carcinoma(c: Case) -> None:
    run(c)


# --- rules 8-14 (hcc) -----------------------------------------------------------------------------


def test_rule_8_hcc_macrovascular_invasion_or_extrahepatic() -> None:
    for changed in ({"macrovascular_invasion": True}, {"extrahepatic_disease": True}):
        check(hcc(**changed), "not-resectable", "8", {"systemic-therapy"}, {"haic", "tare", "sbrt"})


def test_rule_9_hcc_child_pugh_b() -> None:
    check(
        hcc(labs=CP_B_LABS, lesion_count=2, largest_cm=2.5),
        "not-resectable",
        "9",
        {"transplant-evaluation"},
        {"ablation", "tace", "systemic-therapy"},
    )
    check(
        hcc(labs=CP_B_LABS, lesion_count=4, largest_cm=2.5),
        "not-resectable",
        "9",
        set(),
        {"tace", "systemic-therapy"},
    )


@pytest.mark.parametrize(
    "c",
    [
        case("portal hypertension present", hcc(portal_hypertension="present", largest_cm=2.8),
             "not-resectable", "10", {"transplant-evaluation", "ablation"}, {"tace"}),
        case("suspected (platelets < 100), 4.5 cm",
             hcc(portal_hypertension="suspected", cirrhosis=True, largest_cm=4.5),
             "not-resectable", "10", {"transplant-evaluation"}, {"tace"}),
        case("v2: bilirubin above normal (50 umol/L)",
             hcc(bilirubin_above_normal=True, largest_cm=2.0, flr_percent=50.0),
             "not-resectable", "10", {"transplant-evaluation", "ablation"}, {"tace"}),
        case("v2: ascites with cirrhosis (present), 3 nodules",
             hcc(portal_hypertension="present", cirrhosis=True, ascites_points=2,
                 lesion_count=3, largest_cm=2.5),
             "not-resectable", "10", {"transplant-evaluation", "ablation"}, {"tace"}),
        case("v2: diffuse hcc with platelets 85 keeps systemic therapy (rule 11)",
             hcc(portal_hypertension="suspected", cirrhosis=True, distribution="diffuse",
                 lesion_count=20, largest_cm=4.0),
             "not-resectable", "11", {"systemic-therapy"}, {"haic", "tare"}),
        case("v2: 5 nodules with portal hypertension go to 12a, no resection",
             hcc(portal_hypertension="suspected", cirrhosis=True, lesion_count=5,
                 largest_cm=2.0),
             "not-resectable", "12a", {"tace"}, {"transplant-evaluation", "systemic-therapy"}),
    ],
)  # fmt: skip
def test_rule_10_hcc_portal_hypertension_or_bilirubin_above_normal(c: Case) -> None:
    run(c)


def test_rule_11_hcc_diffuse() -> None:
    check(
        hcc(distribution="diffuse", lesion_count=15, largest_cm=5.0),
        "not-resectable",
        "11",
        {"systemic-therapy"},
        {"haic", "tare"},
    )


@pytest.mark.parametrize(
    "c",
    [
        case("v2: BCLC A, two 2.5 cm nodules in both lobes",
             hcc(distribution="bilobar", lesion_count=2, largest_cm=2.5),
             "not-resectable", "12", {"ablation", "transplant-evaluation"}, {"tace"}),
        case("v2: BCLC A at the boundary, two 3.0 cm nodules",
             hcc(distribution="bilobar", lesion_count=2, largest_cm=3.0),
             "not-resectable", "12", {"ablation", "transplant-evaluation"}, {"tace"}),
        case("within Milan, not small (one 4 cm lesion across both lobes)",
             hcc(distribution="bilobar", lesion_count=1, largest_cm=4.0),
             "not-resectable", "12", {"tace", "transplant-evaluation"},
             {"haic", "tare", "systemic-therapy"}),
        case("up-to-seven only", hcc(distribution="bilobar", lesion_count=3, largest_cm=4.0),
             "not-resectable", "12", {"tace"},
             {"haic", "tare", "transplant-evaluation", "systemic-therapy"}),
        case("beyond up-to-seven", hcc(distribution="bilobar", lesion_count=3, largest_cm=4.5),
             "not-resectable", "12", {"tace"}, {"haic", "tare", "systemic-therapy"}),
    ],
)  # fmt: skip
def test_rule_12_hcc_bilobar(c: Case) -> None:
    run(c)


@pytest.mark.parametrize(
    "c",
    [
        case("8 nodules up to 9 cm, right lobe", hcc(lesion_count=8, largest_cm=9.0,
             flr_percent=50.0), "not-resectable", "12a", {"tace"}, {RIGHT, "systemic-therapy"}),
        case("nodules of 2 and 5 cm (within up-to-seven)",
             hcc(lesion_count=2, largest_cm=5.0, flr_percent=50.0), "not-resectable", "12a",
             {"tace"}, {RIGHT, "transplant-evaluation", "systemic-therapy"}),
        case("5 small nodules within up-to-seven, FLR unknown",
             hcc(lesion_count=5, largest_cm=2.0), "not-resectable", "12a", {"tace"},
             {RIGHT, "transplant-evaluation", "systemic-therapy"}),
        case("no resection with bilirubin above normal",
             hcc(lesion_count=5, largest_cm=2.0, bilirubin_above_normal=True),
             "not-resectable", "12a", {"tace"}, {"transplant-evaluation", "systemic-therapy"}),
        case("no resection with portal hypertension not excluded",
             hcc(lesion_count=5, largest_cm=2.0, cirrhosis=True,
                 portal_hypertension="not-excluded"),
             "not-resectable", "12a", {"tace"}, {"transplant-evaluation", "systemic-therapy"}),
        case("no hemihepatectomy with a low FLR", hcc(lesion_count=5, largest_cm=2.0,
             flr_percent=15.0), "not-resectable", "12a", {"tace"},
             {"transplant-evaluation", "systemic-therapy"}),
        case("4 nodules in the caudate lobe: local resection",
             hcc(lesion_count=4, largest_cm=1.5, **CAUDATE), "not-resectable", "12a",
             {"tace"}, {LOCAL, "transplant-evaluation", "systemic-therapy"}),
        case("4 nodules in segment VI: sectionectomy",
             hcc(lesion_count=4, largest_cm=1.5, **SEGMENT_VI), "not-resectable", "12a",
             {"tace"}, {LOCAL, "transplant-evaluation", "systemic-therapy"}),
    ],
)  # fmt: skip
def test_rule_12a_hcc_one_sided_bclc_b_burden(c: Case) -> None:
    run(c)


NOT_EXCLUDED = {"cirrhosis": True, "portal_hypertension": "not-excluded"}
NOT_EXCLUDED |= {"portal_hypertension_basis": "platelets"}
PLATELETS_120 = {**NORMAL_LABS, "platelets": lab(120, "10^9/L")}


@pytest.mark.parametrize(
    "c",
    [
        case("right lobe, FLR 50 % (threshold 40 % in cirrhosis)",
             hcc(flr_percent=50.0, labs=PLATELETS_120, **NOT_EXCLUDED),
             "potentially-resectable", "12b", set(),
             {RIGHT, "ablation", "transplant-evaluation", "tace"}),
        case("right lobe, FLR unknown: hemihepatectomy only offered",
             hcc(labs=PLATELETS_120, **NOT_EXCLUDED), "potentially-resectable", "12b", set(),
             {RIGHT, "ablation", "transplant-evaluation", "tace"}),
        case("right lobe, FLR 30 % in cirrhosis: augmentation instead of the hemihepatectomy",
             hcc(flr_percent=30.0, labs=PLATELETS_120, **NOT_EXCLUDED),
             "potentially-resectable", "12b", set(),
             {AUGMENT, "ablation", "transplant-evaluation", "tace"}),
        case("segment VI, FLR 30 %: sectionectomy",
             hcc(flr_percent=30.0, labs=PLATELETS_120, **NOT_EXCLUDED, **SEGMENT_VI),
             "potentially-resectable", "12b", set(),
             {LOCAL, "ablation", "transplant-evaluation", "tace"}),
        case("caudate", hcc(labs=PLATELETS_120, **NOT_EXCLUDED, **CAUDATE),
             "potentially-resectable", "12b", set(),
             {LOCAL, "ablation", "transplant-evaluation", "tace"}),
    ],
)  # fmt: skip
def test_rule_12b_hcc_portal_hypertension_not_excluded(c: Case) -> None:
    a = run(c)
    text = note(a, "Baveno VII")
    assert "liver stiffness or HVPG" in text and "platelets 120" in text
    augmentation = [o.rule for o in a.options if o.code == AUGMENT]
    assert augmentation in ([], ["addition:liver-augmentation"])


@pytest.mark.parametrize(
    "c",
    [
        case("right lobe, FLR 18 %, 7 cm", hcc(flr_percent=18.0, largest_cm=7.0),
             "potentially-resectable", "13", {AUGMENT}, {RIGHT, "tace"}),
        case("left lobe, FLR 35 % in cirrhosis (threshold 40 %)",
             hcc(flr_percent=35.0, cirrhosis=True, distribution="left"),
             "potentially-resectable", "13", {AUGMENT},
             {LEFT, "tace", "transplant-evaluation"}),
        case("v2: segment VI with FLR 18 % is a sectionectomy, not augmentation (rule 14)",
             hcc(flr_percent=18.0, **SEGMENT_VI), "resectable", "14", {LOCAL},
             {"ablation", "transplant-evaluation", "tace"}),
    ],
)  # fmt: skip
def test_rule_13_hcc_major_resection_low_flr(c: Case) -> None:
    a = run(c)
    assert a.flr_low is True and "low-flr" in a.risk_modifiers
    assert a.major_resection is (a.rule == "13")
    assert a.flr_threshold == (40.0 if c.facts.cirrhosis else 20.0)


def test_rule_13_flr_threshold_is_20_without_cirrhosis() -> None:
    a = decide(hcc(flr_percent=35.0))
    assert (a.rule, a.flr_low, a.flr_threshold) == ("14", False, 20.0)


@pytest.mark.parametrize(
    "c",
    [
        case("right lobe, 2.5 cm, FLR unknown (v1: right hepatectomy R)", hcc(largest_cm=2.5),
             "potentially-resectable", "13a", set(),
             {RIGHT, "ablation", "transplant-evaluation", "tace"}),
        case("left lobe surface, FLR unknown",
             hcc(distribution="left", surface=True, largest_cm=6.0),
             "potentially-resectable", "13a", set(), {LEFT, LOCAL, "tace"}),
        case("cirrhosis, FLR stale", hcc(cirrhosis=True, stale={"flr_percent": OLD}),
             "potentially-resectable", "13a", set(),
             {RIGHT, "ablation", "transplant-evaluation", "tace"}),
    ],
)  # fmt: skip
def test_rule_13a_hcc_major_resection_flr_unknown_needs_volumetry(c: Case) -> None:
    a = run(c)
    assert "CT volumetry" in note(a, "future liver remnant is unknown")
    flr = next(m for m in a.missing if m.fact == "flr")
    assert flr.essential and "CT volumetry" in flr.detail
    assert a.flr_low is None and a.major_resection
    if c.facts.stale:
        assert flr.stale_since == OLD


@pytest.mark.parametrize(
    "c",
    [
        case("right lobe, FLR 50 %", hcc(largest_cm=2.5, flr_percent=50.0), "resectable", "14",
             {RIGHT}, {"ablation", "transplant-evaluation", "tace"}),
        case("v2: isolated caudate hcc (v1: not resectable)", hcc(largest_cm=3.5, **CAUDATE),
             "resectable", "14", {LOCAL}, {"transplant-evaluation", "tace"}),
        case("v2: segment VI, FLR unknown: sectionectomy, no hemihepatectomy",
             hcc(**SEGMENT_VI), "resectable", "14", {LOCAL},
             {"ablation", "transplant-evaluation", "tace"}),
        case("v2: segment VI, FLR 50 %: hemihepatectomy offered",
             hcc(flr_percent=50.0, **SEGMENT_VI), "resectable", "14", {LOCAL},
             {RIGHT, "ablation", "transplant-evaluation", "tace"}),
    ],
)  # fmt: skip
def test_rule_14_hcc_resectable(c: Case) -> None:
    a = run(c)
    assert "mdt-review" in a.recommended


def test_rule_14_would_refine_flr_for_a_sectionectomy() -> None:
    a = decide(hcc(**SEGMENT_VI))
    assert missing(a) == {"flr": False, "afp": False}


# --- rules 15-23 (metastases) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "c",
    [
        case("Child-Pugh B with cirrhosis", resectable(labs=CP_B_LABS, cirrhosis=True),
             "not-resectable", "15", {"systemic-therapy"}, {"ablation", "sbrt", "monitoring"}),
        case("v2: lab-only Child-Pugh B without cirrhosis goes on (warfarin INR, low albumin); "
             "the hemihepatectomy waits for the tests to be explained (docs/clinical.md)",
             resectable(labs=CP_B_LAB_ONLY), "potentially-resectable", "21", set(),
             {RIGHT, LOCAL, "ablation", "systemic-therapy"}),
        case("v2: lab-only Child-Pugh B, FLR 35 % is below the 40 % threshold (rule 20)",
             resectable(labs=CP_B_LAB_ONLY, flr_percent=35.0), "potentially-resectable",
             "20", {AUGMENT}, {RIGHT, LOCAL, "ablation", "systemic-therapy"}),
    ],
)  # fmt: skip
def test_rule_15_secondary_child_pugh_b_needs_cirrhosis(c: Case) -> None:
    a = run(c)
    if not c.facts.cirrhosis and a.rule == "21":
        assert any("explained" in note for note in a.notes)
    if c.facts.cirrhosis:
        assert "child-pugh-b" in a.risk_modifiers
    else:
        assert "abnormal-liver-tests" in a.risk_modifiers
        assert "child-pugh-b" not in a.risk_modifiers


LUNG_METS = {"extrahepatic_disease": True, "extrahepatic_limited": True}
LUNG_METS |= {"extrahepatic_sites": frozenset({"lung"})}
BONE_METS = {"extrahepatic_disease": True, "extrahepatic_limited": False}
BONE_METS |= {"extrahepatic_sites": frozenset({"other"})}


@pytest.mark.parametrize(
    "c",
    [
        case("colorectal, lung metastases", resectable(**LUNG_METS), "potentially-resectable",
             "16", {"systemic-therapy"}, {RIGHT, LOCAL, "ablation"}),
        case("neuroendocrine, nodes", resectable(primary_site="neuroendocrine", **LUNG_METS),
             "potentially-resectable", "16", {"systemic-therapy"}, {RIGHT, "ablation"}),
        case("neuroendocrine, FLR 15 %, 5 lesions: augmentation in place of the hemihepatectomy",
             resectable(primary_site="neuroendocrine", flr_percent=15.0, lesion_count=5,
                        largest_cm=4.0, **LUNG_METS),
             "potentially-resectable", "16", {"systemic-therapy"}, {AUGMENT}),
        case("colorectal bilobar", resectable(distribution="bilobar", lesion_count=4,
             **LUNG_METS), "potentially-resectable", "16", {"systemic-therapy"},
             {LOCAL, "ablation"}),
        case("v2: diffuse skips 16 (rule 17)", resectable(distribution="diffuse",
             lesion_count=20, largest_cm=4.0, **LUNG_METS), "not-resectable", "17",
             {"systemic-therapy"}, {"haic", "tare", "monitoring"}),
    ],
)  # fmt: skip
def test_rule_16_colorectal_or_net_with_limited_extrahepatic_disease(c: Case) -> None:
    run(c)


@pytest.mark.parametrize(
    "c",
    [
        case("colorectal, bone and brain", resectable(**BONE_METS), "not-resectable", "16a",
             {"systemic-therapy"}, {"monitoring"}),
        case("neuroendocrine, bone", resectable(primary_site="neuroendocrine", **BONE_METS),
             "not-resectable", "16a", {"systemic-therapy"}, {"tace", "tare", "monitoring"}),
        case("colorectal, lung and bone (not limited)", resectable(
             extrahepatic_disease=True, extrahepatic_sites=frozenset({"lung", "other"})),
             "not-resectable", "16a", {"systemic-therapy"}, {"monitoring"}),
        case("neuroendocrine diffuse with bone goes to 18",
             resectable(primary_site="neuroendocrine", distribution="diffuse", lesion_count=30,
                        **BONE_METS),
             "not-resectable", "18", {"systemic-therapy"}, {"tace", "tare", "monitoring"}),
    ],
)  # fmt: skip
def test_rule_16a_colorectal_or_net_with_extrahepatic_disease_not_limited(c: Case) -> None:
    run(c)


def test_rule_17_colorectal_diffuse_transmet_like() -> None:
    a = check(
        facts(distribution="diffuse", age=52, lesion_count=20, largest_cm=4.0),
        "not-resectable",
        "17",
        {"systemic-therapy"},
        {"haic", "tare", "transplant-evaluation", "monitoring"},
    )
    assert a.heuristics == ("transmet_like",)


def test_rule_17_colorectal_diffuse_not_transmet_like() -> None:
    for changed in ({"age": 66}, {"ecog": 2}, {"age": None}):
        a = decide(facts(distribution="diffuse", lesion_count=20, largest_cm=4.0, **changed))
        assert "transplant-evaluation" not in a.offered
    a = decide(facts(distribution="diffuse", lesion_count=20, largest_cm=4.0, age=None))
    assert ("age", False) in [(m.fact, m.essential) for m in a.missing]
    assert a.heuristics == ()


def test_rule_18_neuroendocrine_diffuse() -> None:
    check(
        facts(primary_site="neuroendocrine", distribution="diffuse", lesion_count=30),
        "not-resectable",
        "18",
        {"systemic-therapy"},
        {"tace", "tare", "monitoring"},
    )


@pytest.mark.parametrize(
    "c",
    [
        case("colorectal, 3 lesions, FLR 35 %",
             facts(distribution="bilobar", lesion_count=3, largest_cm=2.0, flr_percent=35.0),
             "potentially-resectable", "19", {LOCAL},
             {AUGMENT, "ablation", "systemic-therapy"}),
        case("colorectal, FLR 15 %: augmentation R",
             facts(distribution="bilobar", lesion_count=6, largest_cm=4.2, flr_percent=15.0),
             "potentially-resectable", "19", {LOCAL, AUGMENT}, {"systemic-therapy"}),
        case("v2: colorectal, 10 lesions is still 19",
             facts(distribution="bilobar", lesion_count=10, largest_cm=2.0, flr_percent=50.0),
             "potentially-resectable", "19", {LOCAL},
             {AUGMENT, "ablation", "systemic-therapy"}),
        case("neuroendocrine, debulking",
             facts(primary_site="neuroendocrine", distribution="bilobar", lesion_count=14),
             "potentially-resectable", "19", {"systemic-therapy"}, {LOCAL, "tace", "tare"}),
    ],
)  # fmt: skip
def test_rule_19_colorectal_up_to_10_or_neuroendocrine_bilobar(c: Case) -> None:
    a = run(c)
    if c.facts.primary_site == "neuroendocrine":
        local = next(o for o in a.options if o.code == LOCAL)
        assert local.qualifier == "debulking"


@pytest.mark.parametrize(
    "c",
    [
        case("25 bilobar nodules, TransMet-like",
             facts(distribution="bilobar", lesion_count=25, largest_cm=2.0, age=52),
             "potentially-resectable", "19a", {"systemic-therapy"},
             {LOCAL, AUGMENT, "transplant-evaluation"}),
        case("11 bilobar nodules, age 70",
             facts(distribution="bilobar", lesion_count=11, largest_cm=2.0, age=70),
             "potentially-resectable", "19a", {"systemic-therapy"}, {LOCAL, AUGMENT}),
    ],
)  # fmt: skip
def test_rule_19a_colorectal_bilobar_more_than_10_conversion_first(c: Case) -> None:
    a = run(c)
    systemic = next(o for o in a.options if o.code == "systemic-therapy")
    assert systemic.qualifier == "conversion chemotherapy first"
    assert ("transmet_like" in a.heuristics) is (c.facts.age == 52)


@pytest.mark.parametrize(
    "c",
    [
        case("colorectal, 3 lesions, FLR 17 %: parenchyma-sparing resection beside",
             facts(flr_percent=17.0, lesion_count=3, largest_cm=5.5),
             "potentially-resectable", "20", {AUGMENT}, {RIGHT, LOCAL, "systemic-therapy"}),
        case("colorectal, 4 lesions, FLR 17 %",
             facts(flr_percent=17.0, lesion_count=4, largest_cm=5.5),
             "potentially-resectable", "20", {AUGMENT}, {RIGHT, "systemic-therapy"}),
        case("neuroendocrine, left lobe, FLR 12 %",
             facts(primary_site="neuroendocrine", distribution="left", flr_percent=12.0),
             "potentially-resectable", "20", {AUGMENT}, {LEFT, "ablation", "systemic-therapy"}),
    ],
)  # fmt: skip
def test_rule_20_secondary_major_resection_low_flr(c: Case) -> None:
    a = run(c)
    assert a.flr_low is True and a.major_resection


@pytest.mark.parametrize(
    "c",
    [
        case("colorectal right lobe, FLR unknown (v1: right hepatectomy R)", facts(),
             "potentially-resectable", "20a", set(),
             {RIGHT, LOCAL, "ablation", "systemic-therapy"}),
        case("neuroendocrine, 5 lesions, FLR unknown",
             facts(primary_site="neuroendocrine", lesion_count=5, largest_cm=4.0),
             "potentially-resectable", "20a", set(), {RIGHT, "systemic-therapy"}),
        case("colorectal, stale FLR",
             facts(stale={"flr_percent": OLD}), "potentially-resectable", "20a", set(),
             {RIGHT, LOCAL, "ablation", "systemic-therapy"}),
    ],
)  # fmt: skip
def test_rule_20a_secondary_major_resection_flr_unknown_needs_volumetry(c: Case) -> None:
    a = run(c)
    flr = next(m for m in a.missing if m.fact == "flr")
    assert flr.essential and "CT volumetry" in flr.detail
    assert "CT volumetry" in note(a, "future liver remnant is unknown")
    assert a.flr_low is None and a.major_resection


@pytest.mark.parametrize(
    "c",
    [
        case("colorectal, 2 lesions, FLR 55 %",
             resectable(lesion_count=2, largest_cm=3.2, flr_percent=55.0), "resectable", "21",
             {RIGHT}, {LOCAL, "systemic-therapy"}),
        case("v2: segment VI 2 cm, FLR 18 % (v1: liver augmentation)",
             facts(flr_percent=18.0, **SEGMENT_VI), "resectable", "21", {LOCAL},
             {"ablation", "systemic-therapy"}),
        case("v2: segment VI, FLR unknown: no hemihepatectomy",
             facts(**SEGMENT_VI), "resectable", "21", {LOCAL}, {"ablation", "systemic-therapy"}),
        case("v2: segment VI, FLR 50 %: hemihepatectomy offered",
             resectable(**SEGMENT_VI), "resectable", "21", {LOCAL},
             {RIGHT, "ablation", "systemic-therapy"}),
        case("v2: segments VI and VIII (two sections), FLR 50 %",
             resectable(lesion_count=2, segment=None), "resectable", "21", {RIGHT},
             {LOCAL, "ablation", "systemic-therapy"}),
        case("v2: caudate metastasis", resectable(**CAUDATE), "resectable", "21", {LOCAL},
             {"ablation", "systemic-therapy"}),
        case("neuroendocrine, 4 lesions: no parenchyma-sparing option",
             resectable(primary_site="neuroendocrine", lesion_count=4, largest_cm=4.0),
             "resectable", "21", {RIGHT}, {"systemic-therapy"}),
    ],
)  # fmt: skip
def test_rule_21_secondary_one_sided_resectable(c: Case) -> None:
    a = run(c)
    systemic = next(o for o in a.options if o.code == "systemic-therapy")
    assert systemic.qualifier == "perioperative"


@pytest.mark.parametrize(
    "c",
    [
        *(
            case(f"{primary}, 2 lesions, FLR 50 %",
                 resectable(primary_site=primary, lesion_count=2, largest_cm=2.0),
                 "potentially-resectable", "22", {"systemic-therapy"},
                 {RIGHT, "ablation", "sbrt"})
            for primary in ("breast", "lung", "stomach", "other", "unknown")
        ),
        case("v2: breast, caudate", resectable(primary_site="breast", **CAUDATE),
             "potentially-resectable", "22", {"systemic-therapy"}, {LOCAL, "ablation", "sbrt"}),
        case("v2: breast, FLR 15 %: augmentation in place of the hemihepatectomy",
             resectable(primary_site="breast", flr_percent=15.0), "potentially-resectable",
             "22", {"systemic-therapy"}, {AUGMENT, "ablation", "sbrt"}),
    ],
)  # fmt: skip
def test_rule_22_other_primary_few_lesions(c: Case) -> None:
    run(c)


def test_rule_23_other_secondary() -> None:
    check(
        facts(primary_site="lung", distribution="bilobar", lesion_count=5, largest_cm=2.0),
        "not-resectable",
        "23",
        {"systemic-therapy"},
        {"monitoring"},
    )
    check(
        facts(primary_site="breast", lesion_count=3, extrahepatic_disease=True),
        "not-resectable",
        "23",
        {"systemic-therapy"},
        {"sbrt", "monitoring"},
    )


# --- additions after the table ---------------------------------------------------------------


def test_addition_monitoring_only_for_asymptomatic_not_resectable_secondary() -> None:
    a = decide(facts(ecog=2))
    assert [o.rule for o in a.options if o.code == "monitoring"] == ["addition:monitoring"]
    assert "monitoring" not in decide(facts(ecog=2, symptoms=frozenset({"nausea"}))).offered
    assert "monitoring" not in decide(hcc(ecog=2)).offered
    assert "monitoring" not in decide(resectable()).offered


@pytest.mark.parametrize("primary", ["pancreas", "neuroendocrine-carcinoma"])
def test_addition_monitoring_never_for_pancreas_or_nec(primary: str) -> None:
    """v2: "monitoring alone is an option" was offered for pancreatic adenocarcinoma."""
    for f in (resectable(primary_site=primary), facts(primary_site=primary, ecog=2)):
        a = decide(f)
        assert a.verdict == "not-resectable" and "monitoring" not in a.offered


def test_addition_best_supportive_care_for_symptoms() -> None:
    a = decide(facts(ecog=2, symptoms=frozenset({"nausea"})))
    bsc = [o for o in a.options if o.code == "best-supportive-care"]
    assert [(o.recommended, o.rule) for o in bsc] == [(False, "addition:best-supportive-care")]
    assert "best-supportive-care" not in decide(resectable(symptoms=frozenset({"nausea"}))).offered


def test_additions_do_not_apply_before_rule_6() -> None:
    a = decide(facts(labs=CP_C_LABS, cirrhosis=True, symptoms=frozenset({"ascites"})))
    assert a.rule == "4"
    assert [o.code for o in a.options] == ["best-supportive-care", "mdt-review"]
    assert "monitoring" not in decide(facts(ecog=3)).offered
    assert [o.code for o in decide(facts(jaundice=True)).options] == ["mdt-review"]


def test_best_supportive_care_not_repeated_when_already_offered() -> None:
    a = decide(facts(ecog=3, symptoms=frozenset({"nausea"})))
    assert [o.code for o in a.options].count("best-supportive-care") == 1


# --- resection by location (v2) --------------------------------------------------------------


def test_resection_by_location_left_surface_up_to_three_adds_local() -> None:
    rec, _ = options(decide(resectable(distribution="left", surface=True, lesion_count=3)))
    assert {LEFT, LOCAL} <= rec
    rec, off = options(
        decide(
            resectable(
                distribution="left",
                surface=True,
                lesion_count=4,
                largest_cm=2.0,
                primary_site="neuroendocrine",
            )
        )
    )
    assert LEFT in rec and LOCAL not in rec | off
    rec, off = options(
        decide(
            resectable(
                distribution="left", surface=False, lesion_count=2, primary_site="neuroendocrine"
            )
        )
    )
    assert LOCAL not in rec | off


def test_resection_by_location_colorectal_up_to_three_offers_parenchyma_sparing() -> None:
    """v2: two 2 cm lesions in VI and VIII got only a hemihepatectomy."""
    for count, offered in ((1, True), (3, True), (4, False)):
        a = decide(resectable(lesion_count=count))
        assert (LOCAL in a.offered) is offered
        if offered:
            assert LOCAL not in a.recommended


def test_resection_by_location_left_single_segment() -> None:
    f = resectable(
        distribution="left",
        single_segment=True,
        segment="III",
        single_section=True,
        section="left-lateral",
        surface=True,
    )
    rec, off = options(decide(f))
    assert LOCAL in rec and LEFT in off


def test_resection_by_location_single_section_of_two_segments() -> None:
    """v2: segments V and VIII (right anterior section) are one section, not one segment."""
    f = resectable(lesion_count=2, single_section=True, section="right-anterior")
    a = decide(f)
    assert (a.rule, a.major_resection) == ("21", False)
    rec, off = options(a)
    assert LOCAL in rec and RIGHT in off


def test_resection_by_location_is_offered_not_recommended_in_o_rows() -> None:
    _, off = options(decide(resectable(**LUNG_METS, **SEGMENT_VI)))
    assert {LOCAL, RIGHT} <= off


@pytest.mark.parametrize(
    "f",
    [
        resectable(primary_site="breast", flr_percent=15.0),
        resectable(primary_site="neuroendocrine", flr_percent=15.0, lesion_count=5, **LUNG_METS),
        hcc(flr_percent=30.0, labs=PLATELETS_120, **NOT_EXCLUDED),
    ],
)
def test_fallback_liver_augmentation_when_a_low_flr_leaves_no_resection(f: Facts) -> None:
    a = decide(f)
    assert a.verdict == "potentially-resectable"
    assert not {RIGHT, LEFT, LOCAL} & set(a.offered)
    augmentation = next(o for o in a.options if o.code == AUGMENT)
    assert (augmentation.recommended, augmentation.rule) == (False, "addition:liver-augmentation")


# --- previous liver resection (v2) -----------------------------------------------------------

AFTER_RIGHT = {"prior_liver_resection": "hemihepatectomy"}
AFTER_RIGHT |= {"prior_liver_resection_date": AT.replace(year=2024)}
AFTER_RIGHT |= {"prior_liver_resection_source": "Procedure/rhx"}
AFTER_WEDGE = {**AFTER_RIGHT, "prior_liver_resection": "other"}


@pytest.mark.parametrize(
    "c",
    [
        case("after a hemihepatectomy, rule 21: no hemihepatectomy", resectable(**AFTER_RIGHT),
             "potentially-resectable", "21", set(), {LOCAL, "ablation", "systemic-therapy"}),
        case("after a left hepatectomy, left lobe (v1: left hepatectomy R)",
             resectable(distribution="left", **AFTER_RIGHT), "potentially-resectable", "21",
             set(), {LOCAL, "ablation", "systemic-therapy"}),
        case("after a hemihepatectomy, rule 20: no augmentation",
             facts(flr_percent=15.0, **AFTER_RIGHT), "potentially-resectable", "20", set(),
             {LOCAL, "ablation", "systemic-therapy"}),
        case("after a hemihepatectomy, rule 19: local stays R, no augmentation",
             facts(distribution="bilobar", lesion_count=4, largest_cm=2.0, flr_percent=15.0,
                   **AFTER_RIGHT),
             "potentially-resectable", "19", {LOCAL}, {"ablation", "systemic-therapy"}),
        case("after a hemihepatectomy, segment VI: sectionectomy R",
             resectable(**SEGMENT_VI, **AFTER_RIGHT), "potentially-resectable", "21", {LOCAL},
             {"ablation", "systemic-therapy"}),
        case("after a hemihepatectomy, NET with 4 lesions: local resection added",
             resectable(primary_site="neuroendocrine", lesion_count=4, largest_cm=4.0,
                        **AFTER_RIGHT),
             "potentially-resectable", "21", set(), {LOCAL, "systemic-therapy"}),
        case("after a wedge resection, FLR 50 %: hemihepatectomy only o",
             resectable(**AFTER_WEDGE), "potentially-resectable", "21", set(),
             {RIGHT, LOCAL, "ablation", "systemic-therapy"}),
        case("after a wedge resection, FLR unknown (20a): no hemihepatectomy",
             facts(**AFTER_WEDGE), "potentially-resectable", "20a", set(),
             {LOCAL, "ablation", "systemic-therapy"}),
        case("after a wedge resection, FLR 15 % (20): augmentation stays, no hemihepatectomy",
             facts(flr_percent=15.0, **AFTER_WEDGE), "potentially-resectable", "20", {AUGMENT},
             {LOCAL, "ablation", "systemic-therapy"}),
        case("hcc after a hemihepatectomy, rule 14", hcc(flr_percent=50.0, **AFTER_RIGHT),
             "potentially-resectable", "14", set(),
             {LOCAL, "ablation", "transplant-evaluation", "tace"}),
        case("after a hemihepatectomy, fallback augmentation removed (rule 22)",
             resectable(primary_site="breast", flr_percent=15.0, **AFTER_RIGHT),
             "potentially-resectable", "22", {"systemic-therapy"}, {LOCAL, "ablation", "sbrt"}),
        case("no resection offered: the row is unchanged (16a)",
             resectable(**BONE_METS, **AFTER_RIGHT), "not-resectable", "16a",
             {"systemic-therapy"}, {"monitoring"}),
    ],
)  # fmt: skip
def test_previous_liver_resection_modifier_applied_last(c: Case) -> None:
    a = run(c)
    assert "previous-liver-resection" in a.risk_modifiers
    if a.rule == "16a":
        assert not any("Previous liver resection" in n for n in a.notes)
        return
    text = note(a, "Previous liver resection")
    assert "2024-06-01" in text and "Procedure/rhx" in text
    assert "volumetry and MDT review first" in text
    added = [o.rule for o in a.options if o.code == LOCAL]
    assert added in ([c.rule], ["addition:previous-liver-resection"])


def test_previous_liver_resection_without_a_date() -> None:
    a = decide(resectable(prior_liver_resection="other"))
    assert "date not recorded" in note(a, "Previous liver resection")


# --- order, notes, missing, assessment fields ------------------------------------------------


def test_options_recommended_first_in_table_order_mdt_last_of_recommended() -> None:
    a = decide(hcc(distribution="bilobar", lesion_count=3, largest_cm=4.0))
    assert [o.code for o in a.options] == [
        "tace",
        "mdt-review",
        "haic",
        "tare",
        "transplant-evaluation",
        "systemic-therapy",
    ]


def test_both_hcc_and_secondary_note() -> None:
    a = decide(hcc(hcc_and_secondary_found=True, liver_kinds=frozenset({"hcc", "secondary"})))
    assert any("Both hepatocellular carcinoma and liver metastases" in n for n in a.notes)


def test_c22_9_read_as_secondary_says_so() -> None:
    a = decide(resectable(liver_code_unstated=True))
    assert "C22.9" in note(a, "read as a metastasis")
    assert "(colorectal)" in note(a, "read as a metastasis")
    assert not any("C22.9" in n for n in decide(resectable()).notes)


def test_would_refine_flr_before_a_hemihepatectomy_offered_only() -> None:
    a = decide(resectable(**LUNG_METS, flr_percent=None))
    assert (a.rule, missing(a)) == ("16", {"flr": False})
    assert decide(resectable()).missing == ()


def test_procedures_not_checked_changes_nothing_else() -> None:
    # fhir-mapping §7: without Procedures the card says previous liver surgery could not be
    # checked, "and nothing else changes": same verdict and options, no data-needed item.
    a = decide(resectable(procedures_checked=False))
    b = decide(resectable())
    assert missing(a) == missing(b) == {}
    assert (a.verdict, a.options) == (b.verdict, b.options) == ("resectable", b.options)


def test_portal_hypertension_unknown_would_refine_for_unspecified_tumour() -> None:
    a = decide(facts(tumour_kind="unspecified", primary_site=None, portal_hypertension="unknown"))
    assert missing(a)["portal-hypertension"] is False


def test_stale_lab_reported_with_its_date() -> None:
    old = facts().evaluated_at.replace(month=1)
    labs = {k: v for k, v in NORMAL_LABS.items() if k != "albumin"}
    a = decide(facts(labs=labs, stale={"albumin": old}))
    cp = next(m for m in a.missing if m.fact == "child-pugh")
    assert cp.essential and cp.stale_since == old and "albumin" in cp.detail


def test_flr_low_and_major_resection_fields() -> None:
    assert (decide(resectable()).flr_low, decide(resectable()).major_resection) == (False, True)
    assert decide(facts(flr_percent=10.0, **SEGMENT_VI)).flr_low is True
    assert decide(facts(**SEGMENT_VI)).major_resection is False
    assert decide(facts(**CAUDATE)).major_resection is False
    assert decide(facts(distribution="bilobar", lesion_count=4)).major_resection is False


def test_risk_modifiers_v2() -> None:
    a = decide(hcc(cirrhosis=True, portal_hypertension="not-excluded", flr_percent=50.0))
    assert a.risk_modifiers == {"cirrhosis"}
    a = decide(hcc(cirrhosis=True, portal_hypertension="suspected", jaundice=True))
    assert {"cirrhosis", "portal-hypertension", "jaundice"} <= a.risk_modifiers


def test_thresholds_come_from_the_settings_object() -> None:
    f = resectable(
        distribution="left", surface=True, lesion_count=4, largest_cm=2.0, primary_site="breast"
    )
    assert decide(f).rule == "23"
    f = resectable(
        distribution="left",
        surface=True,
        lesion_count=4,
        largest_cm=2.0,
        primary_site="neuroendocrine",
    )
    assert LOCAL not in decide(f).offered
    assert LOCAL in decide(f, Thresholds(left_surface_local_max_lesions=4)).offered
    bilobar = facts(distribution="bilobar", lesion_count=12, flr_percent=50.0)
    assert decide(bilobar).rule == "19a"
    assert decide(bilobar, Thresholds(colorectal_bilobar_max_lesions=12)).rule == "19"


def test_docs_rules_md_lists_every_rule_of_this_rule_set() -> None:
    """docs/rules.md documents the rules as implemented: the version and one row per rule."""
    text = (Path(__file__).parents[2] / "docs" / "rules.md").read_text(encoding="utf-8")
    assert f"rule set {RULE_SET_VERSION}" in text.splitlines()[0]
    rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]
    table = [r for r in rows if r in {n for n, _ in RULES}]
    assert table == [n for n, _ in RULES]


@pytest.mark.parametrize(
    ("f", "rule"),
    [
        (hcc(lesion_count=2, largest_cm=3.0, flr_percent=50.0), "14"),  # 2 nodules <= 3 cm: A
        (hcc(lesion_count=2, largest_cm=3.1, flr_percent=50.0), "12a"),  # one above 3 cm: B
        (hcc(lesion_count=3, largest_cm=2.0, flr_percent=50.0), "14"),
        (hcc(lesion_count=4, largest_cm=1.0, flr_percent=50.0), "12a"),  # more than 3: B
        (hcc(lesion_count=1, largest_cm=9.0, flr_percent=50.0), "14"),  # single: never B burden
        (hcc(lesion_count=3, largest_cm=2.0, bilirubin_above_normal=True), "10"),
        (hcc(lesion_count=4, largest_cm=2.0, bilirubin_above_normal=True), "12a"),
    ],
    ids=["2x3.0", "2x3.1", "3x2.0", "4x1.0", "1x9.0", "10: 3 lesions", "10: 4 lesions"],
)
def test_boundary_bclc_b_burden_and_rule_10_count(f: Facts, rule: str) -> None:
    assert decide(f).rule == rule


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"flr_percent": 20.0}, "21"),  # boundary: not below the threshold
        ({"flr_percent": 19.9}, "20"),
        ({"flr_percent": 40.0, "cirrhosis": True}, "21"),
        ({"flr_percent": 39.9, "cirrhosis": True}, "20"),
        ({"flr_percent": 39.9, "labs": CP_B_LAB_ONLY}, "20"),  # Child-Pugh B: 40 %
        ({"flr_percent": 39.9}, "21"),
    ],
    ids=["20.0", "19.9", "40.0 cirrhosis", "39.9 cirrhosis", "39.9 CP B", "39.9"],
)
def test_boundary_flr_threshold(changes: dict[str, Any], rule: str) -> None:
    assert decide(resectable(**changes)).rule == rule
