"""The body budget: how many bytes of hook bodies one worker holds at once.

A call reserves its body's size before reading it; calls that do not fit wait their turn
in arrival order; a call that waits longer than it may gets 503 with Retry-After; a call
that leaves (cancelled, timed out) never keeps or loses bytes of the budget.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from app_harness import make_settings, running_app
from pipeline_harness import load

from service import app as app_module
from service.protocol.body_budget import BodyBudget, Busy


async def test_a_call_that_fits_goes_on_at_once_and_gives_its_bytes_back() -> None:
    budget = BodyBudget(100)
    async with budget.hold(60, timeout_s=1):
        assert budget.held == 60
    assert budget.held == 0


async def test_calls_that_do_not_fit_wait_and_are_let_in_in_arrival_order() -> None:
    budget = BodyBudget(100)
    order: list[str] = []
    first_in = asyncio.Event()
    release_first = asyncio.Event()

    async def call(name: str, size: int, hold_until: asyncio.Event | None = None) -> None:
        async with budget.hold(size, timeout_s=5):
            order.append(name)
            if name == "first":
                first_in.set()
            if hold_until is not None:
                await hold_until.wait()

    first = asyncio.create_task(call("first", 80, release_first))
    await first_in.wait()
    big = asyncio.create_task(call("big", 90))
    await asyncio.sleep(0)
    small = asyncio.create_task(call("small", 10))  # fits now, but comes after "big"
    await asyncio.sleep(0.01)
    assert order == ["first"] and budget.waiting == 2
    release_first.set()
    await asyncio.gather(first, big, small)
    assert order == ["first", "big", "small"]
    assert budget.held == 0 and budget.waiting == 0


async def test_a_call_larger_than_the_budget_still_runs_alone() -> None:
    budget = BodyBudget(100)
    async with budget.hold(500, timeout_s=1):
        assert budget.held == 100


async def test_a_call_that_waits_too_long_is_busy_and_leaves_the_queue() -> None:
    budget = BodyBudget(100)
    async with budget.hold(100, timeout_s=1):
        with pytest.raises(Busy) as raised:
            async with budget.hold(1, timeout_s=0.01):
                pytest.fail("entered without room")
        assert raised.value.status == 503
        assert budget.waiting == 0
    assert budget.held == 0


async def test_a_cancelled_waiter_neither_keeps_nor_loses_bytes() -> None:
    budget = BodyBudget(100)
    release = asyncio.Event()

    async def holder() -> None:
        async with budget.hold(100, timeout_s=1):
            await release.wait()

    async def waiter() -> None:
        async with budget.hold(50, timeout_s=5):
            pass

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(waiter())
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    release.set()
    await held
    assert budget.held == 0 and budget.waiting == 0
    async with budget.hold(100, timeout_s=0.1):  # the whole budget is there again
        pass


async def test_a_waiter_granted_as_it_is_cancelled_gives_the_bytes_back() -> None:
    budget = BodyBudget(100)
    async with budget.hold(100, timeout_s=1):
        waiting = asyncio.create_task(_enter_and_leave(budget, 100))
        await asyncio.sleep(0.01)
    # The holder left: the waiter is granted, and cancelled before it runs. Whether it
    # then runs its block or ends cancelled (asyncio.wait_for's choice), no byte is kept.
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert budget.held == 0 and budget.waiting == 0


async def _enter_and_leave(budget: BodyBudget, size: int) -> None:
    async with budget.hold(size, timeout_s=5):
        pass


def test_the_budget_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BodyBudget(0)


# --- over HTTP ------------------------------------------------------------------------

HOOK = "/cds-services/liver-metastasis-resectability"
JSON = {"content-type": "application/json"}


def _body() -> bytes:
    request: dict[str, Any] = load("patients/r21-colon-right-icd10.json")
    return orjson.dumps(request)


@pytest.fixture
def budgets(monkeypatch: pytest.MonkeyPatch) -> list[BodyBudget]:
    """Every body budget the app opens, so a test can hold one as another call would."""
    made: list[BodyBudget] = []

    class Recorded(BodyBudget):
        def __init__(self, capacity: int) -> None:
            super().__init__(capacity)
            made.append(self)

    monkeypatch.setattr(app_module, "BodyBudget", Recorded)
    return made


async def test_concurrent_calls_beyond_the_budget_all_answer_one_after_another(
    budgets: list[BodyBudget],
) -> None:
    body = _body()
    # Room for one body at a time: the other calls wait, then answer like the first.
    one_at_a_time = make_settings(max_body_bytes=len(body) + 100, body_budget_bytes=1)
    async with running_app(one_at_a_time) as running:
        answers = await asyncio.gather(
            *(running.client.post(HOOK, content=body, headers=JSON) for _ in range(6))
        )
    assert budgets[0].capacity == len(body) + 100  # never less than the body limit
    assert [a.status_code for a in answers] == [200] * 6
    assert len({a.json()["cards"][0]["summary"] for a in answers}) == 1
    assert budgets[0].held == 0


async def test_a_call_that_cannot_start_within_the_call_budget_gets_503_retry_after(
    budgets: list[BodyBudget],
) -> None:
    body = _body()
    tight = make_settings(max_body_bytes=len(body) + 100, body_budget_bytes=1, call_budget_s=0.05)
    async with running_app(tight) as running:
        budget = budgets[0]
        async with budget.hold(budget.capacity, timeout_s=1):  # another call holds it all
            answer = await running.client.post(HOOK, content=body, headers=JSON)
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert "busy" in answer.json()["error"]
        again = await running.client.post(HOOK, content=body, headers=JSON)
        assert again.status_code == 200
        # The refused call's body was never read: like any call refused before parsing, it
        # is counted in the metrics but has no audit record (no patient is known).
        assert [record.status for record in running.store.pending_audits] == [200]
