"""The decision table of clinical-rules.md §3, one test per row and per addition.

Each test builds the smallest facts that reach its row (the defaults of ``builders.facts``
describe a resectable right-lobe colorectal metastasis) and checks the verdict, the deciding
rule and the options exactly: R = recommended, o = offered, anything else not offered.
"""

from __future__ import annotations

from service.clinical.model import Assessment, Facts
from service.clinical.rules import RULES, decide
from service.clinical.thresholds import Thresholds

from .builders import CP_B_LABS, CP_C_LABS, NORMAL_LABS, facts, hcc


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


def test_rules_are_listed_in_the_spec_order_and_findable_by_number() -> None:
    assert [n for n, _ in RULES] == [str(i) for i in range(24)]
    assert all(fn.__name__ == f"rule_{n}" for n, fn in RULES)


# --- rules 0-5 -------------------------------------------------------------------------------


def test_rule_0_no_liver_malignancy_no_cards() -> None:
    a = check(facts(tumour_kind=None, liver_kinds=frozenset()), None, "0", set(), set())
    assert a.options == () and not a.has_cards


def test_rule_1_unconfirmed_is_indeterminate_and_asks_for_confirmation() -> None:
    a = check(facts(confirmed=False), "indeterminate", "1", set(), set())
    assert a.missing[0].fact == "diagnosis-confirmation" and a.missing[0].essential


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


def test_rule_3_ecog_3_best_supportive_care() -> None:
    check(facts(ecog=3), "not-resectable", "3", {"best-supportive-care"}, {"systemic-therapy"})


def test_rule_3_decides_before_missing_essentials() -> None:
    a = check(
        facts(ecog=4, distribution="unknown", lesion_count=None, labs={}),
        "not-resectable",
        "3",
        {"best-supportive-care"},
        {"systemic-therapy"},
    )
    assert {m.fact for m in a.missing} >= {"distribution", "lesion-count", "child-pugh"}


def test_rule_4_child_pugh_c_secondary_best_supportive_care() -> None:
    check(facts(labs=CP_C_LABS), "not-resectable", "4", {"best-supportive-care"}, set())


def test_rule_4_child_pugh_c_hcc_within_milan_transplant() -> None:
    check(
        hcc(labs=CP_C_LABS, lesion_count=1, largest_cm=4.0),
        "not-resectable",
        "4",
        {"transplant-evaluation"},
        set(),
    )


def test_rule_4_child_pugh_c_hcc_outside_milan_best_supportive_care() -> None:
    check(
        hcc(labs=CP_C_LABS, lesion_count=1, largest_cm=6.0),
        "not-resectable",
        "4",
        {"best-supportive-care"},
        set(),
    )


def test_rule_5_each_essential_fact_makes_it_indeterminate() -> None:
    for changed in (
        {"distribution": "unknown"},
        {"lesion_count": None},
        {"ecog": None},
        {"labs": {k: v for k, v in NORMAL_LABS.items() if k != "inr"}},
    ):
        a = check(facts(**changed), "indeterminate", "5", set(), set())
        assert any(m.essential for m in a.missing)


def test_rule_5_size_is_essential_for_hcc_only() -> None:
    check(hcc(largest_cm=None), "indeterminate", "5", set(), set())
    a = decide(facts(largest_cm=None))
    assert a.rule == "21"
    assert [(m.fact, m.essential) for m in a.missing if m.fact == "largest-size"] == [
        ("largest-size", False)
    ]


# --- rules 6-14 --------------------------------------------------------------------------------


def test_rule_6_ecog_2() -> None:
    check(
        facts(ecog=2),
        "not-resectable",
        "6",
        {"systemic-therapy"},
        {"ablation", "sbrt", "monitoring"},
    )
    check(
        facts(ecog=2, largest_cm=4.0),
        "not-resectable",
        "6",
        {"systemic-therapy"},
        {"sbrt", "monitoring"},
    )


def test_rule_7_pancreas_primary() -> None:
    check(
        facts(primary_site="pancreas"), "not-resectable", "7", {"systemic-therapy"}, {"monitoring"}
    )


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


def test_rule_10_hcc_portal_hypertension_present_or_suspected() -> None:
    check(
        hcc(portal_hypertension="present", largest_cm=2.8),
        "not-resectable",
        "10",
        {"transplant-evaluation", "ablation"},
        {"tace"},
    )
    check(
        hcc(portal_hypertension="suspected", cirrhosis=True, largest_cm=4.5),
        "not-resectable",
        "10",
        {"transplant-evaluation"},
        {"tace"},
    )


def test_rule_11_hcc_diffuse() -> None:
    check(
        hcc(distribution="diffuse", lesion_count=15, largest_cm=5.0),
        "not-resectable",
        "11",
        {"systemic-therapy"},
        {"haic", "tare"},
    )


def test_rule_12_hcc_bilobar_within_milan() -> None:
    check(
        hcc(distribution="bilobar", lesion_count=2, largest_cm=3.0),
        "not-resectable",
        "12",
        {"tace", "transplant-evaluation"},
        {"haic", "tare", "ablation", "systemic-therapy"},
    )


def test_rule_12_hcc_bilobar_up_to_seven_only() -> None:
    check(
        hcc(distribution="bilobar", lesion_count=3, largest_cm=4.0),
        "not-resectable",
        "12",
        {"tace"},
        {"haic", "tare", "transplant-evaluation", "systemic-therapy"},
    )
    check(
        hcc(distribution="bilobar", lesion_count=3, largest_cm=4.5),
        "not-resectable",
        "12",
        {"tace"},
        {"haic", "tare", "systemic-therapy"},
    )


def test_rule_13_hcc_low_flr() -> None:
    a = check(
        hcc(flr_percent=18.0, largest_cm=7.0),
        "potentially-resectable",
        "13",
        {"liver-augmentation"},
        {"resection-right-hepatectomy", "tace"},
    )
    assert a.flr_threshold == 20.0 and "low-flr" in a.risk_modifiers


def test_rule_13_flr_threshold_is_40_with_cirrhosis() -> None:
    a = check(
        hcc(flr_percent=35.0, cirrhosis=True, distribution="left"),
        "potentially-resectable",
        "13",
        {"liver-augmentation"},
        {"resection-left-hepatectomy", "tace", "transplant-evaluation"},
    )
    assert a.flr_threshold == 40.0
    assert decide(hcc(flr_percent=35.0)).rule == "14"


def test_rule_14_hcc_resectable() -> None:
    a = check(
        hcc(largest_cm=2.5),
        "resectable",
        "14",
        {"resection-right-hepatectomy"},
        {"ablation", "transplant-evaluation", "tace"},
    )
    assert [m.fact for m in a.missing] == ["flr"] and not a.missing[0].essential


# --- rules 15-23 -------------------------------------------------------------------------------


def test_rule_15_secondary_child_pugh_b() -> None:
    check(
        facts(labs=CP_B_LABS),
        "not-resectable",
        "15",
        {"systemic-therapy"},
        {"ablation", "sbrt", "monitoring"},
    )


def test_rule_16_colorectal_or_net_with_extrahepatic_disease() -> None:
    for primary in ("colorectal", "neuroendocrine"):
        check(
            facts(primary_site=primary, extrahepatic_disease=True),
            "potentially-resectable",
            "16",
            {"systemic-therapy"},
            {"resection-right-hepatectomy", "ablation"},
        )


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


def test_rule_19_colorectal_bilobar() -> None:
    check(
        facts(distribution="bilobar", lesion_count=3, largest_cm=2.0, flr_percent=35.0),
        "potentially-resectable",
        "19",
        {"resection-local"},
        {"liver-augmentation", "ablation", "systemic-therapy"},
    )
    check(
        facts(distribution="bilobar", lesion_count=6, largest_cm=4.2, flr_percent=15.0),
        "potentially-resectable",
        "19",
        {"resection-local", "liver-augmentation"},
        {"systemic-therapy"},
    )


def test_rule_19_neuroendocrine_bilobar_debulking() -> None:
    a = check(
        facts(primary_site="neuroendocrine", distribution="bilobar", lesion_count=4),
        "potentially-resectable",
        "19",
        {"systemic-therapy"},
        {"resection-local", "tace", "tare"},
    )
    local = next(o for o in a.options if o.code == "resection-local")
    assert local.qualifier == "debulking"


def test_rule_20_colorectal_low_flr() -> None:
    check(
        facts(flr_percent=17.0, lesion_count=3, largest_cm=5.5),
        "potentially-resectable",
        "20",
        {"liver-augmentation"},
        {"resection-right-hepatectomy", "systemic-therapy"},
    )


def test_rule_21_colorectal_resectable() -> None:
    a = check(
        facts(lesion_count=2, largest_cm=3.2, flr_percent=55.0),
        "resectable",
        "21",
        {"resection-right-hepatectomy"},
        {"systemic-therapy"},
    )
    systemic = next(o for o in a.options if o.code == "systemic-therapy")
    assert systemic.qualifier == "perioperative"


def test_rule_22_other_primary_few_lesions() -> None:
    for primary in ("breast", "lung", "stomach", "other", "unknown"):
        check(
            facts(primary_site=primary, lesion_count=2, largest_cm=2.0),
            "potentially-resectable",
            "22",
            {"systemic-therapy"},
            {"resection-right-hepatectomy", "ablation", "sbrt"},
        )


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


# --- additions after the table -----------------------------------------------------------------


def test_addition_monitoring_only_for_asymptomatic_not_resectable_secondary() -> None:
    a = decide(facts(ecog=2))
    assert [o.rule for o in a.options if o.code == "monitoring"] == ["addition:monitoring"]
    assert "monitoring" not in decide(facts(ecog=2, symptoms=frozenset({"nausea"}))).offered
    assert "monitoring" not in decide(hcc(ecog=2)).offered
    assert "monitoring" not in decide(facts()).offered  # resectable


def test_addition_best_supportive_care_for_symptoms() -> None:
    a = decide(facts(ecog=2, symptoms=frozenset({"jaundice"})))
    bsc = [o for o in a.options if o.code == "best-supportive-care"]
    assert [(o.recommended, o.rule) for o in bsc] == [(False, "addition:best-supportive-care")]
    assert "best-supportive-care" not in decide(facts(symptoms=frozenset({"jaundice"}))).offered


def test_additions_do_not_apply_before_rule_6() -> None:
    a = decide(facts(labs=CP_C_LABS, symptoms=frozenset({"ascites"})))
    assert a.rule == "4"
    assert [o.code for o in a.options] == ["best-supportive-care", "mdt-review"]
    assert "monitoring" not in decide(facts(ecog=3)).offered


def test_best_supportive_care_not_repeated_when_already_offered() -> None:
    a = decide(facts(ecog=3, symptoms=frozenset({"nausea"})))
    assert [o.code for o in a.options].count("best-supportive-care") == 1


# --- resection by location -------------------------------------------------------------------


def test_resection_by_location_single_segment_prefers_local() -> None:
    rec, off = options(decide(facts(single_segment=True, segment="VI")))
    assert "resection-local" in rec and "resection-right-hepatectomy" in off


def test_resection_by_location_left_surface_up_to_three_adds_local() -> None:
    rec, _ = options(decide(facts(distribution="left", surface=True, lesion_count=3)))
    assert {"resection-left-hepatectomy", "resection-local"} <= rec
    rec, off = options(
        decide(facts(distribution="left", surface=True, lesion_count=4, largest_cm=2.0))
    )
    assert "resection-left-hepatectomy" in rec and "resection-local" not in rec | off
    rec, off = options(decide(facts(distribution="left", surface=False, lesion_count=2)))
    assert "resection-local" not in rec | off


def test_resection_by_location_left_single_segment() -> None:
    rec, off = options(
        decide(
            facts(
                distribution="left",
                single_segment=True,
                segment="III",
                surface=True,
                lesion_count=1,
            )
        )
    )
    assert "resection-local" in rec and "resection-left-hepatectomy" in off


def test_resection_by_location_is_offered_not_recommended_in_o_rows() -> None:
    _, off = options(decide(facts(extrahepatic_disease=True, single_segment=True, segment="VI")))
    assert {"resection-local", "resection-right-hepatectomy"} <= off


# --- order, notes, missing -----------------------------------------------------------------------


def test_options_recommended_first_in_table_order_mdt_last_of_recommended() -> None:
    a = decide(hcc(distribution="bilobar", lesion_count=2, largest_cm=3.0))
    assert [o.code for o in a.options] == [
        "tace",
        "transplant-evaluation",
        "mdt-review",
        "haic",
        "tare",
        "ablation",
        "systemic-therapy",
    ]


def test_both_hcc_and_secondary_note() -> None:
    a = decide(hcc(hcc_and_secondary_found=True, liver_kinds=frozenset({"hcc", "secondary"})))
    assert any("Both hepatocellular carcinoma and liver metastases" in n for n in a.notes)


def test_would_refine_flr_before_a_hemihepatectomy() -> None:
    a = decide(facts())
    assert [(m.fact, m.essential) for m in a.missing] == [("flr", False)]
    assert decide(facts(flr_percent=50.0)).missing == ()


def test_stale_lab_reported_with_its_date() -> None:
    old = facts().evaluated_at.replace(month=1)
    labs = {k: v for k, v in NORMAL_LABS.items() if k != "albumin"}
    a = decide(facts(labs=labs, stale={"albumin": old}))
    cp = next(m for m in a.missing if m.fact == "child-pugh")
    assert cp.essential and cp.stale_since == old and "albumin" in cp.detail


def test_thresholds_come_from_the_settings_object() -> None:
    f = facts(distribution="left", surface=True, lesion_count=4, largest_cm=2.0)
    assert "resection-local" not in decide(f).offered
    assert "resection-local" in decide(f, Thresholds(left_surface_local_max_lesions=4)).offered
