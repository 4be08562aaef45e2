"""The project's JSON Schema of the 2.0 response accepts what the spec allows and refuses
what it forbids (each rule of "Use of JSON" and "Card Attributes" has a case here)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from cds_schema import assert_valid_response, schema_errors

SERVICE_REQUEST = {
    "resourceType": "ServiceRequest",
    "status": "draft",
    "intent": "proposal",
    "subject": {"reference": "Patient/1"},
    "code": {
        "coding": [
            {
                "system": "https://liver-cds.org/fhir/CodeSystem/treatment-option",
                "code": "mdt-review",
            }
        ]
    },
}

VALID: dict[str, Any] = {
    "cards": [
        {
            "uuid": "4e0a3a1e-3283-4575-ab82-028d55fe2719",
            "summary": "Example Card",
            "indicator": "info",
            "detail": "This is an **example** card.",
            "source": {
                "label": "Static CDS Service Example",
                "url": "https://example.com",
                "icon": "https://example.com/img/icon-100px.png",
                "topic": {
                    "system": "https://liver-cds.org/fhir/CodeSystem/card-topic",
                    "code": "resectable",
                    "display": "Resectable",
                },
            },
            "suggestions": [
                {
                    "uuid": "e56e1945-20b3-4393-8503-a1a20fd73152",
                    "label": "Refer for MDT review",
                    "isRecommended": True,
                    "actions": [
                        {
                            "type": "create",
                            "description": "Order MDT review",
                            "resource": SERVICE_REQUEST,
                        }
                    ],
                }
            ],
            "selectionBehavior": "any",
            "overrideReasons": [
                {
                    "code": "patient-declined",
                    "system": "https://liver-cds.org/fhir/CodeSystem/override-reason",
                    "display": "Patient declined",
                }
            ],
            "links": [
                {"label": "Guideline", "url": "https://example.org/guideline", "type": "absolute"},
                {
                    "label": "App",
                    "url": "https://smart.example.com/launch",
                    "type": "smart",
                    "appContext": '{"a":1}',
                },
            ],
        },
        {
            "summary": "Another card",
            "indicator": "warning",
            "source": {"label": "Static CDS Service Example"},
        },
    ]
}


def test_a_full_valid_response_and_the_empty_answer_pass() -> None:
    assert_valid_response(VALID)
    assert_valid_response({"cards": []})


def mutated(path: list[Any], value: Any = ..., *, delete: bool = False) -> dict[str, Any]:
    body = copy.deepcopy(VALID)
    target: Any = body
    for step in path[:-1]:
        target = target[step]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


CARD = ["cards", 0]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="no-cards"),
        pytest.param({"cards": None}, id="null-cards"),
        pytest.param(mutated([*CARD, "summary"], "x" * 140), id="summary-140"),
        pytest.param(mutated([*CARD, "summary"], ""), id="summary-empty"),
        pytest.param(mutated([*CARD, "summary"], delete=True), id="summary-missing"),
        pytest.param(mutated([*CARD, "detail"], None), id="detail-null"),
        pytest.param(mutated([*CARD, "indicator"], "hard-stop"), id="indicator-enum"),
        pytest.param(mutated([*CARD, "source", "label"], delete=True), id="source-label-missing"),
        pytest.param(
            mutated([*CARD, "source", "topic", "code"], "not resectable!"), id="topic-code-syntax"
        ),
        pytest.param(
            mutated([*CARD, "selectionBehavior"], delete=True),
            id="suggestions-without-selectionBehavior",
        ),
        pytest.param(mutated([*CARD, "selectionBehavior"], "all"), id="selectionBehavior-enum"),
        pytest.param(mutated([*CARD, "suggestions"], []), id="empty-suggestions"),
        pytest.param(
            mutated([*CARD, "suggestions", 0, "label"], delete=True), id="suggestion-label-missing"
        ),
        pytest.param(
            mutated([*CARD, "suggestions", 0, "isRecommended"], "true"), id="isRecommended-string"
        ),
        pytest.param(
            mutated([*CARD, "suggestions", 0, "actions", 0, "description"], delete=True),
            id="action-description-missing",
        ),
        pytest.param(
            mutated([*CARD, "suggestions", 0, "actions", 0, "resource"], delete=True),
            id="create-without-resource",
        ),
        pytest.param(
            mutated([*CARD, "suggestions", 0, "actions", 0, "resource", "status"], None),
            id="null-inside-resource",
        ),
        pytest.param(
            mutated([*CARD, "suggestions", 0, "actions", 0, "resource", "code", "coding"], []),
            id="empty-array-inside-resource",
        ),
        pytest.param(
            mutated([*CARD, "overrideReasons", 0, "display"], delete=True),
            id="override-reason-without-display",
        ),
        pytest.param(mutated([*CARD, "overrideReasons"], []), id="empty-overrideReasons"),
        pytest.param(
            mutated([*CARD, "links", 0, "appContext"], "{}"), id="appContext-on-absolute-link"
        ),
        pytest.param(mutated([*CARD, "links", 0, "type"], "relative"), id="link-type-enum"),
        pytest.param(mutated([*CARD, "links", 0, "url"], "/relative"), id="link-url-relative"),
        pytest.param(mutated([*CARD, "links"], []), id="empty-links"),
        pytest.param(mutated([*CARD, "isrecommended"], True), id="unknown-member"),
        pytest.param(mutated([*CARD, "extension"], {}), id="empty-extension"),
    ],
)
def test_each_rule_of_the_spec_is_enforced(body: dict[str, Any]) -> None:
    assert schema_errors(body)
