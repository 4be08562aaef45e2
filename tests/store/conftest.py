"""One storage test suite, run on SQLite (a file under tmp_path) and on the real PostgreSQL
(``TEST_DATABASE_URL``, a fresh schema per test; see ``databases.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from service.settings import Settings
from service.store import SqlStore, open_store

from .databases import KINDS, fresh_database

OpenStore = Callable[..., Awaitable[SqlStore]]


@pytest.fixture(params=KINDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database URL nobody else uses: a fresh SQLite file or a fresh PostgreSQL schema."""
    async with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def open_test_store(database_url: str) -> AsyncIterator[OpenStore]:
    """Open stores on the test database (closed at teardown if the test did not)."""
    opened: list[SqlStore] = []

    async def _open(**settings: object) -> SqlStore:
        store = await open_store(Settings(database_url=database_url, **settings))  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield _open
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_test_store: OpenStore) -> SqlStore:
    return await open_test_store(audit_key="test-audit-key")
