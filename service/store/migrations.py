"""Schema creation and migration at start-up, safe when several replicas start at once.

A versioned migration table (``liver_cds_schema_migrations``) rather than Alembic: the
schema is five tables, migrations must run inside the service at start-up (no separate
deploy step) and under a lock, and Alembic would add a dependency, an ``env.py`` and a
script directory for what is a list of functions here. A migration is appended to
:data:`MIGRATIONS` with the next version number and never edited afterwards; it states
its DDL explicitly (it must not call ``metadata.create_all`` for tables that later
versions change).

Concurrency: on PostgreSQL the whole migration runs in one transaction that first takes
``pg_advisory_xact_lock`` (a key derived from the schema name), so a second replica waits
and then finds the versions applied; DDL is transactional there, so a failed migration
leaves nothing half-done. On SQLite the transaction starts with ``BEGIN IMMEDIATE``
(see :mod:`service.store.engine`), which serialises processes the same way.

The audit key is settled in the same transaction: when ``LIVER_CDS_AUDIT_KEY`` is empty,
a random key is generated once and stored in ``liver_cds_meta``, so patient-id hashes stay
the same across restarts and replicas.
"""

from __future__ import annotations

import secrets
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store import schema as t
from service.store.urls import DatabaseTarget

AUDIT_KEY_META = "audit_hmac_key"


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _v1_initial(conn: Connection) -> None:
    for table in (t.store_meta, t.feedback, t.audit, t.audit_card, t.audit_suggestion):
        table.create(conn)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "feedback, audit, audit cards and suggestions, meta", _v1_initial),
)


def advisory_lock_key(schema: str | None) -> int:
    """A stable signed 32-bit key per schema (fits ``pg_advisory_xact_lock(bigint)``)."""
    return zlib.crc32(f"liver-cds-migrations:{schema or ''}".encode()) - 2**31


async def migrate(engine: AsyncEngine, target: DatabaseTarget, audit_key: str) -> str:
    """Bring the schema to the latest version; return the audit HMAC key to use."""
    async with engine.begin() as conn:
        if target.dialect == "postgresql":
            await conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"),
                {"key": advisory_lock_key(target.schema)},
            )
            if target.schema:
                await conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{target.schema}"'))
        await conn.run_sync(_apply_pending)
        if audit_key:
            return audit_key
        return await conn.run_sync(_stored_audit_key)


def _apply_pending(conn: Connection) -> None:
    t.schema_migrations.create(conn, checkfirst=True)
    applied = set(conn.execute(sa.select(t.schema_migrations.c.version)).scalars())
    for migration in MIGRATIONS:
        if migration.version in applied:
            continue
        migration.apply(conn)
        conn.execute(
            t.schema_migrations.insert().values(
                version=migration.version,
                description=migration.description,
                applied_at=t.utcnow(),
            )
        )


def _stored_audit_key(conn: Connection) -> str:
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(
        insert(t.store_meta)
        .values(key=AUDIT_KEY_META, value=secrets.token_hex(32))
        .on_conflict_do_nothing(index_elements=[t.store_meta.c.key])
    )
    value = conn.execute(
        sa.select(t.store_meta.c.value).where(t.store_meta.c.key == AUDIT_KEY_META)
    ).scalar_one()
    return str(value)


def current_version(conn: Connection) -> int:
    """The highest applied version (0 for an empty database)."""
    if not sa.inspect(conn).has_table(t.schema_migrations.name):
        return 0
    version = conn.execute(sa.select(sa.func.max(t.schema_migrations.c.version))).scalar()
    return int(version or 0)
