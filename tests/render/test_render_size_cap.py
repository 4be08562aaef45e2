"""Cards have a size cap (issue 15, item 6): a chart with 10,000 liver Conditions once gave a
342,585-character detail and a 2.65 MB response. Long lists are now summarised with a fixed
cap ("and 9,990 more"), so the response stays small whatever the chart holds."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest
from pipeline_harness import MANIFEST, evaluate_request, evaluated_at, load

from render import render_builders as b
from service.clinical.model import DataQualityNote, Evidence
from service.render.cards import full_detail, render_cards
from service.render.compact import MAX_CHARS, MAX_LINES
from service.render.content import load_content
from service.render.proposals import REASON_CAP

CONDITIONS = 10_000
RESPONSE_BOUND = 16_000
"""Bytes of the whole response (the 10,000-Condition chart measured 7,375: one card, four
suggestions of 10 references each); before the cap it was 2.65 MB."""


def with_many_liver_conditions(count: int) -> dict[str, Any]:
    """The r21 colorectal fixture with its liver-metastasis Condition recorded ``count`` times
    (as a faulty interface would), each with its own id."""
    request = load("patients/r21-colon-right-icd10.json")
    entries = request["prefetch"]["conditions"]["entry"]
    liver = next(e for e in entries if e["resource"]["code"]["coding"][0]["code"] == "C78.7")
    for number in range(count - 1):
        twin = copy.deepcopy(liver)
        twin["resource"]["id"] = f"liver-twin-{number}"
        twin["fullUrl"] = f"https://ehr.example.org/fhir/Condition/liver-twin-{number}"
        entries.append(twin)
    request["prefetch"]["conditions"]["total"] = len(entries)
    return request


@pytest.mark.skipif(not MANIFEST.is_file(), reason="needs the fixture patients")
def test_ten_thousand_liver_conditions_give_a_bounded_response() -> None:
    result = evaluate_request(with_many_liver_conditions(CONDITIONS), at=evaluated_at())
    assert len(result.assessment.facts.liver_conditions) == CONDITIONS
    response = orjson.dumps({"cards": result.cards})
    assert len(response) <= RESPONSE_BOUND, len(response)
    detail = result.cards[0]["detail"]
    assert detail.count("\n") + 1 <= MAX_LINES and len(detail) <= MAX_CHARS
    for card in result.cards:
        for suggestion in card.get("suggestions", []):
            resource = suggestion["actions"][0]["resource"]
            assert len(resource["reasonReference"]) == REASON_CAP
            assert resource["note"] == [
                {"text": "Also based on 9,990 more liver Conditions, not listed here."}
            ]
            ServiceRequest.model_validate(resource)


def test_a_few_conditions_are_all_named_with_no_note() -> None:
    card = render_cards(b.colorectal_right(), b.context())[0]
    resource = card["suggestions"][0]["actions"][0]["resource"]
    assert resource["reasonReference"] == [{"reference": "Condition/liver-met-1"}]
    assert "note" not in resource


def test_thousands_of_data_quality_notes_are_counted_not_listed() -> None:
    notes = tuple(DataQualityNote(f"Observation/bad-{n}", "unit unknown") for n in range(5000))
    card = render_cards(b.colorectal_right(data_quality=notes), b.context())[0]
    assert "Data quality: Observation/bad-0: unit unknown; and 4,999 more" in card["detail"]
    assert len(card["detail"]) <= MAX_CHARS
    assert "bad-1:" not in card["detail"]


def test_the_full_detail_caps_each_fact_s_sources_too() -> None:
    many = tuple(f"Condition/liver-{n}" for n in range(10_000))
    evidence = (Evidence("tumour_kind", "secondary", b.IMAGING_DAY, many),)
    text = full_detail(load_content(), b.colorectal_right(evidence=evidence))
    assert "Condition/liver-0; Condition/liver-1; Condition/liver-2; and 9,997 more" in text
    assert len(text) < 10_000
