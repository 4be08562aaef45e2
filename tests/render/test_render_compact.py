"""The compact assessment card (issue 14) says what cards.md v2 asks a surgeon to read,
checked on hand-built v2 assessments."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from render import render_builders as b
from service.clinical.model import (
    OPTION_CODES,
    Assessment,
    Measurement,
    MissingItem,
    OfferedOption,
    Score,
)
from service.render.cards import render_cards
from service.render.compact import MAX_CHARS, MAX_LINES
from service.render.content import load_content

RESECTION_DAY = datetime(2024, 3, 2, tzinfo=UTC)


def cards(assessment: Assessment) -> list[dict[str, Any]]:
    return render_cards(assessment, b.context())


def detail(assessment: Assessment) -> str:
    return cards(assessment)[0]["detail"]


def hcc_right_no_flr(**overrides: Any) -> Assessment:
    """Rule 13a: HCC in the right lobe needing a right hepatectomy, FLR not measured."""
    base: dict[str, Any] = {
        "tumour_kind": "hcc",
        "primary_site": None,
        "cirrhosis": True,
        "portal_hypertension": "absent",
        "portal_hypertension_basis": "platelets",
        "labs": {
            "platelets": Measurement(180, "10^9/L", b.LAB_DAY, "Observation/plt-1"),
            "afp": Measurement(12, "ng/mL", b.LAB_DAY, "Observation/afp-1"),
        },
        "imaging_date": b.IMAGING_DAY,
        "verdict": "potentially-resectable",
        "rule": "13a",
        "major_resection": True,
        "options": (
            OfferedOption("mdt-review", True, rule="13a"),
            OfferedOption("resection-right-hepatectomy", False, rule="13a"),
            OfferedOption("ablation", False, rule="13a"),
            OfferedOption("tace", False, rule="13a"),
            OfferedOption("systemic-therapy", False, rule="13a"),
        ),
        "missing": (MissingItem("flr", True),),
    }
    base.update(overrides)
    return b.colorectal_right(**base)


# --- the verdict, facts and options ---------------------------------------------------------


def test_the_card_states_verdict_rule_facts_options_not_assessed_and_missing_in_order() -> None:
    text = detail(hcc_right_no_flr())
    assert text.startswith("**Potentially resectable** (rule 13a): ")
    order = [
        "- Where: right (segments VI, VII); 2 lesions, largest 2.4 cm; latest imaging 2026-10-14",
        "- Liver and fitness: Child-Pugh A (5 points); ECOG 0",
        "- Future liver remnant not measured: CT volumetry is needed before a hemihepatectomy",
        "- Recorded: cirrhosis. Not recorded: extrahepatic disease, macrovascular invasion. "
        "Portal hypertension: not suspected (cirrhosis with platelets 150 x10^9/L or more); "
        "platelets 180 10^9/L (2026-10-20).",
        "- AFP 12 ng/mL (2026-10-20)",
        "- No previous liver resection recorded",
        "**Options (recommended first)**",
        "- Not assessed by this service: resection margins, involvement of named vessels and "
        "bile ducts, the future liver remnant (not measured).",
        "- Missing or out of date: FLR (see the data-needed card).",
        "Liver CDS resectability rules v2026.12.",
    ]
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions)


def test_options_carry_their_leading_risk_and_mdt_review_none() -> None:
    text = detail(b.colorectal_right())
    assert (
        "1. Right hepatectomy (recommended). Risk: Bleeding, bile leak, and liver failure" in text
    )
    assert "2. Liver MDT review (recommended)\n" in text
    assert "Systemic therapy, perioperative (may be considered). Risk: Oxaliplatin and " in text


def test_systemic_therapy_risks_follow_the_tumour_kind() -> None:
    hcc = detail(hcc_right_no_flr(risk_modifiers=frozenset()))
    assert "immune-related hepatitis, colitis and thyroid disease" in hcc
    assert "anti-VEGF drugs: bleeding and high blood pressure" in hcc
    assert "xaliplatin" not in hcc  # never the colorectal liver-injury line for HCC
    colorectal = detail(b.colorectal_right())
    assert "xaliplatin and irinotecan can injure the liver" in colorectal
    assert "immune-related" not in colorectal
    breast = detail(b.colorectal_right(primary_site="breast"))
    assert "xaliplatin" not in breast and "immune-related" not in breast


def test_a_patient_specific_modifier_leads_the_option_risk() -> None:
    text = detail(b.colorectal_right(risk_modifiers=frozenset({"abnormal-liver-tests"})))
    assert (
        "Right hepatectomy (recommended). For this patient: Abnormal liver tests without "
        "cirrhosis (for example after chemotherapy or with anticoagulation): liver function to "
        "be explained before surgery."
    ) in text


def test_a_low_flr_never_asks_to_grow_the_remnant_before_a_local_resection() -> None:
    """clinical-rules.md §2 (v2): a segmentectomy or sectionectomy is never held back by the
    FLR, and cards.md v2: no "consider liver augmentation" for a segmentectomy. A single
    segment VI metastasis with an FLR of 15 % (rule 21, local resection recommended)."""
    text = detail(
        b.colorectal_right(
            options=(
                OfferedOption("resection-local", True, rule="21"),
                OfferedOption("mdt-review", True, rule="21"),
            ),
            risk_modifiers=frozenset({"low-flr"}),
        )
    )
    assert "1. Local resection (recommended). Risk: Bleeding, bile leak" in text
    assert "grown first" not in text


def test_findings_the_verdict_relied_on_are_stated_as_not_recorded() -> None:
    text = detail(b.colorectal_right())
    assert "- Not recorded: extrahepatic disease, cirrhosis, macrovascular invasion." in text
    assert (
        "Portal hypertension: not suspected (no cirrhosis, portal hypertension or ascites" in text
    )
    lung = detail(
        b.colorectal_right(
            verdict="potentially-resectable",
            rule="16",
            extrahepatic_disease=True,
            extrahepatic_limited=True,
            extrahepatic_sites=frozenset({"lung", "lymph-node"}),
        )
    )
    assert "- Recorded: extrahepatic disease (lung, lymph nodes). Not recorded: cirrhosis" in lung


def test_portal_hypertension_says_how_it_was_judged() -> None:
    judged = {
        ("present", "condition"): "present (recorded portal hypertension or varices)",
        ("present", "ascites"): "present (ascites with cirrhosis or HCC)",
        ("suspected", "platelets"): "suspected (cirrhosis with platelets below 100 x10^9/L)",
        ("not-excluded", "platelets"): "not excluded (cirrhosis with platelets 100 to 149",
        ("unknown", "unknown"): "unknown (cirrhosis and no platelet count in the lookback",
    }
    for (state, basis), expected in judged.items():
        text = detail(hcc_right_no_flr(portal_hypertension=state, portal_hypertension_basis=basis))
        assert f"Portal hypertension: {expected}" in text, (state, basis)


def test_previous_liver_resection_is_named_with_its_date() -> None:
    text = detail(
        b.colorectal_right(
            verdict="potentially-resectable",
            prior_liver_resection="hemihepatectomy",
            prior_liver_resection_date=RESECTION_DAY,
            prior_liver_resection_source="Procedure/left-hep-1",
        )
    )
    assert (
        "- Previous liver resection: hemihepatectomy (right or left hepatectomy or larger) on "
        "2024-03-02 (Procedure/left-hep-1). Repeat hepatectomy: volumetry and MDT review first"
    ) in text


def test_a_resection_made_potentially_resectable_by_a_previous_one_says_why() -> None:
    card = cards(
        b.colorectal_right(
            verdict="potentially-resectable",
            prior_liver_resection="hemihepatectomy",
            notes=("Previous liver resection: a hemihepatectomy. Repeat hepatectomy: ...",),
            options=(
                OfferedOption("mdt-review", True, rule="21"),
                OfferedOption("resection-local", False, rule="addition:previous-resection"),
            ),
        )
    )[0]
    assert card["summary"] == (
        "Colorectal liver metastases confined to right lobe: potentially resectable (previous "
        "resection); consider local resection"
    )
    assert card["detail"].count("Previous liver resection") == 1  # the engine note not repeated


def test_unchecked_procedures_are_said_when_surgery_is_in_view() -> None:
    text = detail(b.colorectal_right(procedures_checked=False))
    assert "- Previous liver surgery could not be checked (no procedure data)" in text
    not_surgical = detail(b.hcc_cirrhosis_child_b(procedures_checked=False))
    assert "could not be checked" not in not_surgical


def test_out_of_date_imaging_is_named_with_its_date() -> None:
    stale = datetime(2026, 2, 1, tzinfo=UTC)
    text = detail(
        b.colorectal_right(
            lesion_count=None,
            largest_cm=None,
            imaging_date=None,
            stale={"lesion_count": stale, "largest_cm": stale},
            verdict="indeterminate",
            rule="5",
            options=(OfferedOption("mdt-review", True, rule="5"),),
            missing=(MissingItem("lesion-count", True, stale_since=stale),),
        )
    )
    assert "- Where: right (segments VI, VII); latest imaging 2026-02-01, out of date" in text


def test_bilirubin_above_normal_and_jaundice_are_named_with_the_limit() -> None:
    text = detail(
        b.colorectal_right(
            verdict="indeterminate",
            rule="4a",
            options=(OfferedOption("mdt-review", True, rule="4a"),),
            labs={"bilirubin": Measurement(2.9, "mg/dL", b.LAB_DAY, "Observation/bili-9")},
            bilirubin_above_normal=True,
            bilirubin_uln=Measurement(1.2, "mg/dL", None, "Observation/bili-9"),
            jaundice=True,
        )
    )
    assert (
        "bilirubin 2.9 mg/dL (2026-10-20), above normal (upper limit 1.2 mg/dL); jaundice" in text
    )
    assert "Not assessed" not in text  # indeterminate: nothing was assessed for surgery


def test_the_unspecified_liver_code_is_named_for_rule_1a() -> None:
    assessment = b.colorectal_right(
        tumour_kind="unspecified",
        primary_site=None,
        unspecified_codes=("C22.9",),
        verdict="indeterminate",
        rule="1a",
        options=(OfferedOption("mdt-review", True, rule="1a"),),
        missing=(MissingItem("tumour-type", True, detail="C22.9"),),
    )
    assessment_card, data = cards(assessment)
    assert (
        "- Liver code C22.9 found: it does not say whether the tumour is a primary"
        in (assessment_card["detail"])
    )
    assert "- Where:" not in assessment_card["detail"]  # nothing assessed before the type
    assert "C22.9" in data["detail"]
    assert data["suggestions"][0]["label"] == (
        "Propose confirmation of the tumour type (biopsy or MDT imaging review)"
    )


# --- summaries never contradict the options -------------------------------------------------


def test_a_caudate_lesion_with_local_resection_is_not_called_not_resectable() -> None:
    content = load_content()
    caudate = cards(
        b.colorectal_right(
            tumour_kind="hcc",
            distribution="caudate",
            single_segment=True,
            segment="I",
            single_section=True,
            section="caudate",
            rule="14",
            options=(
                OfferedOption("resection-local", True, rule="14"),
                OfferedOption("mdt-review", True, rule="14"),
            ),
        )
    )[0]
    assert (
        caudate["summary"]
        == "HCC confined to segment I: may be removable by local resection (Child-Pugh A)"
    )
    assert "not resectable" not in caudate["summary"].lower()
    assert content.distributions["caudate"] == "in the caudate lobe"


def test_a_single_section_summary_names_the_section_and_the_local_resection() -> None:
    card = cards(
        b.colorectal_right(
            single_section=True,
            section="right-posterior",
            options=(
                OfferedOption("resection-local", True, rule="21"),
                OfferedOption("mdt-review", True, rule="21"),
                OfferedOption("resection-right-hepatectomy", False, rule="21"),
            ),
        )
    )[0]
    assert card["summary"] == (
        "Colorectal liver metastases in segments VI and VII: may be removable by local "
        "resection (Child-Pugh A)"
    )
    assert "augmentation" not in card["summary"]


# --- the budget ------------------------------------------------------------------------------


def test_the_worst_case_still_fits_the_budget() -> None:
    """Every option offered, long notes, many assumptions, every missing item: the options
    that are only "may be considered" collapse onto one line; the card still fits."""
    everything = b.hcc_cirrhosis_child_b(
        options=tuple(OfferedOption(code, code == "tace", rule="12") for code in OPTION_CODES),
        notes=tuple(f"A long engine note number {n} " + "x" * 300 for n in range(6)),
        heuristics=("transmet_like", "other_heuristic"),
        assumptions=tuple(f"Assumption {n}" for n in range(40)),
        missing=tuple(MissingItem(fact, True) for fact in load_content().missing),
        risk_modifiers=frozenset({"cirrhosis", "child-pugh-b", "ascites", "jaundice"}),
        prior_liver_resection="other",
        prior_liver_resection_date=RESECTION_DAY,
        scores=b.scores(child_pugh=Score("Child-Pugh", 9, "B")),
    )
    text = detail(everything)
    assert text.count("\n") + 1 <= MAX_LINES, text
    assert len(text) <= MAX_CHARS, len(text)
    assert "Also may be considered: " in text
    assert "1. TACE (recommended)" in text
    assert "Assumed: Assumption 0; and 39 more" in text or "Assumed" not in text
