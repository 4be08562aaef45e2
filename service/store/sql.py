"""The :class:`~service.store.base.Store` on SQLAlchemy: SQLite or PostgreSQL, one code path.

Feedback is written in the caller's request (committed before ``save_feedback`` returns,
so the HTTP layer can answer 200 only for what is on disk). Idempotency is the database's
job: the unique key (card uuid, outcome, outcome timestamp) plus ``INSERT ... ON CONFLICT
DO NOTHING RETURNING id`` stores each item once, however many processes receive it, and
tells us which items were new.

Audit records go through :class:`~service.store.audit_writer.AuditWriter`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.observability import get_logger
from service.store import schema as t
from service.store.audit_writer import AuditWriter
from service.store.background import BackgroundLoop
from service.store.base import AuditRecord, FeedbackItem, FeedbackResult
from service.store.engine import READONLY
from service.uuids import new_uuid

log = get_logger("store")

ID_MAX = 200
"""Longest identifier (card uuid, suggestion id, code) accepted; ours are 36 characters."""
FEEDBACK_CHUNK = 500
RETENTION_INTERVAL_S = 3600.0
PING_TIMEOUT_S = 2.0


class InvalidFeedbackError(ValueError):
    """A feedback item the store will not keep (the HTTP layer answers 400 with the text)."""


@dataclass(frozen=True)
class PurgeResult:
    audit: int
    feedback: int


class PatientRef:
    """How the audit names a patient: a keyed hash (HMAC-SHA256, hex) or the plain id."""

    def __init__(self, key: str, plain: bool) -> None:
        self._key = key.encode()
        self._plain = plain

    def __call__(self, patient_id: str | None) -> tuple[str | None, str | None]:
        if patient_id is None:
            return None, None
        if self._plain:
            return _clean(patient_id, ID_MAX), "plain"
        digest = hmac.new(self._key, patient_id.encode(), hashlib.sha256).hexdigest()
        return digest, "hmac-sha256"


AUDIT_LINGER_S = 0.05
"""How long the audit writer waits for more records before a transaction (audit_writer.py)."""


class SqlStore:
    """Feedback and audit on one async engine. Build it with :func:`service.store.open_store`."""

    def __init__(
        self,
        engine: AsyncEngine,
        patient_ref: PatientRef,
        *,
        retention_days: int = 0,
        max_audit_queue: int = 100_000,
        audit_batch: int = 100,
        audit_linger_s: float = AUDIT_LINGER_S,
        audit_engine: Callable[[], AsyncEngine] | None = None,
    ) -> None:
        """``audit_engine`` makes a second engine on the same database for this process's
        writes (audit batches and feedback), which then run on a loop of its own
        (``background.py`` says why); without it (an in-memory SQLite database, which a
        second engine would not see) they share ``engine`` and the caller's loop."""
        self.engine = engine
        self._patient_ref = patient_ref
        self._retention_days = retention_days
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._audit_engine_factory = audit_engine
        self._audit_engine: AsyncEngine | None = None
        self._audit_loop: BackgroundLoop | None = None
        self._writer_options: dict[str, Any] = {
            "max_queue": max_audit_queue,
            "max_batch": audit_batch,
            "linger_s": audit_linger_s,
        }
        # On the caller's loop; start() replaces it with one on the background loop.
        self._writer = self._new_writer(engine)
        self._retention_task: asyncio.Task[None] | None = None
        self._closed = False

    def _new_writer(self, engine: AsyncEngine) -> AuditWriter:
        async def write(records: Sequence[AuditRecord]) -> None:
            await self._write_audit_batch(engine, records)

        async def ping() -> bool:
            # "Does the database answer?" before the writer drops a refused record: on
            # SQLite a SELECT answers while another process holds the write lock, so the
            # lock is probed too (else every queued record would be dropped as refused).
            return await _ready(engine)

        return AuditWriter(write, ping, **self._writer_options)

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the audit writer and, with retention on, purge now and every hour."""
        factory = self._audit_engine_factory
        if factory is None:
            self._writer.start()
        else:
            self._audit_loop = BackgroundLoop("liver-cds-audit")
            self._audit_loop.start()

            # Records audited before start() move to the writer that will write them.
            early = self._writer.hand_over()

            async def start_writer() -> tuple[AsyncEngine, AuditWriter]:
                engine = factory()
                writer = self._new_writer(engine)
                for record in early:
                    writer.submit(record)
                writer.start()
                return engine, writer

            self._audit_engine, self._writer = await self._audit_loop.run(start_writer())
        if self._retention_days > 0:
            await self._purge_logged()
            self._retention_task = asyncio.get_running_loop().create_task(
                self._retention_loop(), name="liver-cds-retention"
            )

    async def close(self) -> None:
        """Write every queued audit record, stop background work, release connections."""
        if self._closed:
            return
        self._closed = True
        if self._retention_task is not None:
            self._retention_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention_task
        audit_loop, audit_engine = self._audit_loop, self._audit_engine
        if audit_loop is None:
            await self._writer.close()
        else:
            await audit_loop.run(self._writer.close())
            if audit_engine is not None:
                await audit_loop.run(audit_engine.dispose())
            await audit_loop.stop()
        await self.engine.dispose()

    # --- feedback ----------------------------------------------------------------------------

    async def save_feedback(self, items: Sequence[FeedbackItem]) -> FeedbackResult:
        """Store the items, committed before returning.

        ``stored`` counts new rows, ``duplicates`` items already stored (earlier, by another
        process, or twice in this request), ``unknown_cards`` the items of this request whose
        card uuid no audit record names (they are stored, flagged ``known_card = false``).
        Raises :class:`InvalidFeedbackError` for identifiers over 200 characters.

        With the writer on its own loop, the transaction runs there too, on the writer's
        engine: a commit then costs round trips on an idle loop, not on the busy one that
        answers hook calls (``background.py``), and one engine means one queue for SQLite's
        write lock instead of two engines contending for it.
        """
        if self._audit_loop is not None and self._audit_engine is not None:
            return await self._audit_loop.run(self._save_feedback(self._audit_engine, items))
        return await self._save_feedback(self.engine, items)

    async def _save_feedback(
        self, engine: AsyncEngine, items: Sequence[FeedbackItem]
    ) -> FeedbackResult:
        now = t.utcnow()
        rows: dict[tuple[str, str, datetime], dict[str, Any]] = {}
        for item in items:
            row = _feedback_row(item, now)
            rows.setdefault((row["card_uuid"], row["outcome"], row["outcome_timestamp"]), row)
        if not rows:
            return FeedbackResult(stored=0, duplicates=0, unknown_cards=0)
        stored = 0
        unknown = 0
        unique_rows = list(rows.values())
        async with engine.begin() as conn:
            known = await _known_cards(conn, {row["card_uuid"] for row in unique_rows})
            for row in unique_rows:
                row["known_card"] = row["card_uuid"] in known or self._writer.is_pending_card(
                    row["card_uuid"]
                )
                unknown += not row["known_card"]
            for start in range(0, len(unique_rows), FEEDBACK_CHUNK):
                chunk = unique_rows[start : start + FEEDBACK_CHUNK]
                statement = (
                    self._insert(t.feedback)
                    .values(chunk)
                    .on_conflict_do_nothing(
                        index_elements=[
                            t.feedback.c.card_uuid,
                            t.feedback.c.outcome,
                            t.feedback.c.outcome_timestamp,
                        ]
                    )
                    .returning(t.feedback.c.id)
                )
                stored += len((await conn.execute(statement)).scalars().all())
        return FeedbackResult(stored=stored, duplicates=len(items) - stored, unknown_cards=unknown)

    # --- audit -------------------------------------------------------------------------------

    def audit(self, record: AuditRecord) -> None:
        """Queue the record (never blocks, never raises); written in the background."""
        self._writer.submit(record)

    async def flush_audit(self) -> None:
        """Wait until every audit record queued so far is in the database."""
        if self._audit_loop is None:
            await self._writer.flush()
        else:
            await self._audit_loop.run(self._writer.flush())

    @property
    def audit_queued(self) -> int:
        return self._writer.queued

    @property
    def audit_written(self) -> int:
        """Audit records written since start-up (a figure for tests and diagnostics)."""
        return self._writer.written

    async def _write_audit_batch(self, engine: AsyncEngine, records: Sequence[AuditRecord]) -> None:
        audit_rows: list[dict[str, Any]] = []
        card_rows: list[dict[str, Any]] = []
        suggestion_rows: list[dict[str, Any]] = []
        for record in records:
            audit_id = new_uuid()  # time-ordered, not uuid4(): see service/uuids.py
            ref, kind = self._patient_ref(record.patient_id)
            audit_rows.append(
                {
                    "id": audit_id,
                    "hook_instance": _clean(record.hook_instance, ID_MAX),
                    "service_id": _clean(record.service_id, ID_MAX),
                    "at": record.at,
                    "patient_ref": ref,
                    "patient_ref_kind": kind,
                    "status": record.status,
                    "latency_ms": float(record.latency_ms),
                    "verdict": _clean_opt(record.verdict, 100),
                    "rule": _clean_opt(record.rule, 100),
                    "offered": _clean_list(record.offered),
                    "recommended": _clean_list(record.recommended),
                    "card_uuids": _clean_list(record.card_uuids),
                    "suggestion_uuids": _clean_list(record.suggestion_uuids),
                    "ruleset_version": _clean_opt(record.ruleset_version, 100),
                }
            )
            for card in dict.fromkeys(record.card_uuids):
                card_rows.append(
                    {"audit_id": audit_id, "card_uuid": _clean(card, ID_MAX), "at": record.at}
                )
            for suggestion in record.suggestions:
                suggestion_rows.append(
                    {
                        "audit_id": audit_id,
                        "card_uuid": _clean(suggestion.card_uuid, ID_MAX),
                        "suggestion_uuid": _clean(suggestion.suggestion_uuid, ID_MAX),
                        "option_code": _clean(suggestion.option_code, ID_MAX),
                        "at": record.at,
                    }
                )
        cards = sorted({row["card_uuid"] for row in card_rows})
        if engine.dialect.name == "sqlite":
            await _write_audit_sqlite(engine, audit_rows, card_rows, suggestion_rows, cards)
            return
        async with engine.begin() as conn:
            await _insert_rows(conn, t.audit, audit_rows)
            await _insert_rows(conn, t.audit_card, card_rows)
            await _insert_rows(conn, t.audit_suggestion, suggestion_rows)
            for start in range(0, len(cards), FEEDBACK_CHUNK):
                # Feedback that arrived before this record was written (another replica
                # answered the EHR's feedback first) now refers to a known card.
                await conn.execute(
                    sa.update(t.feedback)
                    .where(
                        t.feedback.c.card_uuid.in_(cards[start : start + FEEDBACK_CHUNK]),
                        t.feedback.c.known_card.is_(False),
                    )
                    .values(known_card=True)
                )

    # --- health and retention -------------------------------------------------------------

    async def ping(self) -> bool:
        """True when a ``SELECT 1`` answers within two seconds and, on SQLite, the write
        lock can be taken within :data:`WRITE_PROBE_TIMEOUT_S` (readiness).

        In WAL mode a ``SELECT`` is served while another process holds the write lock for
        ever (a stuck migration, an operator's ``BEGIN EXCLUSIVE`` in the sqlite3 shell), yet
        every feedback then fails and the audit queue grows: not ready.
        """
        return await _ready(self.engine)

    async def purge(self, *, now: datetime | None = None, days: int | None = None) -> PurgeResult:
        """Delete audit and feedback rows older than ``days`` (default: the retention setting).

        Age is the audit record's time and the feedback's *received* time.
        """
        keep_days = self._retention_days if days is None else days
        if keep_days <= 0:
            return PurgeResult(audit=0, feedback=0)
        cutoff = (now or t.utcnow()) - timedelta(days=keep_days)
        async with self.engine.begin() as conn:
            for child in (t.audit_suggestion, t.audit_card):
                await conn.execute(sa.delete(child).where(child.c.at < cutoff))
            audit_deleted = await conn.execute(sa.delete(t.audit).where(t.audit.c.at < cutoff))
            feedback_deleted = await conn.execute(
                sa.delete(t.feedback).where(t.feedback.c.received_at < cutoff)
            )
        return PurgeResult(audit=audit_deleted.rowcount, feedback=feedback_deleted.rowcount)

    async def _purge_logged(self) -> None:
        try:
            result = await self.purge()
        except Exception as exc:
            log.error("retention purge failed", extra={"error": type(exc).__name__})
            return
        if result.audit or result.feedback:
            log.info(
                "retention purge",
                extra={"audit_deleted": result.audit, "feedback_deleted": result.feedback},
            )

    async def _retention_loop(self) -> None:
        while True:
            await asyncio.sleep(RETENTION_INTERVAL_S)
            await self._purge_logged()


WRITE_PROBE_TIMEOUT_S = 1.0
"""How long the readiness probe waits for SQLite's write lock (held for microseconds by a
healthy writer)."""


def _sqlite_write_lock_free(path: str) -> bool:
    """Take SQLite's write lock and release it at once, on a connection of its own (with its
    own short busy timeout, so a probe never waits the pool's 15 s)."""
    try:
        connection = sqlite3.connect(path, timeout=WRITE_PROBE_TIMEOUT_S, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
        finally:
            connection.close()
    except sqlite3.Error as exc:
        log.warning("database write lock not available", extra={"error": type(exc).__name__})
        return False
    return True


async def _ready(engine: AsyncEngine) -> bool:
    """``SELECT 1`` answers and, on an SQLite file, the write lock can be taken."""
    if not await _ping(engine):
        return False
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:":
        return True
    return await asyncio.to_thread(_sqlite_write_lock_free, path)


async def _ping(engine: AsyncEngine) -> bool:
    try:
        async with asyncio.timeout(PING_TIMEOUT_S):
            async with engine.connect() as conn:
                conn = await conn.execution_options(**{READONLY: True})
                await conn.execute(sa.text("SELECT 1"))
        return True
    except Exception as exc:
        log.warning("database ping failed", extra={"error": type(exc).__name__})
        return False


async def _known_cards(conn: AsyncConnection, cards: set[str]) -> set[str]:
    known: set[str] = set()
    ordered = sorted(cards)
    for start in range(0, len(ordered), FEEDBACK_CHUNK):
        result = await conn.execute(
            sa.select(t.audit_card.c.card_uuid)
            .where(t.audit_card.c.card_uuid.in_(ordered[start : start + FEEDBACK_CHUNK]))
            .distinct()
        )
        known.update(result.scalars())
    return known


def _feedback_row(item: FeedbackItem, now: datetime) -> dict[str, Any]:
    for name, value in (("card", item.card_uuid), ("outcome", item.outcome)):
        _check_id(name, value)
    for suggestion in item.accepted_suggestions:
        _check_id("acceptedSuggestions.id", suggestion)
    if item.override_reason_code is not None:
        _check_id("overrideReason.reason.code", item.override_reason_code)
    stamp = item.outcome_timestamp
    if stamp.tzinfo is None:
        raise InvalidFeedbackError("outcomeTimestamp must carry a time zone")
    return {
        "id": new_uuid(),
        "service_id": _clean(item.service_id, ID_MAX),
        "card_uuid": item.card_uuid,
        "outcome": item.outcome,
        # The key compares instants: the same moment written in another zone is a duplicate.
        "outcome_timestamp": stamp.astimezone(UTC),
        "accepted_suggestions": list(dict.fromkeys(item.accepted_suggestions)),
        "override_reason_code": _clean_opt(item.override_reason_code, ID_MAX),
        "override_reason_system": _clean_opt(item.override_reason_system, 500),
        "override_reason_display": _clean_opt(item.override_reason_display, 1000),
        "override_comment": _clean_opt(item.override_comment, 10_000),
        "received_at": item.received_at or now,
    }


def _check_id(name: str, value: str) -> None:
    if not value or len(value) > ID_MAX or "\x00" in value:
        raise InvalidFeedbackError(f"feedback {name} must be 1 to {ID_MAX} characters")


async def _insert_rows(conn: AsyncConnection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` in one executemany; the engine turns it into multi-row INSERTs.

    Why multi-row: the SQLite driver runs a plain ``executemany`` row by row in its
    thread, releasing and re-taking the GIL around every row; while the event loop is busy
    with hook calls each re-take waits up to the interpreter's switch interval (5 ms), so
    an audit batch of a few hundred rows took seconds and, under sustained load, the audit
    queue (and the process's memory) grew without bound. The audit engine is created with
    SQLAlchemy's "insertmanyvalues" for INSERTs without RETURNING (``engine.py``), which
    sends ``INSERT ... VALUES (...), (...)`` pages from one compiled statement: one step in
    SQLite per page. asyncpg pipelines executemany itself.
    """
    if rows:
        await conn.execute(table.insert(), rows)


async def _write_audit_sqlite(
    engine: AsyncEngine,
    audit_rows: list[dict[str, Any]],
    card_rows: list[dict[str, Any]],
    suggestion_rows: list[dict[str, Any]],
    cards: list[str],
) -> None:
    """One audit batch on SQLite as one transaction run in one hop to the driver's thread.

    Why: through SQLAlchemy's async adapter every statement costs three round trips to
    aiosqlite's thread (cursor, execute, close) and the transaction a few more, seventeen
    per batch; each wakes two threads and takes the GIL from the thread answering hook
    calls. Here the statements are prepared on the writer's loop and the whole transaction
    (``BEGIN IMMEDIATE``, the multi-row INSERT pages, the feedback update, ``COMMIT``) runs
    in one function on the driver's thread: two round trips per batch, counting the pool's
    reset (docs/performance.md). aiosqlite's queue is reached the way SQLAlchemy's own
    aiosqlite adapter reaches it.

    The values are those SQLAlchemy would store: each goes through its column type's own
    bind processor for this dialect (the UTC timestamp, JSON through the engine's
    serialiser). The connection comes from the writer engine's pool of one, so feedback
    transactions of this process still queue behind the batch, not inside SQLite.
    """
    dialect = engine.dialect
    statements = [
        *_insert_pages(dialect, t.audit, audit_rows),
        *_insert_pages(dialect, t.audit_card, card_rows),
        *_insert_pages(dialect, t.audit_suggestion, suggestion_rows),
    ]
    prepare = dialect.identifier_preparer
    feedback_table = prepare.format_table(t.feedback)
    known, card = prepare.quote("known_card"), prepare.quote("card_uuid")
    for start in range(0, len(cards), FEEDBACK_CHUNK):
        # Feedback that arrived before this record was written (another replica answered
        # the EHR's feedback first) now refers to a known card.
        chunk = cards[start : start + FEEDBACK_CHUNK]
        marks = ", ".join("?" * len(chunk))
        # Only quoted schema identifiers and "?" placeholders are interpolated.
        update = (
            f"UPDATE {feedback_table} SET {known} = 1 WHERE {card} IN ({marks}) AND {known} = 0"  # noqa: S608
        )
        statements.append((update, tuple(chunk)))
    async with engine.connect() as conn:
        driver: Any = (await conn.get_raw_connection()).driver_connection  # aiosqlite
        await driver._execute(_run_transaction, driver._conn, statements)


def _insert_pages(
    dialect: sa.Dialect, table: sa.Table, rows: list[dict[str, Any]]
) -> list[tuple[str, tuple[Any, ...]]]:
    """``INSERT INTO table (...) VALUES (?, ...), (?, ...)`` pages with their values.

    Every row carries the same keys; a page holds at most 32,000 bound values (SQLite's
    limit is 32,766). A record's rows share its timestamp object, so a value identical to
    the one before it in the same column is processed once.
    """
    if not rows:
        return []
    names = [column.name for column in table.columns if column.name in rows[0]]
    processors = [table.columns[name].type._cached_bind_processor(dialect) for name in names]
    prepare = dialect.identifier_preparer
    columns = ", ".join(prepare.quote(name) for name in names)
    # Only quoted schema identifiers and "?" placeholders are interpolated.
    head = f"INSERT INTO {prepare.format_table(table)} ({columns}) VALUES "  # noqa: S608
    placeholder = "(" + ", ".join("?" * len(names)) + ")"
    per_page = max(1, 32_000 // len(names))
    last_in: list[Any] = [object()] * len(names)
    last_out: list[Any] = [None] * len(names)
    pages = []
    for start in range(0, len(rows), per_page):
        page = rows[start : start + per_page]
        values: list[Any] = []
        for row in page:
            for i, process in enumerate(processors):
                value = row[names[i]]
                if process is not None:
                    if value is not last_in[i]:
                        last_in[i], last_out[i] = value, process(value)
                    value = last_out[i]
                values.append(value)
        pages.append((head + ", ".join([placeholder] * len(page)), tuple(values)))
    return pages


def _run_transaction(
    connection: sqlite3.Connection, statements: list[tuple[str, tuple[Any, ...]]]
) -> None:
    """Run ``statements`` in one write transaction (on the driver's thread); all or none.

    The connection runs without the sqlite3 module's own transaction handling (``engine.py``),
    so ``BEGIN IMMEDIATE`` takes the write lock up front, waiting up to the busy timeout.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        for sql, values in statements:
            connection.execute(sql, values)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _clean(value: str, max_len: int) -> str:
    """Fit a client-supplied string into its column (PostgreSQL refuses NUL characters)."""
    return value.replace("\x00", "\ufffd")[:max_len]


def _clean_opt(value: str | None, max_len: int) -> str | None:
    return None if value is None else _clean(value, max_len)


def _clean_list(values: Iterable[str]) -> list[str]:
    return [_clean(value, ID_MAX) for value in values]
