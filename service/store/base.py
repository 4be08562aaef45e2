"""What the rest of the service needs from persistence, independent of the database.

``app.py`` opens a :class:`Store` at start-up (``service.store.open_store``) and closes it
at shutdown; handlers only see this interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from service.records import AuditSuggestion, FeedbackItem, FeedbackOutcome

__all__ = [
    "AuditRecord",
    "AuditSuggestion",
    "FeedbackItem",
    "FeedbackOutcome",
    "FeedbackResult",
    "Store",
]


@dataclass(frozen=True)
class FeedbackResult:
    stored: int
    duplicates: int
    unknown_cards: int


@dataclass(frozen=True)
class AuditRecord:
    """What the service told whom, when and why: one row per hook call.

    ``patient_id`` is the plain id; the store keeps only its keyed hash unless configured
    otherwise (``LIVER_CDS_AUDIT_PLAIN_PATIENT_ID``).
    """

    hook_instance: str
    service_id: str
    at: datetime
    patient_id: str | None
    status: int
    latency_ms: float
    verdict: str | None = None
    rule: str | None = None
    offered: tuple[str, ...] = ()
    recommended: tuple[str, ...] = ()
    card_uuids: tuple[str, ...] = ()
    suggestion_uuids: tuple[str, ...] = ()
    ruleset_version: str | None = None
    suggestions: tuple[AuditSuggestion, ...] = ()
    """Every suggestion of every card, with its card and option code (feedback report)."""


class Store(Protocol):
    async def save_feedback(self, items: Sequence[FeedbackItem]) -> FeedbackResult:
        """Store durably (committed) before returning; repeated items are idempotent."""
        ...

    def audit(self, record: AuditRecord) -> None:
        """Queue an audit record; written off the request path, flushed on close."""
        ...

    async def ping(self) -> bool:
        """True when the database answers (readiness)."""
        ...

    async def close(self) -> None:
        """Flush queued audit records and release connections."""
        ...
