"""What the audit trail records of a response: the card and suggestion uuids it carried.

Read from the rendered cards themselves (not from the assessment), so the audit names
exactly what the EHR was shown and what its feedback will refer to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from service.codesystems import TREATMENT_OPTION_SYSTEM
from service.records import AuditSuggestion

_MAPPING = (dict, Mapping)
"""What :func:`isinstance` checks for a mapping: ``dict`` first, since the rendered cards
are plain dicts and an exact-type check is far cheaper than the ABC's (``Mapping`` alone
goes through ``ABCMeta.__instancecheck__`` for every card, suggestion, action and coding)."""


@dataclass(frozen=True)
class CardIds:
    card_uuids: tuple[str, ...]
    suggestion_uuids: tuple[str, ...]
    suggestions: tuple[AuditSuggestion, ...]


def card_ids(cards: Iterable[Mapping[str, Any]]) -> CardIds:
    """The uuids of ``cards`` and of their suggestions, each suggestion with its option code."""
    card_uuids: list[str] = []
    suggestion_uuids: list[str] = []
    suggestions: list[AuditSuggestion] = []
    for card in cards:
        card_uuid = card.get("uuid")
        if not isinstance(card_uuid, str):
            continue
        card_uuids.append(card_uuid)
        for suggestion in card.get("suggestions") or ():
            if not isinstance(suggestion, _MAPPING):
                continue
            suggestion_uuid = suggestion.get("uuid")
            if not isinstance(suggestion_uuid, str):
                continue
            suggestion_uuids.append(suggestion_uuid)
            # (card_uuid, suggestion_uuid, option_code): positional, the cheaper call
            suggestions.append(AuditSuggestion(card_uuid, suggestion_uuid, option_code(suggestion)))
    return CardIds(tuple(card_uuids), tuple(suggestion_uuids), tuple(suggestions))


def option_code(suggestion: Mapping[str, Any]) -> str:
    """The treatment-option code of the suggestion's ServiceRequest; else its first code.

    Data-needed orders carry no treatment-option Coding; their first code (the order's own)
    identifies them in the feedback report. ``""`` when the suggestion has no coded resource.
    """
    first = ""
    for action in suggestion.get("actions") or ():
        if not isinstance(action, _MAPPING):
            continue
        resource = action.get("resource")
        code = resource.get("code") if isinstance(resource, _MAPPING) else None
        codings = code.get("coding") if isinstance(code, _MAPPING) else None
        for coding in codings or ():
            if not isinstance(coding, _MAPPING):
                continue
            value = coding.get("code")
            if not isinstance(value, str):
                continue
            if coding.get("system") == TREATMENT_OPTION_SYSTEM:
                return str(value)
            first = first or str(value)
    return first
