"""Every ServiceRequest the cards can propose is valid FHIR R4 (fhir.resources R4B).

Checked here, not at run time: all 14 treatment options (with and without a qualifier and
liver Conditions) and every data-request order.
"""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest

from render import render_builders as b
from service.clinical.model import OPTION_CODES, MissingItem, OfferedOption
from service.render.cards import render_cards
from service.render.content import load_content
from service.render.schema import MISSING_FACTS


def service_requests(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        action["resource"]
        for card in cards
        for suggestion in card.get("suggestions", [])
        for action in suggestion["actions"]
    ]


def validate(resource: dict[str, Any]) -> ServiceRequest:
    model = ServiceRequest.model_validate(resource)
    assert model.status == "draft" and model.intent == "proposal"
    assert model.subject is not None and model.subject.reference == f"Patient/{b.PATIENT}"
    return model


@pytest.mark.parametrize("conditions", [("Condition/liver-1", "Condition/liver-2"), ()])
def test_every_treatment_option_proposal_is_valid_r4(conditions: tuple[str, ...]) -> None:
    options = tuple(
        OfferedOption(code, index % 2 == 0, "debulking" if index % 3 == 0 else None, rule="19")
        for index, code in enumerate(OPTION_CODES)
    )
    cards = render_cards(
        b.colorectal_right(options=options, liver_conditions=conditions), b.context()
    )
    resources = service_requests(cards)
    assert len(resources) == len(OPTION_CODES)
    for resource in resources:
        model = validate(resource)
        assert model.code is not None and model.code.coding is not None
        assert model.code.coding[0].system == (
            "https://liver-cds.org/fhir/CodeSystem/treatment-option"
        )
        assert len(model.reasonReference or []) == len(conditions)


def test_every_data_request_order_is_valid_r4() -> None:
    missing = tuple(MissingItem(fact, True) for fact in MISSING_FACTS)  # type: ignore[arg-type]
    cards = render_cards(b.indeterminate_missing(missing=missing), b.context())
    resources = service_requests(cards[1:])
    expected = {item.order for item in load_content().missing.values() if item.order}
    assert {r["code"]["coding"][0]["code"] for r in resources} == expected
    for resource in resources:
        model = validate(resource)
        assert model.code is not None and model.code.text
