"""The schema is created and migrated at start-up, once, even when replicas start together."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from service.settings import Settings
from service.store import open_store
from service.store import schema as t
from service.store.engine import enable_wal
from service.store.migrations import MIGRATIONS, current_version

from .conftest import OpenStore
from .helpers import rows


async def test_a_fresh_database_is_brought_to_the_latest_version(
    open_test_store: OpenStore,
) -> None:
    store = await open_test_store()

    async with store.engine.connect() as conn:
        assert await conn.run_sync(current_version) == MIGRATIONS[-1].version
    applied = await rows(store, t.schema_migrations)
    assert [row["version"] for row in applied] == [m.version for m in MIGRATIONS]


async def test_a_restart_applies_nothing_twice(open_test_store: OpenStore) -> None:
    first = await open_test_store()
    await first.close()
    second = await open_test_store()

    applied = await rows(second, t.schema_migrations)
    assert len(applied) == len(MIGRATIONS)


async def test_replicas_starting_at_once_all_come_up(open_test_store: OpenStore) -> None:
    stores = await asyncio.gather(*(open_test_store() for _ in range(4)))

    assert all([await s.ping() for s in stores])
    applied = await rows(stores[0], t.schema_migrations)
    assert len(applied) == len(MIGRATIONS)


async def test_the_sqlite_file_gets_its_directory_wal_and_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "there.db"
    store = await open_store(Settings(database_url=f"sqlite:///{path}"))
    try:
        assert path.exists()
        async with store.engine.connect() as conn:
            journal = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
            synchronous = (await conn.exec_driver_sql("PRAGMA synchronous")).scalar()
            busy = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
    finally:
        await store.close()
    assert journal == "wal"
    assert synchronous == 2  # FULL
    assert busy is not None and busy > 0


async def test_an_unreachable_database_fails_start_up_loudly() -> None:
    with pytest.raises((OSError, sa.exc.SQLAlchemyError)):
        await open_store(Settings(database_url="postgresql://nobody@127.0.0.1:1/none"))


async def test_ping_reports_a_reachable_database(open_test_store: OpenStore) -> None:
    store = await open_test_store()
    assert await store.ping() is True


def test_processes_opening_a_new_sqlite_file_together_all_get_wal(tmp_path: Path) -> None:
    # Two connections that both hold the shared lock and want the exclusive one to switch
    # the journal mode: SQLite answers "database is locked" to one at once, without its
    # busy handler. Eight openers on each of 30 new files made that happen (about one
    # file in 15 failed before enable_wal retried).
    for attempt in range(30):
        path = tmp_path / f"replicas-{attempt}.db"
        errors: list[BaseException] = []

        def open_file(target: Path = path, errors: list[BaseException] = errors) -> None:
            try:
                enable_wal(target)
            except BaseException as error:
                errors.append(error)

        openers = [threading.Thread(target=open_file) for _ in range(8)]
        for opener in openers:
            opener.start()
        for opener in openers:
            opener.join()

        assert errors == []
        with sqlite3.connect(path) as check:
            assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
