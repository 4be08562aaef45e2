"""Persistence: feedback and audit on SQLite or PostgreSQL (SQLAlchemy 2 async).

The one entry point is :func:`open_store`; callers see the :class:`Store` protocol.
"""

from __future__ import annotations

import asyncio

from service.settings import Settings
from service.store.base import (
    AuditRecord,
    AuditSuggestion,
    FeedbackItem,
    FeedbackOutcome,
    FeedbackResult,
    Store,
)
from service.store.engine import create_engine
from service.store.migrations import migrate
from service.store.sql import InvalidFeedbackError, PatientRef, PurgeResult, SqlStore
from service.store.urls import DatabaseTarget, DatabaseUrlError, parse_database_url

__all__ = [
    "AuditRecord",
    "AuditSuggestion",
    "DatabaseTarget",
    "DatabaseUrlError",
    "FeedbackItem",
    "FeedbackOutcome",
    "FeedbackResult",
    "InvalidFeedbackError",
    "PurgeResult",
    "SqlStore",
    "Store",
    "open_store",
    "parse_database_url",
]


async def open_store(settings: Settings) -> SqlStore:
    """Connect to ``settings.database_url``, create or migrate the schema, start the writers.

    Call it inside the running event loop (the app's lifespan) and ``await store.close()``
    at shutdown: ``close`` writes every queued audit record before releasing connections.
    Raises :class:`DatabaseUrlError` for an unusable URL and the driver's error when the
    database cannot be reached (start-up should fail loudly then).
    """
    target = parse_database_url(settings.database_url)
    # In a thread: on SQLite, preparing the file may wait for another process's lock.
    engine = await asyncio.to_thread(create_engine, target)
    try:
        audit_key = await migrate(engine, target, settings.audit_key)
    except BaseException:
        await engine.dispose()
        raise
    in_memory = target.dialect == "sqlite" and target.sqlite_path is None
    store = SqlStore(
        engine,
        PatientRef(audit_key, settings.audit_plain_patient_id),
        retention_days=settings.retention_days,
        audit_engine=None if in_memory else lambda: create_engine(target, writer=True),
    )
    await store.start()
    return store
