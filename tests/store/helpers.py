"""Small builders for feedback items and audit records, and direct reads of the tables."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from service.store import AuditRecord, AuditSuggestion, FeedbackItem, SqlStore
from service.store import schema as t

SERVICE = "liver-metastasis-resectability"
OVERRIDE_SYSTEM = "https://liver-cds.org/fhir/CodeSystem/override-reason"


def new_uuid() -> str:
    return str(uuid.uuid4())


def accepted(card: str, *suggestions: str, at: datetime | None = None) -> FeedbackItem:
    return FeedbackItem(
        service_id=SERVICE,
        card_uuid=card,
        outcome="accepted",
        outcome_timestamp=at or datetime(2025, 3, 1, 10, 0, tzinfo=UTC),
        accepted_suggestions=suggestions,
    )


def overridden(
    card: str, reason: str | None = "patient-declined", at: datetime | None = None
) -> FeedbackItem:
    return FeedbackItem(
        service_id=SERVICE,
        card_uuid=card,
        outcome="overridden",
        outcome_timestamp=at or datetime(2025, 3, 1, 10, 5, tzinfo=UTC),
        override_reason_code=reason,
        override_reason_system=OVERRIDE_SYSTEM if reason else None,
        override_reason_display=reason.replace("-", " ").capitalize() if reason else None,
        override_comment="discussed with the patient" if reason else None,
    )


def hook_call(
    *,
    patient: str = "patient-1",
    verdict: str = "resectable",
    options: dict[str, str] | None = None,
    at: datetime | None = None,
    card: str | None = None,
) -> AuditRecord:
    """An audit record of a call that answered one card with one suggestion per option.

    ``options`` maps option code -> suggestion uuid (fresh uuids when not given).
    """
    card = card or new_uuid()
    options = (
        options if options is not None else {"resection": new_uuid(), "mdt-review": new_uuid()}
    )
    return AuditRecord(
        hook_instance=new_uuid(),
        service_id=SERVICE,
        at=at or datetime.now(UTC),
        patient_id=patient,
        status=200,
        latency_ms=3.2,
        verdict=verdict,
        rule="7",
        offered=tuple(options),
        recommended=tuple(options)[:1],
        card_uuids=(card,),
        suggestion_uuids=tuple(options.values()),
        ruleset_version="2025.1",
        suggestions=tuple(AuditSuggestion(card, s, code) for code, s in options.items()),
    )


async def rows(store: SqlStore, table: sa.Table) -> list[dict[str, Any]]:
    async with store.engine.connect() as conn:
        result = await conn.execute(sa.select(table))
        return [dict(row._mapping) for row in result]


async def feedback_rows(store: SqlStore) -> list[dict[str, Any]]:
    return await rows(store, t.feedback)


async def audit_rows(store: SqlStore) -> list[dict[str, Any]]:
    return await rows(store, t.audit)
