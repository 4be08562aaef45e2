"""Values handed from the protocol layer to the store: a feedback item and the suggestions
an audited response carried.

A leaf module (it imports nothing of the service) so that ``service/protocol/`` and
``service/store/`` both depend on it and not on each other: the protocol layer shapes
these values from requests and responses, the store persists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

FeedbackOutcome = Literal["accepted", "overridden"]


@dataclass(frozen=True)
class FeedbackItem:
    """One item of a CDS Hooks 2.0 feedback request, validated."""

    service_id: str
    card_uuid: str
    outcome: FeedbackOutcome
    outcome_timestamp: datetime
    accepted_suggestions: tuple[str, ...] = ()
    override_reason_code: str | None = None
    override_reason_system: str | None = None
    override_reason_display: str | None = None
    override_comment: str | None = None
    received_at: datetime | None = None


@dataclass(frozen=True)
class AuditSuggestion:
    """One suggestion shown on a card: lets the feedback report map an accepted suggestion
    uuid back to the treatment option it proposed (``option_code`` is the treatment-option
    code of the suggestion's ServiceRequest, or the data-needed order's code)."""

    card_uuid: str
    suggestion_uuid: str
    option_code: str
