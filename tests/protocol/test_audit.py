"""The audit record names the card and suggestion uuids the EHR was actually shown."""

from __future__ import annotations

from service.protocol.audit import TREATMENT_OPTION_SYSTEM, card_ids, option_code
from service.store.base import AuditSuggestion


def suggestion(uuid: str, *codings: dict[str, str]) -> dict[str, object]:
    return {
        "uuid": uuid,
        "label": "x",
        "actions": [
            {
                "type": "create",
                "description": "x",
                "resource": {"resourceType": "ServiceRequest", "code": {"coding": list(codings)}},
            }
        ],
    }


SNOMED = {"system": "http://snomed.info/sct", "code": "0000"}


def test_card_and_suggestion_uuids_come_from_the_rendered_cards() -> None:
    cards = [
        {
            "uuid": "card-1",
            "suggestions": [
                suggestion("s1", SNOMED, {"system": TREATMENT_OPTION_SYSTEM, "code": "mdt-review"}),
                suggestion("s2", {"system": TREATMENT_OPTION_SYSTEM, "code": "ablation"}),
            ],
        },
        {"uuid": "card-2", "suggestions": [suggestion("s3", SNOMED)]},
        {"summary": "a card without uuid is not auditable by uuid"},
    ]
    ids = card_ids(cards)
    assert ids.card_uuids == ("card-1", "card-2")
    assert ids.suggestion_uuids == ("s1", "s2", "s3")
    assert ids.suggestions == (
        AuditSuggestion("card-1", "s1", "mdt-review"),
        AuditSuggestion("card-1", "s2", "ablation"),
        AuditSuggestion("card-2", "s3", "0000"),
    )


def test_a_suggestion_without_a_coded_resource_has_no_option_code() -> None:
    assert option_code({"uuid": "s", "label": "x"}) == ""
    assert card_ids([]).card_uuids == ()
