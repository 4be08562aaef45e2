"""Test databases: a fresh SQLite file or a fresh PostgreSQL schema, and direct reads.

PostgreSQL comes from ``TEST_DATABASE_URL``; each user gets its own schema (``?schema=``
on the URL, dropped afterwards), so runs never see each other's rows.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from service.store import parse_database_url
from service.store import schema as t
from service.store.engine import READONLY, create_engine

KINDS = ["sqlite", "postgresql"]


def postgres_url_or_skip() -> str:
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set (the PostgreSQL variant needs it)")
    return url


def with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


async def drop_schema(url: str, schema: str) -> None:
    engine = create_async_engine(parse_database_url(url).url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await engine.dispose()


@asynccontextmanager
async def fresh_database(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """Yield the URL of a database nobody else uses; drop it afterwards (PostgreSQL)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'liver-cds.db'}"
        return
    base = postgres_url_or_skip()
    schema = f"liver_cds_test_{uuid.uuid4().hex[:12]}"
    try:
        yield with_schema(base, schema)
    finally:
        await drop_schema(base, schema)


async def select_all(database_url: str, table: sa.Table) -> list[dict[str, Any]]:
    """Every row of ``table``, read with a fresh engine (as another process would)."""
    engine = create_engine(parse_database_url(database_url))
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(**{READONLY: True})
            return [dict(row._mapping) for row in await conn.execute(sa.select(table))]
    finally:
        await engine.dispose()


async def feedback_keys(database_url: str) -> list[tuple[str, str]]:
    """(card uuid, outcome) of every stored feedback row, sorted, duplicates kept."""
    return sorted(
        (r["card_uuid"], r["outcome"]) for r in await select_all(database_url, t.feedback)
    )


@asynccontextmanager
async def writes_blocked(database_url: str, table: sa.Table) -> AsyncIterator[None]:
    """Hold a lock that makes inserts into ``table`` wait (reads still pass), as a busy or
    slow database does: SQLite's write lock, or PostgreSQL's EXCLUSIVE table lock."""
    target = parse_database_url(database_url)
    if target.dialect == "sqlite":
        assert target.sqlite_path is not None
        holder = sqlite3.connect(target.sqlite_path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            yield
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        return
    engine = create_engine(target)
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(f"LOCK TABLE {table.name} IN EXCLUSIVE MODE"))
            yield
            await conn.rollback()
    finally:
        await engine.dispose()
