"""``/readyz`` reflects what the configuration needs (issue 15, item 8).

* With ``LIVER_CDS_REDIS_URL`` set (auth required: every token's ``jti`` goes through
  Redis), Redis down is 503: every authenticated call would be a 401. The machine's own
  Redis is never touched: the service is pointed at a closed port, and at a throwaway
  ``redis-server`` this test starts on a free port and stops itself.
* With SQLite, another process holding the write lock is 503: a ``SELECT 1`` still
  answers in WAL mode, but no feedback or audit row could be written.
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.settings import Settings

from .app_helpers import running, settings_for, write_trust
from .tokens import SigningKey, issuer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def throwaway_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own, on a free loopback port, without persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (a throwaway Redis is needed)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        process.terminate()
        process.wait(timeout=10)


def auth_settings(tmp_path: Path, key: SigningKey, redis_url: str) -> Settings:
    return settings_for(
        tmp_path,
        auth="required",
        trust_file=write_trust(tmp_path, issuer([key])),
        redis_url=redis_url,
    )


async def readyz(client: httpx.AsyncClient) -> tuple[int, str]:
    answer = await client.get("/readyz")
    return answer.status_code, answer.json().get("reason", "")


async def test_redis_on_a_closed_port_is_not_ready(tmp_path: Path, ec_key: SigningKey) -> None:
    settings = auth_settings(tmp_path, ec_key, f"redis://127.0.0.1:{free_port()}/0")
    async with running(settings) as client:
        assert await readyz(client) == (503, "redis")


async def test_readiness_follows_redis_going_down(
    tmp_path: Path,
    ec_key: SigningKey,
    throwaway_redis: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, process = throwaway_redis
    async with running(auth_settings(tmp_path, ec_key, url)) as client:
        assert (await client.get("/readyz")).status_code == 200
        process.terminate()
        process.wait(timeout=10)
        assert await readyz(client) == (503, "redis")


async def test_a_locked_sqlite_database_is_not_ready(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with running(settings) as client:
        assert (await client.get("/readyz")).status_code == 200
        database = tmp_path / "liver-cds.db"
        other = sqlite3.connect(database, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")  # another process's stuck write transaction
            assert await readyz(client) == (503, "database")
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert (await client.get("/readyz")).status_code == 200
