"""render_cards follows shared/spec/cards.md, checked on hand-built assessments."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest

from render import render_builders as b
from service.clinical.model import (
    Assessment,
    DataQualityNote,
    Evidence,
    MissingItem,
    OfferedOption,
)
from service.render.cards import full_detail, render_cards
from service.render.content import load_content

TOPIC = "https://liver-cds.org/fhir/CodeSystem/card-topic"
OPTION = "https://liver-cds.org/fhir/CodeSystem/treatment-option"
DATA_REQUEST = "https://liver-cds.org/fhir/CodeSystem/data-request"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def render(assessment: Assessment, **context: Any) -> list[dict[str, Any]]:
    return render_cards(assessment, b.context(**context))


def full(assessment: Assessment) -> str:
    """The full detail (the full view's text: scores, every risk, sources)."""
    return full_detail(load_content(), assessment)


def by_topic(cards: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {card["source"]["topic"]["code"]: card for card in cards}


# --- which cards ----------------------------------------------------------------------------


def test_no_liver_malignancy_gives_no_cards() -> None:
    assert render(b.no_malignancy()) == []


def test_a_verdict_without_missing_data_gives_exactly_one_assessment_card() -> None:
    cards = render(b.colorectal_right())
    assert [c["source"]["topic"]["code"] for c in cards] == ["resectable"]


def test_missing_or_stale_data_adds_one_data_needed_card() -> None:
    cards = render(b.indeterminate_missing())
    assert [c["source"]["topic"]["code"] for c in cards] == ["indeterminate", "data-needed"]
    only_stale = b.colorectal_right(missing=(MissingItem("ecog", True, stale_since=b.LAB_DAY),))
    assert len(render(only_stale)) == 2


@pytest.mark.parametrize(
    ("verdict", "indicator"),
    [
        ("resectable", "info"),
        ("potentially-resectable", "info"),
        ("not-resectable", "warning"),
        ("indeterminate", "info"),
    ],
)
def test_indicator_and_topic_follow_the_verdict(verdict: str, indicator: str) -> None:
    card = render(b.colorectal_right(verdict=verdict))[0]
    assert card["indicator"] == indicator
    topic = card["source"]["topic"]
    assert topic["system"] == TOPIC and topic["code"] == verdict and topic["display"]


def test_source_label_names_the_service_and_rule_set_version() -> None:
    card = render(b.hcc_cirrhosis_child_b())[0]
    content = load_content()
    assert card["source"]["label"] == f"Liver CDS resectability rules v{content.version}"
    # the deciding rule 9 is an hcc rule cited by BCLC 2022, which has a DOI
    assert card["source"]["url"] == "https://doi.org/10.1016/j.jhep.2021.11.018"


def test_every_card_and_suggestion_gets_a_fresh_uuid_from_the_context() -> None:
    cards = render(b.indeterminate_missing())
    ids = [cards[0]["uuid"], cards[1]["uuid"]]
    ids += [s["uuid"] for c in cards for s in c.get("suggestions", [])]
    assert len(ids) == len(set(ids))
    assert all(UUID.match(i) for i in ids)
    assert ids[0] == "00000000-0000-4000-8000-000000000001"


def test_the_default_context_makes_time_ordered_uuids() -> None:
    from service.render.cards import RenderContext

    card = render_cards(b.colorectal_right(), RenderContext(patient_id=b.PATIENT))[0]
    assert UUID.match(card["uuid"])
    assert card["uuid"][14] == "7", "version 7: time-ordered (service/uuids.py)"
    assert all(s["uuid"][14] == "7" for s in card.get("suggestions", []))


# --- suggestions ----------------------------------------------------------------------------


def test_one_suggestion_per_offered_option_recommended_first() -> None:
    assessment = b.colorectal_right(
        options=(
            OfferedOption("ablation", False, rule="21"),
            OfferedOption("resection-right-hepatectomy", True, rule="21"),
            OfferedOption("systemic-therapy", False, "perioperative", rule="21"),
            OfferedOption("mdt-review", True, rule="21"),
        )
    )
    card = render(assessment)[0]
    codes = [s["actions"][0]["resource"]["code"]["coding"][0]["code"] for s in card["suggestions"]]
    assert codes == ["resection-right-hepatectomy", "mdt-review", "ablation", "systemic-therapy"]
    assert [s["isRecommended"] for s in card["suggestions"]] == [True, True, False, False]
    assert card["selectionBehavior"] == "any"


def test_each_suggestion_proposes_a_draft_service_request_for_the_patient() -> None:
    card = render(b.hcc_cirrhosis_child_b())[0]
    content = load_content()
    for suggestion in card["suggestions"]:
        assert suggestion["label"] and isinstance(suggestion["isRecommended"], bool)
        (action,) = suggestion["actions"]
        assert action["type"] == "create" and action["description"]
        resource = action["resource"]
        assert resource["resourceType"] == "ServiceRequest"
        assert resource["status"] == "draft" and resource["intent"] == "proposal"
        assert resource["subject"] == {"reference": f"Patient/{b.PATIENT}"}
        coding = resource["code"]["coding"][0]
        assert coding["system"] == OPTION
        assert coding["display"] == content.options[coding["code"]].label
        assert resource["reasonReference"] == [{"reference": "Condition/hcc-1"}]


def test_reason_reference_lists_every_liver_condition_and_only_well_formed_ones() -> None:
    assessment = b.colorectal_right(
        liver_conditions=("Condition/a", "Condition/b", "Condition/a", "Observation/x", "junk")
    )
    resource = render(assessment)[0]["suggestions"][0]["actions"][0]["resource"]
    assert resource["reasonReference"] == [
        {"reference": "Condition/a"},
        {"reference": "Condition/b"},
    ]
    none = render(b.colorectal_right(liver_conditions=()))[0]["suggestions"][0]
    assert "reasonReference" not in none["actions"][0]["resource"]


def test_a_qualifier_is_shown_with_the_option() -> None:
    card = render(b.colorectal_right())[0]
    systemic = next(s for s in card["suggestions"] if "systemic" in s["label"])
    assert systemic["label"].endswith("(perioperative)")
    assert systemic["actions"][0]["resource"]["code"]["text"] == "Systemic therapy (perioperative)"
    assert "Systemic therapy, perioperative (may be considered)" in card["detail"]
    assert "**Systemic therapy**, perioperative" in full(b.colorectal_right())


def test_override_reasons_are_codings_with_display() -> None:
    for card in render(b.indeterminate_missing()):
        codes = {r["code"] for r in card["overrideReasons"]}
        assert {
            "already-reviewed-by-mdt",
            "patient-declined",
            "data-incorrect",
            "not-clinically-appropriate",
        } <= codes
        systems = [reason["system"] for reason in card["overrideReasons"]]
        own = "https://liver-cds.org/fhir/CodeSystem/override-reason"
        hl7 = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"
        assert set(systems) == {own, hl7}  # HL7's reasons beside the service's own, after them
        assert systems == sorted(systems, key=lambda system: system != own)
        assert all(reason["display"] for reason in card["overrideReasons"])


# --- links --------------------------------------------------------------------------------


def test_links_point_to_the_cited_guidelines_that_have_a_url() -> None:
    card = render(b.hcc_cirrhosis_child_b())[0]
    urls = {link["url"] for link in card["links"]}
    assert all(link["type"] == "absolute" for link in card["links"])
    assert "https://doi.org/10.1016/j.jhep.2021.11.018" in urls  # BCLC 2022, rule 9
    assert "https://doi.org/10.1002/bjs.1800600817" in urls  # Child-Pugh, score shown
    assert "https://doi.org/10.1056/NEJM199603143341104" in urls  # Milan, transplant offered
    assert not any("10.1097/00000658" in u for u in urls)  # Fong is not for hcc


def test_a_smart_link_only_when_configured() -> None:
    plain = render(b.colorectal_right())[0]
    assert all(link["type"] == "absolute" for link in plain.get("links", []))
    card = render(b.colorectal_right(), smart_app_url="https://smart.example.org/launch")[0]
    smart = [link for link in card["links"] if link["type"] == "smart"]
    assert smart == [
        {
            "label": load_content().smart_link_label,
            "url": "https://smart.example.org/launch",
            "type": "smart",
            "appContext": f'{{"view":"full-assessment","ruleset":"{load_content().version}"}}',
        }
    ]
    assert json.loads(smart[0]["appContext"]).keys() == {"view", "ruleset"}  # no patient data
    data_card = render(b.indeterminate_missing(), smart_app_url="https://smart.example.org/l")[1]
    assert "links" not in data_card


# --- detail -------------------------------------------------------------------------------


def test_detail_states_the_verdict_and_the_deciding_rule() -> None:
    detail = render(b.hcc_cirrhosis_child_b())[0]["detail"]
    assert detail.startswith("**Not resectable** (rule 9):")
    assert load_content().rules["9"].text in detail.splitlines()[0]
    assert load_content().verdict_explanations["not-resectable"] in full(b.hcc_cirrhosis_child_b())


def test_detail_lists_each_fact_used_with_value_date_and_source() -> None:
    detail = full(b.colorectal_right())
    assert (
        "- **Distribution**: right (segments VI, VII) (2026-10-14; Condition/liver-met-1)" in detail
    )
    assert "- **ECOG performance status**: 0 (2026-10-20; Observation/ecog-1)" in detail
    assert "- **Largest lesion**: 2.4 cm (2026-10-14; Observation/size-1)" in detail


def test_detail_shows_each_option_with_its_risks_and_patient_modifiers() -> None:
    detail = full(b.hcc_cirrhosis_child_b())
    content = load_content()
    options = detail.split("**Options (recommended first)**")[1].split("**Scores**")[0]
    blocks = re.split(r"\n(?=\d+\. )", options.strip())
    assert len(blocks) == 6
    tace = next(blk for blk in blocks if blk.startswith("4. **TACE**"))
    assert "post-embolisation syndrome" in tace
    assert content.options["tace"].modifiers["cirrhosis"][1:] in tace
    assert content.options["tace"].modifiers["child-pugh-b"][1:] in tace
    assert content.options["tace"].modifiers["ascites"][1:] in tace
    mdt = next(blk for blk in blocks if "**Liver MDT review**" in blk)
    assert "For this patient" not in mdt
    bsc = next(blk for blk in blocks if "**Best supportive care**" in blk)
    assert "added: symptoms present" in bsc and "for relief of symptoms" in bsc


def test_modifiers_are_named_only_when_the_engine_found_them() -> None:
    detail = render(b.colorectal_right())[0]["detail"]
    assert "For this patient" not in detail
    with_jaundice = render(b.colorectal_right(risk_modifiers=frozenset({"jaundice"})))[0]
    assert (
        load_content().options["resection-right-hepatectomy"].modifiers["jaundice"][1:]
        in with_jaundice["detail"]
    )


def test_scores_show_points_per_item_and_what_was_assumed() -> None:
    detail = full(b.hcc_cirrhosis_child_b())
    scores = detail.split("**Scores**")[1]
    assert "- **Child-Pugh**: 8 points, class B." in scores
    assert "Bilirubin 1.1 mg/dL (2026-10-20): 1 point" in scores
    assert "Ascites mild (severity not recorded): 2 points (assumed)" in scores
    assert "- **ALBI**: -2.87, grade 1." in scores
    assert "- **MELD**: 8." in scores and "- **MELD-Na**: 14." in scores
    assert "- **BCLC stage**: A." in scores
    assert "Fong" not in scores  # hcc: BCLC, not Fong


def test_colorectal_cards_show_fong_not_bclc() -> None:
    assessment = b.colorectal_right(
        scores=b.scores(
            fong=b.colorectal_right().scores.fong,
            bclc=b.hcc_cirrhosis_child_b().scores.bclc,
        )
    )
    scores = full(assessment).split("**Scores**")[1]
    assert "**Fong clinical risk score**: 1 of 5, low risk." in scores
    assert "Not known: CEA." in scores
    assert "BCLC" not in scores


def test_assumptions_data_quality_and_sources_are_listed() -> None:
    detail = full(b.hcc_cirrhosis_child_b())
    assert (
        "**Assumptions**\n\n- Ascites severity not recorded: scored as mild (2 points)." in detail
    )
    sources = detail.split("**Sources**")[1]
    assert "[BCLC 2022](https://doi.org/10.1016/j.jhep.2021.11.018): Reig M" in sources
    assert "CNLC 2022" not in sources  # rule 9 is not a CNLC rule
    indeterminate = full(b.indeterminate_missing())
    assert (
        "**Data quality**\n\n- Observation/bad-unit: bilirubin unit 'mmol' unknown" in indeterminate
    )
    assert indeterminate.count("Observation/bad-unit") == 1  # facts and assessment: said once


def test_heuristics_and_clinical_notes_are_named() -> None:
    assessment = b.colorectal_right(
        heuristics=("transmet_like", "platelet_surrogate"),
        notes=("hcc-and-secondary", "FLR threshold 20 % applied.", "hcc-and-secondary"),
    )
    detail = render(assessment)[0]["detail"]
    content = load_content()
    assert "[H] Heuristic of this project: " + content.heuristics["transmet_like"] in detail
    assert "[H] Heuristic of this project: platelet\\_surrogate" in detail
    assert detail.count(content.notes["hcc-and-secondary"]) == 1  # a key gets card wording
    assert "- FLR threshold 20 % applied." in detail  # other notes as the engine wrote them


def test_facts_used_are_the_ones_the_rules_consulted_in_that_order() -> None:
    assessment = b.colorectal_right(facts_used=("ecog", "distribution", "tumour_kind"))
    facts = full(assessment).split("**Facts used**")[1].split("**Options")[0]
    lines = [line for line in facts.strip().splitlines()]
    assert [line.split("**")[1] for line in lines] == [
        "ECOG performance status",
        "Distribution",
        "Tumour",
    ]
    assert "- **Tumour**: liver metastases (2026-10-14; Condition/liver-met-1)" in lines
    everything = full(b.colorectal_right())
    assert "**Number of liver lesions**: 2" in everything  # no facts_used: all evidence


# --- the data-needed card -------------------------------------------------------------------


def test_data_needed_card_names_what_is_missing_and_why() -> None:
    card = by_topic(render(b.indeterminate_missing()))["data-needed"]
    content = load_content()
    assert card["indicator"] == "info"
    assert card["summary"] == (
        "Needed to assess resectability: "
        "lesion segments, lesion count, liver panel with INR, ECOG, FLR"
    )
    essential, refine = card["detail"].split("**Would refine the options")
    assert content.missing["ecog"].why in essential
    assert "out of date: latest from 2026-03-02" in essential and "(INR)" in essential
    assert content.missing["flr"].why in refine


def test_data_needed_suggestions_order_what_fills_each_gap_once() -> None:
    card = by_topic(render(b.indeterminate_missing()))["data-needed"]
    codes = [s["actions"][0]["resource"]["code"]["coding"][0]["code"] for s in card["suggestions"]]
    assert codes == ["liver-imaging", "liver-panel-inr", "performance-status", "ct-volumetry"]
    for suggestion in card["suggestions"]:
        assert suggestion["isRecommended"] is True
        resource = suggestion["actions"][0]["resource"]
        assert resource["code"]["coding"][0]["system"] == DATA_REQUEST
        assert resource["code"]["text"]
        assert resource["status"] == "draft" and resource["intent"] == "proposal"
        assert resource["reasonReference"] == [
            {"reference": "Condition/hcc-2"},
            {"reference": "Condition/hcc-3"},
        ]
    assert card["selectionBehavior"] == "any"


def test_a_fact_without_an_order_is_listed_without_a_suggestion() -> None:
    card = render(b.colorectal_right(missing=(MissingItem("age", False),)))[1]
    assert "suggestions" not in card and "selectionBehavior" not in card
    assert "record the date of birth" in card["detail"]
    assert card["summary"] == "Would refine the liver options: age"


def test_no_card_repeats_the_other() -> None:
    assessment_card, data_card = render(b.indeterminate_missing())
    content = load_content()
    for fact in ("distribution", "ecog", "flr"):
        assert content.missing[fact].why not in assessment_card["detail"]
        assert content.missing[fact].label not in assessment_card["detail"]
    assert "Sources" not in data_card["detail"] and "Options" not in data_card["detail"]
    assert assessment_card["summary"] != data_card["summary"]


# --- safety of the text ---------------------------------------------------------------------


def test_values_cannot_inject_html_or_markdown() -> None:
    hostile = "<img src=x onerror=alert(1)> [click](https://evil.example) *x* `y` | z\n# h"
    assessment = b.indeterminate_missing(
        evidence=(Evidence("distribution", hostile, None, ("Observation/<script>",)),),
        assumptions=(hostile,),
        notes=(hostile,),
        heuristics=(hostile,),
        data_quality=(DataQualityNote(hostile, hostile),),
        missing=(MissingItem("child-pugh", True, detail=hostile),),
        options=(OfferedOption("ablation", False, hostile, rule=hostile),),
    )
    for card in render(assessment):
        for text in (card["detail"], card["summary"]):
            assert "<img" not in text and "<script" not in text
            assert "](https://evil" not in text and "https://evil" not in text
            assert "\n# h" not in text
        assert "\\[click\\]" in card["detail"]
        for suggestion in card.get("suggestions", []):
            assert "<" not in suggestion["label"] and ">" not in suggestion["label"]


def test_cards_contain_no_null_and_no_empty_value() -> None:
    examples = [
        *b.all_examples(),
        b.colorectal_right(liver_conditions=(), scores=b.scores(albi=None, meld=None)),
        replace(b.colorectal_right(), options=()),
    ]
    for assessment in examples:
        for card in render(assessment, smart_app_url="https://smart.example.org/launch"):
            for path, value in b.walk(card):
                assert value is not None, path
                assert value not in ("", [], {}), path
            assert len(card["summary"]) < 140
            if "suggestions" in card:
                assert card["selectionBehavior"] == "any"
            for link in card.get("links", []):
                assert ("appContext" not in link) or link["type"] == "smart"


def test_sources_for_colorectal_metastases_are_not_cited_when_hcc_rules_apply() -> None:
    assessment = b.hcc_cirrhosis_child_b(primary_site="colorectal", hcc_and_secondary_found=True)
    card = render(assessment)[0]
    assert "COLLISION" not in full(assessment) and "TransMet" not in full(assessment)
    assert all("S1470-2045(24)00660-0" not in link["url"] for link in card["links"])
    assert "BCLC 2022" in full(assessment)
    assert "BCLC 2022" not in card["detail"]  # sources are links, never inline


def test_data_needed_shows_the_engine_detail_unless_the_wording_already_says_it() -> None:
    assessment = b.colorectal_right(
        missing=(
            MissingItem("child-pugh", True, detail="no INR"),
            MissingItem("ecog", True, detail="ECOG or Karnofsky"),
        )
    )
    detail = render(assessment)[1]["detail"]
    assert "not recorded (no INR)." in detail
    assert "(ECOG or Karnofsky)**: not recorded. " in detail
