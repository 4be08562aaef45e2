"""The feedback report: what clinicians did with the cards, for the CDS team tuning content.

Read-only and portable (plain SELECTs; the joins between feedback and audit run in
Python because accepted suggestion ids are stored as a JSON list, and JSON functions differ
between SQLite and PostgreSQL).

Definitions:
- ``total`` / ``by_outcome``: feedback items whose outcome timestamp is on or after ``since``.
- Per option: ``shown`` = suggestions of that option in audited cards since ``since``;
  ``offered`` = cards that received feedback and carried a suggestion of that option;
  ``accepted`` = of those, the suggestions accepted; ``acceptance_rate`` = accepted / offered.
- Override reasons are grouped by the verdict of the hook call that produced the card
  (``unknown-card`` when no audit record names the card).
- Unknown cards: feedback whose card uuid no audit record names (at report time: feedback
  that arrived before its audit record was written is counted as known once it is).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.store import schema as t
from service.store.engine import READONLY

CHUNK = 500
UNKNOWN_CARD = "unknown-card"
NO_REASON = "(no reason given)"
UNCODED = "(uncoded)"
"""Option of a suggestion whose ServiceRequest carried no code."""
UNKNOWN_CARDS_LISTED = 20


@dataclass(frozen=True)
class OptionAcceptance:
    option_code: str
    shown: int
    offered: int
    accepted: int

    @property
    def acceptance_rate(self) -> float | None:
        return None if self.offered == 0 else self.accepted / self.offered


@dataclass(frozen=True)
class FeedbackReport:
    since: datetime | None
    total: int
    by_outcome: dict[str, int]
    options: list[OptionAcceptance]
    override_reasons: dict[str, dict[str, int]]
    """verdict -> override reason code -> count."""
    reason_displays: dict[str, str]
    unknown_card_items: int
    unknown_card_uuids: list[str] = field(default_factory=list)
    """Up to 20 of them, for a look in the EHR's logs."""
    unmapped_accepted_suggestions: int = 0
    """Accepted suggestion ids that no audit record maps to an option."""

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "total": self.total,
            "by_outcome": self.by_outcome,
            "acceptance_by_option": {
                o.option_code: {
                    "shown": o.shown,
                    "offered": o.offered,
                    "accepted": o.accepted,
                    "acceptance_rate": o.acceptance_rate,
                }
                for o in self.options
            },
            "override_reasons_by_verdict": self.override_reasons,
            "override_reason_displays": self.reason_displays,
            "unknown_cards": {
                "items": self.unknown_card_items,
                "card_uuids": self.unknown_card_uuids,
            },
            "unmapped_accepted_suggestions": self.unmapped_accepted_suggestions,
        }


async def build_report(engine: AsyncEngine, since: datetime | None = None) -> FeedbackReport:
    async with engine.connect() as conn:
        conn = await conn.execution_options(**{READONLY: True})
        if not await conn.run_sync(lambda c: sa.inspect(c).has_table(t.feedback.name)):
            return _empty(since)
        return await _build(conn, since)


def _empty(since: datetime | None) -> FeedbackReport:
    return FeedbackReport(
        since=since,
        total=0,
        by_outcome={"accepted": 0, "overridden": 0},
        options=[],
        override_reasons={},
        reason_displays={},
        unknown_card_items=0,
    )


async def _build(conn: AsyncConnection, since: datetime | None) -> FeedbackReport:
    f = t.feedback.c
    query = sa.select(
        f.card_uuid,
        f.outcome,
        f.accepted_suggestions,
        f.override_reason_code,
        f.override_reason_display,
    )
    if since is not None:
        query = query.where(f.outcome_timestamp >= since)
    feedback_rows = (await conn.execute(query)).all()
    cards = {row.card_uuid for row in feedback_rows}

    verdict_of: dict[str, str | None] = {}
    for chunk in _chunks(cards):
        result = await conn.execute(
            sa.select(t.audit_card.c.card_uuid, t.audit.c.verdict)
            .join(t.audit, t.audit.c.id == t.audit_card.c.audit_id)
            .where(t.audit_card.c.card_uuid.in_(chunk))
        )
        for card, verdict in result:
            verdict_of[card] = verdict
    suggestions_of: dict[str, dict[str, str]] = defaultdict(dict)
    for chunk in _chunks(cards):
        rows = await conn.execute(
            sa.select(
                t.audit_suggestion.c.card_uuid,
                t.audit_suggestion.c.suggestion_uuid,
                t.audit_suggestion.c.option_code,
            ).where(t.audit_suggestion.c.card_uuid.in_(chunk))
        )
        for card, suggestion, option in rows:
            suggestions_of[card][suggestion] = option or UNCODED

    shown_query = sa.select(t.audit_suggestion.c.option_code, sa.func.count()).group_by(
        t.audit_suggestion.c.option_code
    )
    if since is not None:
        shown_query = shown_query.where(t.audit_suggestion.c.at >= since)
    shown: Counter[str] = Counter()
    for code, n in await conn.execute(shown_query):
        shown[code or UNCODED] += int(n)

    by_outcome: Counter[str] = Counter({"accepted": 0, "overridden": 0})
    accepted_pairs: set[tuple[str, str]] = set()
    unmapped = 0
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    displays: dict[str, str] = {}
    unknown_items = 0
    unknown_uuids: list[str] = []
    for row in feedback_rows:
        by_outcome[row.outcome] += 1
        if row.card_uuid not in verdict_of:
            unknown_items += 1
            if row.card_uuid not in unknown_uuids and len(unknown_uuids) < UNKNOWN_CARDS_LISTED:
                unknown_uuids.append(row.card_uuid)
        if row.outcome == "accepted":
            for suggestion in row.accepted_suggestions or []:
                if suggestion in suggestions_of.get(row.card_uuid, {}):
                    accepted_pairs.add((row.card_uuid, suggestion))
                else:
                    unmapped += 1
        elif row.outcome == "overridden":
            verdict = verdict_of.get(row.card_uuid, UNKNOWN_CARD) or UNKNOWN_CARD
            code = row.override_reason_code or NO_REASON
            reasons[verdict][code] += 1
            if row.override_reason_code and row.override_reason_display:
                displays.setdefault(row.override_reason_code, row.override_reason_display)

    offered: Counter[str] = Counter()
    for card in cards:
        for option in set(suggestions_of.get(card, {}).values()):
            offered[option] += 1
    accepted: Counter[str] = Counter(
        suggestions_of[card][suggestion] for card, suggestion in accepted_pairs
    )
    options = [
        OptionAcceptance(code, shown[code], offered[code], accepted[code])
        for code in sorted(set(shown) | set(offered))
    ]
    return FeedbackReport(
        since=since,
        total=len(feedback_rows),
        by_outcome=dict(by_outcome),
        options=options,
        override_reasons={v: dict(c.most_common()) for v, c in sorted(reasons.items())},
        reason_displays=displays,
        unknown_card_items=unknown_items,
        unknown_card_uuids=unknown_uuids,
        unmapped_accepted_suggestions=unmapped,
    )


def _chunks(values: Iterable[str]) -> Iterable[list[str]]:
    ordered = sorted(values)
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start : start + CHUNK]
