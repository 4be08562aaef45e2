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
            if not isinstance(suggestion, Mapping):
                continue
            suggestion_uuid = suggestion.get("uuid")
            if not isinstance(suggestion_uuid, str):
                continue
            suggestion_uuids.append(suggestion_uuid)
            suggestions.append(
                AuditSuggestion(
                    card_uuid=card_uuid,
                    suggestion_uuid=suggestion_uuid,
                    option_code=option_code(suggestion),
                )
            )
    return CardIds(tuple(card_uuids), tuple(suggestion_uuids), tuple(suggestions))


def option_code(suggestion: Mapping[str, Any]) -> str:
    """The treatment-option code of the suggestion's ServiceRequest; else its first code.

    Data-needed orders carry no treatment-option Coding; their first code (the order's own)
    identifies them in the feedback report. ``""`` when the suggestion has no coded resource.
    """
    first = ""
    for action in suggestion.get("actions") or ():
        if not isinstance(action, Mapping):
            continue
        resource = action.get("resource")
        code = resource.get("code") if isinstance(resource, Mapping) else None
        codings = code.get("coding") if isinstance(code, Mapping) else None
        for coding in codings or ():
            if not isinstance(coding, Mapping) or not isinstance(coding.get("code"), str):
                continue
            if coding.get("system") == TREATMENT_OPTION_SYSTEM:
                return str(coding["code"])
            first = first or str(coding["code"])
    return first
