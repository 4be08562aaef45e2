"""Several server processes on one database: no lost or duplicated feedback, and SIGTERM
leaves the audit record of every completed call in the database.

Replicas are separate ``liver-cds serve`` processes (as behind a load balancer) sharing
one database: PostgreSQL (``TEST_DATABASE_URL``) and, for a single host, one SQLite file.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: shared helpers
from store.databases import KINDS, feedback_keys, fresh_database, select_all, writes_blocked
from store.server_process import (
    ServerProcess,
    feedback_item,
    feedback_url,
    hook_request,
    hook_url,
    skip_unless_server_runs,
)

from service.store import schema as t

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ITEMS = 200
SHARED = 50
"""Items sent to both replicas (an EHR retrying through the load balancer)."""
CONCURRENCY = 8


@pytest.fixture(params=KINDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    skip_unless_server_runs()
    async with fresh_database(request.param, tmp_path) as url:
        yield url


async def post_concurrently(jobs: list[tuple[str, dict[str, Any]]]) -> list[int | str]:
    """Post every job; the HTTP status of each, or the name of the transport error."""
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(timeout=30.0) as client:

        async def post(url: str, body: dict[str, Any]) -> int | str:
            async with gate:
                try:
                    return (await client.post(url, json=body)).status_code
                except httpx.TransportError as exc:
                    return type(exc).__name__

        return await asyncio.gather(*(post(url, body) for url, body in jobs))


def burst(urls: list[str], items: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Each item to one server in turn; the first ``SHARED`` items also to the next one."""
    jobs = [(urls[n % len(urls)], {"feedback": [item]}) for n, item in enumerate(items)]
    jobs += [(urls[(n + 1) % len(urls)], body) for n, (_, body) in enumerate(jobs[:SHARED])]
    return jobs


def expected_keys(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((item["card"], item["outcome"]) for item in items)


async def test_two_replicas_store_every_item_once(database_url: str, tmp_path: Path) -> None:
    items = [feedback_item(outcome="accepted" if n % 4 else "overridden") for n in range(ITEMS)]
    first = ServerProcess(database_url, tmp_path / "replica-1.log")
    second = ServerProcess(database_url, tmp_path / "replica-2.log")
    try:
        statuses = await post_concurrently(
            burst([feedback_url(first), feedback_url(second)], items)
        )
    finally:
        first.stop()
        second.stop()
    server_logs = first.log() + second.log()

    assert Counter(statuses) == {200: ITEMS + SHARED}, server_logs
    assert await feedback_keys(database_url) == expected_keys(items)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_workers_of_one_server_store_every_item_once(
    database_url: str, tmp_path: Path
) -> None:
    """``liver-cds serve --workers 2``: the kernel spreads connections over two processes.

    PostgreSQL only (the production shape); SQLite's multi-process path is the test above.
    """
    items = [feedback_item() for _ in range(ITEMS)]
    server = ServerProcess(database_url, tmp_path / "workers.log", workers=2)
    try:
        statuses = await post_concurrently(burst([feedback_url(server)], items))
    finally:
        server.stop()
    server_logs = server.log()

    assert Counter(statuses) == {200: ITEMS + SHARED}, server_logs
    assert await feedback_keys(database_url) == expected_keys(items)


async def test_sigterm_writes_the_audit_of_every_completed_call(
    database_url: str, tmp_path: Path
) -> None:
    """Calls in flight when SIGTERM arrives finish; the audit queue is written before exit.

    The audit table is kept locked (as a busy database would be) until SIGTERM has been
    sent, so the records of the completed calls are still queued in the server when it is
    told to stop: only the shutdown flush can write them.
    """
    server = ServerProcess(database_url, tmp_path / "graceful.log")
    completed: list[str] = []
    calls = [hook_request(patient_id=f"patient-{n}") for n in range(60)]
    gate = asyncio.Semaphore(CONCURRENCY)
    terminated = asyncio.Event()
    try:
        async with writes_blocked(database_url, t.audit), httpx.AsyncClient(timeout=30.0) as client:

            async def call(body: dict[str, Any]) -> None:
                async with gate:
                    if terminated.is_set():
                        return
                    try:
                        response = await client.post(hook_url(server), json=body)
                    except httpx.TransportError:
                        return  # refused after SIGTERM: never answered, never audited
                if response.status_code == 200:
                    completed.append(body["hookInstance"])
                if len(completed) == 40 and not terminated.is_set():
                    terminated.set()
                    assert await select_all(database_url, t.audit) == []  # all still queued
                    server.process.send_signal(signal.SIGTERM)

            await asyncio.gather(*(call(body) for body in calls))
            await asyncio.sleep(0.5)  # let the shutdown begin while the table is still locked
        exit_code = await asyncio.to_thread(server.process.wait, 60)
    finally:
        server.stop()

    # uvicorn re-raises the captured SIGTERM after its graceful shutdown (the conventional
    # "terminated by SIGTERM" status); a crash would show as another code.
    assert exit_code in (0, -signal.SIGTERM), server.log()
    assert len(completed) >= 40
    audited = {row["hook_instance"] for row in await select_all(database_url, t.audit)}
    assert set(completed) <= audited
