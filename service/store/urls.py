"""From the plain ``LIVER_CDS_DATABASE_URL`` to what SQLAlchemy's async engine needs.

Operators write the URLs they know (``sqlite:///./var/liver-cds.db``,
``postgresql://user@host/db``); the async drivers (aiosqlite, asyncpg) are an
implementation detail, so the translation lives here and nowhere else.

libpq's ``?sslmode=require`` (what operators usually write) becomes asyncpg's
``?ssl=require``; other query parameters go to the driver unchanged (for example
``prepared_statement_cache_size=0`` behind PgBouncer in transaction mode).

One extra query parameter is ours: ``?schema=NAME`` on a PostgreSQL URL puts every table
in that schema (created if absent). Deployments use it to share a database; the tests use
it to give every run its own namespace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class DatabaseUrlError(ValueError):
    """``LIVER_CDS_DATABASE_URL`` cannot be used."""


@dataclass(frozen=True)
class DatabaseTarget:
    """Where the store lives: the async driver URL and, for PostgreSQL, the schema."""

    url: URL
    dialect: str
    """``sqlite`` or ``postgresql``."""
    schema: str | None = None
    sqlite_path: Path | None = None
    """The database file (``None`` for an in-memory SQLite database)."""


def parse_database_url(raw: str) -> DatabaseTarget:
    """Translate a plain or driver-qualified URL into a :class:`DatabaseTarget`.

    Accepted: ``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite+aiosqlite://...``,
    ``postgresql://``, ``postgres://``, ``postgresql+asyncpg://`` (and ``+psycopg``-style
    names, which are switched to asyncpg).
    """
    try:
        url = make_url(raw.strip())
    except Exception as exc:  # SQLAlchemy raises ArgumentError with the URL in it
        raise DatabaseUrlError("LIVER_CDS_DATABASE_URL is not a database URL") from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.query:
            # e.g. ?uri=true (SQLite URI filenames): the file would not be the path this
            # service prepares (its directory, WAL mode), so only plain paths are accepted.
            raise DatabaseUrlError(
                "LIVER_CDS_DATABASE_URL: a SQLite URL takes no query parameters; "
                "use sqlite:///relative/path.db or sqlite:////absolute/path.db"
            )
        database = url.database or ""
        path = None if database in ("", ":memory:") else Path(database)
        return DatabaseTarget(
            url=url.set(drivername="sqlite+aiosqlite"), dialect="sqlite", sqlite_path=path
        )
    if backend in ("postgresql", "postgres"):
        query = dict(url.query)
        if "sslmode" in query:  # libpq's spelling; asyncpg takes the same values as ``ssl``
            query["ssl"] = query.pop("sslmode")
        schema_value = query.pop("schema", None)
        schema = schema_value if isinstance(schema_value, str) or schema_value is None else None
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise DatabaseUrlError(
                "LIVER_CDS_DATABASE_URL: schema must be letters, digits and underscores"
            )
        return DatabaseTarget(
            url=url.set(drivername="postgresql+asyncpg", query=query),
            dialect="postgresql",
            schema=schema,
        )
    raise DatabaseUrlError(
        f"LIVER_CDS_DATABASE_URL: unsupported database {backend!r} (use sqlite or postgresql)"
    )
