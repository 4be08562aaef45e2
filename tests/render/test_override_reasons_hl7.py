"""HL7's override (non-adherence) reason codes are offered beside the service's own, and a
clinician editing cards/override-reasons.yaml cannot invent an HL7 code or reword one."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from render import render_builders as b
from service.render import nonadherence
from service.render.cards import render_cards
from service.render.content import ContentError, default_cards_dir, load_content

OWN = "https://liver-cds.org/fhir/CodeSystem/override-reason"
HL7 = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"

# Checked by hand against the published code system (HL7 CDS WG, non-adherence-reason-codes;
# the CDS Hooks 3.0 ballot's ValueSet non-adherence-reason-clinical). A second, independent
# copy: a typo in nonadherence.py fails here.
PUBLISHED = {
    "cds-not-applicable": "PC CDS does not apply to patient",
    "recipient-disagrees-evidence": (
        "Recipient disagrees with recommendation because of issues with the evidence"
    ),
    "recipient-concerns-outcomes": "Recipient has concerns regarding potential health outcomes",
    "does-not-align-preferences": (
        "Recommendation does not align with patient preferences or values"
    ),
    "action-completed": "Recommended action was already completed",
    "patient-contraindication": "Patient has contraindication to recommended action",
    "service-not-available": "Treatment or service is not practically available",
}


def test_the_allowed_hl7_codes_are_the_published_ones_with_their_displays() -> None:
    assert nonadherence.SYSTEM == HL7
    assert dict(nonadherence.DISPLAYS) == PUBLISHED


def test_the_shipped_content_offers_hl7_reasons_after_the_services_own() -> None:
    content = load_content()
    systems = [reason.system for reason in content.override_reasons]
    assert systems == sorted(systems, key=lambda system: system != OWN)
    hl7 = {r.code: r.display for r in content.override_reasons if r.system == HL7}
    assert hl7 and all(PUBLISHED[code] == display for code, display in hl7.items())


def test_assessment_and_data_needed_cards_carry_both_systems() -> None:
    cards = render_cards(b.colorectal_right(), b.context()) + render_cards(
        b.indeterminate_missing(), b.context()
    )
    assert cards
    for card in cards:
        codings = card["overrideReasons"]
        assert {c["system"] for c in codings} == {OWN, HL7}
        for coding in codings:
            if coding["system"] == HL7:
                assert coding["display"] == PUBLISHED[coding["code"]]
    codes_by_topic = {
        card["source"]["topic"]["code"]: {c["code"] for c in card["overrideReasons"]}
        for card in cards
    }
    data_needed = codes_by_topic.pop("data-needed")
    assert "action-completed" in data_needed  # a test already done: data-needed only
    assert "does-not-align-preferences" not in data_needed
    for codes in codes_by_topic.values():
        assert "does-not-align-preferences" in codes and "action-completed" not in codes


def _edited(tmp_path: Path, change: Callable[[Any], None]) -> Path:
    cards = tmp_path / "cards"
    shutil.copytree(default_cards_dir(), cards)
    path = cards / "override-reasons.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return cards


def _invent(data: Any) -> None:
    data["hl7"]["reasons"].append({"code": "surgeon-says-no", "display": "Surgeon says no"})


def _reword(data: Any) -> None:
    data["hl7"]["reasons"][0]["display"] = "Contraindicated"


def _own_code_in_hl7(data: Any) -> None:
    data["hl7"]["reasons"].append({"code": "patient-declined", "display": "Patient declined"})


def _other_system(data: Any) -> None:
    data["hl7"]["system"] = "http://snomed.info/sct"


@pytest.mark.parametrize(
    ("change", "names"),
    [
        (_invent, "surgeon-says-no"),
        (_reword, "display must be the code system's"),
        (_own_code_in_hl7, "patient-declined"),
        (_other_system, "hl7"),
    ],
)
def test_an_invented_or_reworded_hl7_reason_is_refused_at_load(
    tmp_path: Path, change: Callable[[Any], None], names: str
) -> None:
    with pytest.raises(ContentError) as caught:
        load_content(_edited(tmp_path, change))
    assert "override-reasons.yaml" in str(caught.value)
    assert names in str(caught.value)


def test_the_hl7_section_is_optional(tmp_path: Path) -> None:
    content = load_content(_edited(tmp_path, lambda data: data.pop("hl7")))
    assert {reason.system for reason in content.override_reasons} == {OWN}
