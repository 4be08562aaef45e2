"""One async SQLAlchemy engine per store, tuned for what each database needs.

SQLite (aiosqlite):
- ``journal_mode=WAL``: readers never block the writer, and several processes can share
  the file (each writer waits for the lock instead of failing). The mode is stored in the
  file, so it is set once, when the engine is created (:func:`enable_wal`).
- ``busy_timeout``: a writer that finds the file locked by another process waits up to
  :data:`SQLITE_BUSY_TIMEOUT_MS` instead of failing at once with "database is locked".
- ``synchronous=FULL``: every commit fsyncs the WAL. A SIGKILL alone would not need it
  (a committed transaction is already in the WAL file and the OS page cache, so NORMAL
  survives a killed process); FULL also survives a power cut or kernel crash, which is
  what "stored durably before the 200" means for feedback. The cost is one fsync per
  commit; audit records are written in batches, so it stays small.
- Every write transaction starts with ``BEGIN IMMEDIATE``: the write lock is taken up
  front, so a transaction that reads then writes can never fail half-way with
  ``SQLITE_BUSY_SNAPSHOT`` because another process wrote in between. Read-only work
  (``ping``, the report) opts out with the ``liver_cds_readonly`` execution option.
  This needs the driver's own transaction handling switched off (``isolation_level =
  None``), the recipe of SQLAlchemy's SQLite dialect documentation.

PostgreSQL (asyncpg): the schema from ``?schema=`` becomes the connection's
``search_path``; stale pooled connections are detected with ``pool_pre_ping``.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from service.store.urls import DatabaseTarget

SQLITE_BUSY_TIMEOUT_MS = 15_000
POSTGRES_CONNECT_TIMEOUT_S = 10
READONLY = "liver_cds_readonly"
"""Execution option: this connection only reads (SQLite: plain deferred ``BEGIN``)."""


def create_engine(target: DatabaseTarget, *, writer: bool = False) -> AsyncEngine:
    """Create the engine; for SQLite also the parent directory of the database file.

    ``writer``: the engine of this process's writes (audit and feedback). On SQLite it
    keeps one connection, so the process's transactions queue in the connection pool, in
    order and without delay, instead of inside SQLite: a second connection of the same
    process waiting for the write lock sleeps in SQLite's busy handler in steps of up to
    100 ms, which under load made feedback commits take seconds and starved the audit.
    Other processes on the same file still wait through ``busy_timeout``.
    """
    if target.dialect == "sqlite":
        if target.sqlite_path is not None:
            path = target.sqlite_path.expanduser().resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            enable_wal(path)
        pool: dict[str, Any] = {"pool_size": 1, "max_overflow": 0} if writer else {}
        engine = create_async_engine(target.url, json_serializer=_json_dumps, **pool)
        _install_sqlite_hooks(engine)
        # executemany as multi-row INSERT pages: the driver's row-by-row executemany hands
        # the GIL back and forth once per row, which stalls under load (sql._insert_rows).
        engine.sync_engine.dialect.use_insertmanyvalues_wo_returning = True
        return engine
    connect_args: dict[str, Any] = {"timeout": POSTGRES_CONNECT_TIMEOUT_S}
    if target.schema:
        connect_args["server_settings"] = {"search_path": target.schema}
    return create_async_engine(
        target.url, connect_args=connect_args, pool_pre_ping=True, json_serializer=_json_dumps
    )


def enable_wal(path: Path, *, timeout_s: float = SQLITE_BUSY_TIMEOUT_MS / 1000) -> None:
    """Put the SQLite file at ``path`` in WAL mode (creating it if absent), retrying while busy.

    Switching the journal mode needs the file's exclusive lock, and SQLite does not always
    wait for it: when two connections that both hold the shared lock want it (replicas
    starting together on a new file), it answers "database is locked" at once, without
    calling the busy handler, to avoid a deadlock. So this retries for up to ``timeout_s``.
    It runs once per engine, at start-up; a file already in WAL mode returns at once.
    """
    deadline = time.monotonic() + timeout_s
    pause_s = 0.005
    connection = sqlite3.connect(path, timeout=timeout_s, isolation_level=None)
    try:
        while True:
            try:
                mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() + pause_s > deadline:
                    raise
                time.sleep(pause_s)
                pause_s = min(pause_s * 2, 0.1)
                continue
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"{path}: journal mode stayed {mode!r}, not WAL")
            return
    finally:
        connection.close()


def _json_dumps(value: Any) -> str:
    """JSON columns through orjson: the audit writer serialises four lists per record."""
    return orjson.dumps(value).decode()


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy (the "begin" hook below) own BEGIN, not the sqlite3 module.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous = FULL")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(READONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
