"""On SQLite an audit batch is one transaction run on the driver's thread (sql.py,
``_write_audit_sqlite``): it must store exactly what SQLAlchemy's own insert stores, and
all of a batch or none of it."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from service.settings import Settings
from service.store import open_store
from service.store import schema as t
from service.store.sql import _run_transaction

from .helpers import hook_call


def _raw_rows(path: Path, table: str) -> list[dict[str, Any]]:
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in connection.execute(f"SELECT * FROM {table}")]
    finally:
        connection.close()


async def test_the_batch_stores_the_bytes_sqlalchemy_would_store(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    store = await open_store(Settings(database_url=f"sqlite:///{path}", audit_key="k"))
    at = datetime(2025, 3, 1, 9, 30, 15, 250000, tzinfo=UTC)
    store.audit(hook_call(patient="patient-7", at=at))
    await store.flush_audit()
    (written,) = _raw_rows(path, t.audit.name)
    # The same row again, through SQLAlchemy's executemany (the PostgreSQL path).
    again = {**written, "id": "sqlalchemy-row", "at": at}
    for name in ("offered", "recommended", "card_uuids", "suggestion_uuids"):
        again[name] = json.loads(written[name])
    async with store.engine.begin() as conn:
        await conn.execute(t.audit.insert(), [again])
    await store.close()

    by_id = {row["id"]: row for row in _raw_rows(path, t.audit.name)}
    reference = by_id.pop("sqlalchemy-row")
    (fast,) = by_id.values()
    assert {k: v for k, v in fast.items() if k != "id"} == {
        k: v for k, v in reference.items() if k != "id"
    }
    assert fast["at"] == "2025-03-01 09:30:15.250000"  # naive UTC, SQLAlchemy's text format


def test_a_batch_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    connection.execute("CREATE TABLE x (id TEXT PRIMARY KEY)")
    statements: list[tuple[str, tuple[Any, ...]]] = [
        ("INSERT INTO x (id) VALUES (?), (?)", ("a", "b")),
        ("INSERT INTO x (id) VALUES (?)", ("a",)),  # a repeated key: the batch fails
    ]
    with pytest.raises(sqlite3.IntegrityError):
        _run_transaction(connection, statements)
    assert not connection.in_transaction
    assert connection.execute("SELECT count(*) FROM x").fetchone() == (0,)

    _run_transaction(connection, statements[:1])
    assert connection.execute("SELECT count(*) FROM x").fetchone() == (2,)
    connection.close()


async def test_records_wait_out_another_process_holding_the_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SELECT 1 answers while another process holds SQLite's write lock (WAL): the writer
    # must not read "the database answers" as "it refuses these records" and drop them.
    import asyncio

    from service.store import engine as engine_module

    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "audit.db"
    store = await open_store(Settings(database_url=f"sqlite:///{path}", audit_key="k"))
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        store.audit(hook_call(patient="patient-7"))
        await asyncio.sleep(1.5)  # three failed attempts and more
        holder.execute("ROLLBACK")
        await asyncio.wait_for(store.flush_audit(), 20)
    finally:
        holder.close()
        await store.close()
    assert len(_raw_rows(path, t.audit.name)) == 1
