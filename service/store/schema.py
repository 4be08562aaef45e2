"""The tables, as SQLAlchemy Core objects usable on SQLite and PostgreSQL alike.

Only portable types: strings, integers, floats, booleans, JSON and a UTC timestamp type.
The unique constraint on feedback (card uuid, outcome, outcome timestamp) is what makes
feedback idempotent across processes: every writer inserts with ON CONFLICT DO NOTHING
and the database decides, so there is no read-then-write race to lose.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData()


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A point in time, always handed back as an aware UTC ``datetime``.

    PostgreSQL stores ``timestamptz``. SQLite has no time zones: values are stored as naive
    UTC in SQLAlchemy's fixed-width text format, so comparisons (retention, ``--since``) are
    correct there too. A naive input is taken to be UTC already.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


schema_migrations = sa.Table(
    "liver_cds_schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)

store_meta = sa.Table(
    "liver_cds_meta",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

feedback = sa.Table(
    "liver_cds_feedback",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("service_id", sa.String(200), nullable=False),
    sa.Column("card_uuid", sa.String(200), nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("outcome_timestamp", UTCDateTime, nullable=False),
    sa.Column("accepted_suggestions", sa.JSON, nullable=False),
    sa.Column("override_reason_code", sa.String(200)),
    sa.Column("override_reason_system", sa.String(500)),
    sa.Column("override_reason_display", sa.String(1000)),
    sa.Column("override_comment", sa.Text),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("known_card", sa.Boolean, nullable=False),
    sa.UniqueConstraint(
        "card_uuid", "outcome", "outcome_timestamp", name="uq_liver_cds_feedback_item"
    ),
    sa.Index("ix_liver_cds_feedback_received_at", "received_at"),
)

audit = sa.Table(
    "liver_cds_audit",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("hook_instance", sa.String(200), nullable=False),
    sa.Column("service_id", sa.String(200), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("patient_ref", sa.String(200)),
    sa.Column("patient_ref_kind", sa.String(20)),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("verdict", sa.String(100)),
    sa.Column("rule", sa.String(100)),
    sa.Column("offered", sa.JSON, nullable=False),
    sa.Column("recommended", sa.JSON, nullable=False),
    sa.Column("card_uuids", sa.JSON, nullable=False),
    sa.Column("suggestion_uuids", sa.JSON, nullable=False),
    sa.Column("ruleset_version", sa.String(100)),
    sa.Index("ix_liver_cds_audit_at", "at"),
    sa.Index("ix_liver_cds_audit_hook_instance", "hook_instance"),
)

audit_card = sa.Table(
    "liver_cds_audit_card",
    metadata,
    sa.Column("audit_id", sa.String(36), nullable=False),
    sa.Column("card_uuid", sa.String(200), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_liver_cds_audit_card_card_uuid", "card_uuid"),
    sa.Index("ix_liver_cds_audit_card_at", "at"),
)

audit_suggestion = sa.Table(
    "liver_cds_audit_suggestion",
    metadata,
    sa.Column("audit_id", sa.String(36), nullable=False),
    sa.Column("card_uuid", sa.String(200), nullable=False),
    sa.Column("suggestion_uuid", sa.String(200), nullable=False),
    sa.Column("option_code", sa.String(200), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_liver_cds_audit_suggestion_card_uuid", "card_uuid"),
    sa.Index("ix_liver_cds_audit_suggestion_at", "at"),
)
