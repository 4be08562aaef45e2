"""Plain database URLs become async driver URLs; nothing else is accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.store import DatabaseUrlError, parse_database_url


@pytest.mark.parametrize(
    ("raw", "driver", "path"),
    [
        ("sqlite:///./var/liver-cds.db", "sqlite+aiosqlite", Path("./var/liver-cds.db")),
        ("sqlite:////srv/data/liver.db", "sqlite+aiosqlite", Path("/srv/data/liver.db")),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite", Path("x.db")),
        ("sqlite://", "sqlite+aiosqlite", None),
    ],
)
def test_sqlite_urls_use_aiosqlite(raw: str, driver: str, path: Path | None) -> None:
    target = parse_database_url(raw)
    assert (target.dialect, target.url.drivername, target.sqlite_path) == ("sqlite", driver, path)


@pytest.mark.parametrize(
    "raw",
    [
        "postgresql://cds:secret@db.internal:5432/liver",
        "postgres://cds:secret@db.internal:5432/liver",
        "postgresql+asyncpg://cds:secret@db.internal:5432/liver",
        "postgresql+psycopg://cds:secret@db.internal:5432/liver",
    ],
)
def test_postgresql_urls_use_asyncpg(raw: str) -> None:
    target = parse_database_url(raw)
    assert target.dialect == "postgresql"
    assert target.url.drivername == "postgresql+asyncpg"
    assert (target.url.host, target.url.port, target.url.database) == ("db.internal", 5432, "liver")
    assert target.url.password == "secret"
    assert target.schema is None


def test_the_schema_parameter_is_ours_and_leaves_the_driver_url() -> None:
    target = parse_database_url("postgresql://u@h/db?schema=liver_cds&ssl=require")
    assert target.schema == "liver_cds"
    assert dict(target.url.query) == {"ssl": "require"}


def test_libpq_sslmode_becomes_asyncpg_ssl() -> None:
    target = parse_database_url("postgresql://u@h/db?sslmode=verify-full")
    assert dict(target.url.query) == {"ssl": "verify-full"}


@pytest.mark.parametrize(
    "raw",
    [
        "mysql://u@h/db",
        "postgresql://u@h/db?schema=x;drop",
        "not a url",
        "sqlite:///file:data.db?mode=ro&uri=true",
    ],
)
def test_unusable_urls_are_refused_with_a_clear_error(raw: str) -> None:
    with pytest.raises(DatabaseUrlError, match="LIVER_CDS_DATABASE_URL"):
        parse_database_url(raw)
