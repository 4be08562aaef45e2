"""Durability: every feedback item acknowledged with 200 survives a SIGKILL of the server.

The real server runs as a child process (``liver-cds serve``). The test posts feedback
concurrently, kills the process with SIGKILL the moment the last 200 arrives (no shutdown
code runs), starts it again on the same database, and finds every acknowledged item:
read back with a fresh connection and through ``liver-cds feedback-report --json``.
On SQLite (WAL, synchronous=FULL) and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: shared helpers
from store.databases import KINDS, feedback_keys, fresh_database
from store.server_process import (
    ROOT,
    ServerProcess,
    feedback_item,
    feedback_url,
    skip_unless_server_runs,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REQUESTS = 40
ITEMS_PER_REQUEST = 5
CONCURRENCY = 8


@pytest.fixture(params=KINDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    skip_unless_server_runs()
    async with fresh_database(request.param, tmp_path) as url:
        yield url


async def post_all(url: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Post every body, ``CONCURRENCY`` at a time; return the bodies answered 200."""
    acknowledged: list[dict[str, Any]] = []
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(timeout=30.0) as client:

        async def post(body: dict[str, Any]) -> None:
            async with gate:
                response = await client.post(url, json=body)
            assert response.status_code == 200, response.text
            assert response.json() == {}
            acknowledged.append(body)

        await asyncio.gather(*(post(body) for body in bodies))
    return acknowledged


def report_json(database_url: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVER_CDS_")}
    env["LIVER_CDS_DATABASE_URL"] = database_url
    completed = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "liver-cds"), "feedback-report", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


async def test_acknowledged_feedback_survives_sigkill(database_url: str, tmp_path: Path) -> None:
    bodies = [
        {
            "feedback": [
                feedback_item(outcome="accepted" if n % 3 else "overridden")
                for n in range(ITEMS_PER_REQUEST)
            ]
        }
        for _ in range(REQUESTS)
    ]
    server = ServerProcess(database_url, tmp_path / "server-1.log")
    try:
        acknowledged = await post_all(feedback_url(server), bodies)
        server.kill()  # right after the last 200: nothing gets a chance to flush
    finally:
        server.stop()

    expected = sorted(
        (item["card"], item["outcome"]) for body in acknowledged for item in body["feedback"]
    )
    assert len(expected) == REQUESTS * ITEMS_PER_REQUEST

    restarted = ServerProcess(database_url, tmp_path / "server-2.log")
    try:
        assert await feedback_keys(database_url) == expected
        report = await asyncio.to_thread(report_json, database_url)
        assert report["total"] == len(expected)
        overridden = sum(1 for _, outcome in expected if outcome == "overridden")
        assert report["by_outcome"] == {
            "accepted": len(expected) - overridden,
            "overridden": overridden,
        }

        # The EHR retries what it is unsure of: every item again is still stored once.
        await post_all(feedback_url(restarted), bodies)
        assert await feedback_keys(database_url) == expected
    finally:
        restarted.stop()
