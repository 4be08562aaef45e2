"""LIVER_CDS_RETENTION_DAYS purges audit and feedback rows older than that many days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.store import FeedbackItem, SqlStore
from service.store import schema as t

from .conftest import OpenStore
from .helpers import accepted, audit_rows, feedback_rows, hook_call, new_uuid, rows

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def received(item: FeedbackItem, at: datetime) -> FeedbackItem:
    return FeedbackItem(**{**item.__dict__, "received_at": at})


async def fill(store: SqlStore) -> tuple[list[str], list[str]]:
    """One old and one recent audit record and feedback item; returns (old, recent) cards."""
    old_call = hook_call(at=NOW - timedelta(days=31))
    new_call = hook_call(at=NOW - timedelta(days=29))
    store.audit(old_call)
    store.audit(new_call)
    await store.flush_audit()
    await store.save_feedback(
        [
            received(accepted(old_call.card_uuids[0]), NOW - timedelta(days=31)),
            received(accepted(new_call.card_uuids[0]), NOW - timedelta(days=29)),
        ]
    )
    return [old_call.card_uuids[0]], [new_call.card_uuids[0]]


async def test_purge_removes_only_rows_older_than_the_retention(store: SqlStore) -> None:
    _, recent = await fill(store)

    result = await store.purge(now=NOW, days=30)

    assert (result.audit, result.feedback) == (1, 1)
    assert [row["card_uuids"] for row in await audit_rows(store)] == [recent]
    assert [row["card_uuid"] for row in await feedback_rows(store)] == recent
    assert {row["card_uuid"] for row in await rows(store, t.audit_card)} == set(recent)
    assert {row["card_uuid"] for row in await rows(store, t.audit_suggestion)} == set(recent)


async def test_retention_zero_keeps_everything(store: SqlStore) -> None:
    await fill(store)

    result = await store.purge(now=NOW + timedelta(days=3650))

    assert (result.audit, result.feedback) == (0, 0)
    assert len(await audit_rows(store)) == 2


async def test_start_up_purges_with_the_configured_retention(open_test_store: OpenStore) -> None:
    writer = await open_test_store()
    writer.audit(hook_call(at=datetime.now(UTC) - timedelta(days=10)))
    writer.audit(hook_call(at=datetime.now(UTC) - timedelta(hours=1)))
    await writer.save_feedback(
        [received(accepted(new_uuid()), datetime.now(UTC) - timedelta(days=10))]
    )
    await writer.close()

    restarted = await open_test_store(retention_days=7)

    assert len(await audit_rows(restarted)) == 1
    assert await feedback_rows(restarted) == []
