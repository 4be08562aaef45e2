"""Feedback bodies (2.0 shape and Epic's spelling) become FeedbackItems; bad shapes are 400."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from service.protocol.errors import BadRequest
from service.protocol.feedback import MAX_REASON_DISPLAY, MAX_REASON_SYSTEM, parse_feedback
from service.store import schema as store_schema

RECEIVED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
SERVICE = "liver-metastasis-resectability"


def parse(body: Any) -> list[Any]:
    return parse_feedback(body, service_id=SERVICE, received_at=RECEIVED)


def refused(body: Any) -> str:
    with pytest.raises(BadRequest) as info:
        parse(body)
    return info.value.message


def test_the_spec_accepted_example() -> None:
    (item,) = parse(
        {
            "feedback": [
                {
                    "card": "4e0a3a1e-3283-4575-ab82-028d55fe2719",
                    "outcome": "accepted",
                    "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}],
                    "outcomeTimestamp": "2021-12-11T10:05:31Z",
                }
            ]
        }
    )
    assert item.service_id == SERVICE
    assert item.card_uuid == "4e0a3a1e-3283-4575-ab82-028d55fe2719"
    assert item.outcome == "accepted"
    assert item.accepted_suggestions == ("e56e1945-20b3-4393-8503-a1a20fd73152",)
    assert item.outcome_timestamp == datetime(2021, 12, 11, 10, 5, 31, tzinfo=UTC)
    assert item.override_reason_code is None
    assert item.received_at == RECEIVED


def test_the_spec_overridden_examples() -> None:
    bare, with_reason = parse(
        {
            "feedback": [
                {
                    "card": "f6b95768-b1c8-40dc-8385-bf3504b82ffb",
                    "outcome": "overridden",
                    "outcomeTimestamp": "2020-12-11T00:00:00Z",
                },
                {
                    "card": "9368d37b-283f-44a0-93ea-547cebab93ed",
                    "outcome": "overridden",
                    "overrideReason": {
                        "reason": {
                            "code": "d7ecf885",
                            "system": "https://example.com/cds-hooks/override-reason-system",
                        },
                        "userComment": "A comment entered by the clinician.",
                    },
                    "outcomeTimestamp": "2020-12-11T00:00:00Z",
                },
            ]
        }
    )
    assert bare.outcome == "overridden" and bare.override_reason_code is None
    assert with_reason.override_reason_code == "d7ecf885"
    assert (
        with_reason.override_reason_system == "https://example.com/cds-hooks/override-reason-system"
    )
    assert with_reason.override_reason_display is None
    assert with_reason.override_comment == "A comment entered by the clinician."


REASON = {
    "code": "patient-declined",
    "system": "https://liver-cds.org/fhir/CodeSystem/override-reason",
    "display": "Patient declined",
}


@pytest.mark.parametrize(
    "epic_value",
    [
        {"reason": REASON, "userComment": "discussed"},
        [{"reason": REASON, "userComment": "discussed"}],
        [REASON],
    ],
    ids=["object", "list-of-objects", "list-of-codings"],
)
def test_epics_override_reasons_spelling_is_read_the_same(epic_value: Any) -> None:
    (item,) = parse(
        {
            "feedback": [
                {
                    "card": "c1",
                    "outcome": "overridden",
                    "overrideReasons": epic_value,
                    "outcomeTimestamp": "2025-05-01T08:00:00+02:00",
                }
            ]
        }
    )
    assert item.override_reason_code == "patient-declined"
    assert item.override_reason_system == REASON["system"]
    assert item.override_reason_display == "Patient declined"
    assert item.outcome_timestamp == datetime(2025, 5, 1, 6, 0, tzinfo=UTC)


def test_unknown_fields_and_repeated_suggestion_ids_are_tolerated() -> None:
    (item,) = parse(
        {
            "extension": {"x": 1},
            "feedback": [
                {
                    "card": "c1",
                    "outcome": "accepted",
                    "acceptedSuggestions": [{"id": "s1"}, {"id": "s1", "x": 2}, {"id": "s2"}],
                    "outcomeTimestamp": "2025-05-01T08:00:00.123Z",
                    "extension": {"y": 2},
                }
            ],
        }
    )
    assert item.accepted_suggestions == ("s1", "s2")


def test_an_empty_feedback_list_is_valid() -> None:
    assert parse({"feedback": []}) == []


def item(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "card": "c1",
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": "s1"}],
        "outcomeTimestamp": "2025-05-01T08:00:00Z",
    }
    for key, value in changes.items():
        if value is ...:
            base.pop(key)
        else:
            base[key] = value
    return base


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([], "must be a JSON object, not array"),
        ({}, "feedback is required"),
        ({"feedback": {}}, "feedback must be an array, not object"),
        ({"feedback": ["c1"]}, "feedback[0] must be a JSON object"),
        ({"feedback": [item(card=...)]}, "feedback[0].card is required"),
        ({"feedback": [item(card="")]}, "feedback[0].card must not be empty"),
        ({"feedback": [item(card="x" * 201)]}, "feedback[0].card must be at most 200"),
        ({"feedback": [item(outcome="ignored")]}, "outcome must be 'accepted' or 'overridden'"),
        ({"feedback": [item(outcome=1)]}, "outcome must be a string, not number"),
        ({"feedback": [item(outcomeTimestamp=...)]}, "outcomeTimestamp is required"),
        ({"feedback": [item(outcomeTimestamp="yesterday")]}, "must be an RFC 3339 date-time"),
        ({"feedback": [item(outcomeTimestamp="2025-05-01T08:00:00")]}, "must include a time zone"),
        ({"feedback": [item(acceptedSuggestions=...)]}, "acceptedSuggestions is required"),
        ({"feedback": [item(acceptedSuggestions=[])]}, "acceptedSuggestions is required"),
        ({"feedback": [item(acceptedSuggestions={"id": "s"})]}, "must be an array"),
        (
            {"feedback": [item(acceptedSuggestions=["s1"])]},
            "acceptedSuggestions[0] must be an object",
        ),
        ({"feedback": [item(acceptedSuggestions=[{}])]}, "acceptedSuggestions[0].id is required"),
        (
            {"feedback": [item(outcome="overridden", overrideReason="no")]},
            "feedback[0].overrideReason must be a JSON object",
        ),
        (
            {"feedback": [item(outcome="overridden", overrideReason={"reason": "x"})]},
            "overrideReason.reason must be a Coding object",
        ),
        (
            {"feedback": [item(outcome="overridden", overrideReason={"reason": {"system": "s"}})]},
            "overrideReason.reason.code is required",
        ),
        (
            {"feedback": [item(outcome="overridden", overrideReason={"userComment": 5})]},
            "overrideReason.userComment must be a string",
        ),
        (
            {"feedback": [item(), item(outcome="overridden", overrideReasons=[7])]},
            "feedback[1].overrideReasons[0] must be a JSON object",
        ),
    ],
)
def test_bad_feedback_is_refused_naming_the_item_and_field(body: Any, fragment: str) -> None:
    assert fragment in refused(body)


@pytest.mark.parametrize("stamp", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_a_timestamp_that_overflows_in_utc_is_refused_naming_the_field(stamp: str) -> None:
    message = refused({"feedback": [item(outcomeTimestamp=stamp)]})
    assert message.startswith("feedback[0].outcomeTimestamp ")
    assert "0001-9999" in message


def test_the_last_and_first_instants_that_fit_are_accepted() -> None:
    (late,) = parse({"feedback": [item(outcomeTimestamp="9999-12-31T09:59:59-14:00")]})
    (early,) = parse({"feedback": [item(outcomeTimestamp="0001-01-01T14:00:00+14:00")]})
    assert late.outcome_timestamp == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert early.outcome_timestamp == datetime(1, 1, 1, 0, 0, tzinfo=UTC)


def overridden(**reason: Any) -> dict[str, Any]:
    coding = {"system": "https://example.org/reasons", "code": "other", **reason}
    return item(outcome="overridden", acceptedSuggestions=..., overrideReason={"reason": coding})


def test_an_override_display_longer_than_its_column_is_refused_not_cut() -> None:
    """The store's column holds 1,000 characters; a longer display is a 400 naming the field,
    so the feedback report never shows a reason cut short without saying so."""
    message = refused({"feedback": [overridden(display="d" * (MAX_REASON_DISPLAY + 1))]})
    assert message == (
        f"feedback[0].overrideReason.reason.display is longer than {MAX_REASON_DISPLAY} characters"
    )
    (kept,) = parse({"feedback": [overridden(display="d" * MAX_REASON_DISPLAY)]})
    assert kept.override_reason_display == "d" * MAX_REASON_DISPLAY
    message = refused({"feedback": [overridden(system="s" * (MAX_REASON_SYSTEM + 1))]})
    assert "overrideReason.reason.system is longer than" in message


def test_the_reason_limits_are_the_store_columns_widths() -> None:
    columns = store_schema.feedback.c
    assert columns.override_reason_display.type.length == MAX_REASON_DISPLAY
    assert columns.override_reason_system.type.length == MAX_REASON_SYSTEM
