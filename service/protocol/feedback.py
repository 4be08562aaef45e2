"""The CDS Hooks 2.0 feedback request, checked and turned into :class:`FeedbackItem` values.

Shape (2.0, Feedback)::

    {"feedback": [{"card": "<card uuid>", "outcome": "accepted" | "overridden",
                   "outcomeTimestamp": "<RFC 3339 date-time>",
                   "acceptedSuggestions": [{"id": "<suggestion uuid>"}],
                   "overrideReason": {"reason": <Coding>, "userComment": "..."}}]}

Epic spells the override field ``overrideReasons``; it is read the same way, whether it
holds one OverrideReason object, a list of them, or a list of Codings (the first one is
kept: a card is overridden once, for one reason). Unknown fields and ``extension`` are
ignored. Unknown card uuids are not an error here: EHRs batch feedback, and the store
flags them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from service.protocol.errors import BadRequest, shorten, type_name
from service.protocol.request import NO_CONTROL_CHARACTERS
from service.records import FeedbackItem, FeedbackOutcome

MAX_TEXT = 4000
"""Longest accepted free-text comment (characters); longer ones are refused, not cut."""
MAX_ID = 200
"""Longest accepted card or suggestion id."""
MAX_REASON_DISPLAY = 1000
"""Longest accepted ``overrideReason.reason.display``: its column's width. A longer one is
refused with 400, never stored cut short (the feedback report would show a different
reason from the one the clinician picked, without saying so)."""
MAX_REASON_SYSTEM = 500
"""Longest accepted ``overrideReason.reason.system``: its column's width (refused, not cut)."""

_OUTCOMES: tuple[FeedbackOutcome, ...] = ("accepted", "overridden")


def parse_feedback(data: Any, *, service_id: str, received_at: datetime) -> list[FeedbackItem]:
    """Check a parsed feedback body; every problem is a 400 naming the item and field."""
    if not isinstance(data, dict):
        raise BadRequest(f"feedback body must be a JSON object, not {type_name(data)}")
    entries = data.get("feedback")
    if entries is None:
        raise BadRequest("feedback is required (an array of feedback items)")
    if not isinstance(entries, list):
        raise BadRequest(f"feedback must be an array, not {type_name(entries)}")
    return [
        _item(entry, f"feedback[{index}]", service_id, received_at)
        for index, entry in enumerate(entries)
    ]


def _item(entry: Any, where: str, service_id: str, received_at: datetime) -> FeedbackItem:
    if not isinstance(entry, dict):
        raise BadRequest(f"{where} must be a JSON object, not {type_name(entry)}")
    card = _string(entry, "card", where, limit=MAX_ID)
    outcome = _string(entry, "outcome", where)
    if outcome not in _OUTCOMES:
        raise BadRequest(
            f"{where}.outcome must be 'accepted' or 'overridden', not {shorten(outcome)!r}"
        )
    timestamp = _timestamp(_string(entry, "outcomeTimestamp", where), f"{where}.outcomeTimestamp")
    accepted = _accepted_suggestions(entry.get("acceptedSuggestions"), where)
    if outcome == "accepted" and not accepted:
        raise BadRequest(f"{where}.acceptedSuggestions is required when outcome is 'accepted'")

    reason_value, reason_name = entry.get("overrideReason"), "overrideReason"
    if reason_value is None and entry.get("overrideReasons") is not None:
        reason_value, reason_name = entry["overrideReasons"], "overrideReasons"
    code, system, display, comment = _override_reason(reason_value, f"{where}.{reason_name}")

    return FeedbackItem(
        service_id=service_id,
        card_uuid=card,
        outcome="accepted" if outcome == "accepted" else "overridden",
        outcome_timestamp=timestamp,
        accepted_suggestions=accepted,
        override_reason_code=code,
        override_reason_system=system,
        override_reason_display=display,
        override_comment=comment,
        received_at=received_at,
    )


def _string(obj: dict[str, Any], key: str, where: str, *, limit: int | None = None) -> str:
    value = obj.get(key)
    if value is None:
        raise BadRequest(f"{where}.{key} is required")
    if not isinstance(value, str):
        raise BadRequest(f"{where}.{key} must be a string, not {type_name(value)}")
    if not value.strip():
        raise BadRequest(f"{where}.{key} must not be empty")
    if limit is not None and (len(value) > limit or not NO_CONTROL_CHARACTERS.fullmatch(value)):
        raise BadRequest(
            f"{where}.{key} must be at most {limit} characters, without control characters"
        )
    return value


def _timestamp(text: str, name: str) -> datetime:
    """An RFC 3339 date-time with a time zone, normalised to UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(
            f"{name} must be an RFC 3339 date-time, e.g. 2021-12-11T10:05:31Z"
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise BadRequest(f"{name} must include a time zone (e.g. 'Z' for UTC)")
    try:
        # 9999-12-31T23:59:59-14:00 is after year 9999 in UTC, 0001-01-01T00:00:00+14:00
        # before year 1: Python's datetime cannot hold either instant.
        return value.astimezone(UTC)
    except OverflowError:
        raise BadRequest(f"{name} is outside the years 0001-9999 once converted to UTC") from None


def _accepted_suggestions(value: Any, where: str) -> tuple[str, ...]:
    name = f"{where}.acceptedSuggestions"
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadRequest(f"{name} must be an array, not {type_name(value)}")
    ids: list[str] = []
    for index, suggestion in enumerate(value):
        if not isinstance(suggestion, dict):
            raise BadRequest(
                f"{name}[{index}] must be an object with an id, not {type_name(suggestion)}"
            )
        ids.append(_string(suggestion, "id", f"{name}[{index}]", limit=MAX_ID))
    return tuple(dict.fromkeys(ids))  # a repeated id is one acceptance


def _override_reason(
    value: Any, name: str
) -> tuple[str | None, str | None, str | None, str | None]:
    """(code, system, display, userComment) from an OverrideReason, Epic's variants included."""
    if value is None:
        return None, None, None, None
    if isinstance(value, list):
        if not value:
            return None, None, None, None
        value, name = value[0], f"{name}[0]"
    if not isinstance(value, dict):
        raise BadRequest(f"{name} must be a JSON object, not {type_name(value)}")
    if "reason" not in value and "userComment" not in value and "code" in value:
        value = {"reason": value}  # a bare Coding
    comment = value.get("userComment")
    if comment is not None:
        if not isinstance(comment, str):
            raise BadRequest(f"{name}.userComment must be a string, not {type_name(comment)}")
        if len(comment) > MAX_TEXT:
            raise BadRequest(f"{name}.userComment is longer than {MAX_TEXT} characters")
        comment = comment or None
    reason = value.get("reason")
    if reason is None:
        return None, None, None, comment
    if not isinstance(reason, dict):
        raise BadRequest(f"{name}.reason must be a Coding object, not {type_name(reason)}")
    code = _string(reason, "code", f"{name}.reason", limit=MAX_ID)
    system = _coding_text(reason, "system", f"{name}.reason", limit=MAX_REASON_SYSTEM)
    display = _coding_text(reason, "display", f"{name}.reason", limit=MAX_REASON_DISPLAY)
    return code, system, display, comment


def _coding_text(coding: dict[str, Any], key: str, where: str, *, limit: int) -> str | None:
    value = coding.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{where}.{key} must be a string, not {type_name(value)}")
    if len(value) > limit:
        raise BadRequest(f"{where}.{key} is longer than {limit} characters")
    return value or None
