"""Feedback is stored before save_feedback returns, once per (card, outcome, timestamp)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from service.store import FeedbackItem, InvalidFeedbackError, SqlStore

from .conftest import OpenStore
from .helpers import accepted, feedback_rows, hook_call, new_uuid, overridden


async def test_every_field_of_an_item_is_stored(store: SqlStore) -> None:
    card, suggestion = new_uuid(), new_uuid()
    result = await store.save_feedback([accepted(card, suggestion), overridden(card)])

    assert (result.stored, result.duplicates) == (2, 0)
    by_outcome = {row["outcome"]: row for row in await feedback_rows(store)}
    assert by_outcome["accepted"]["card_uuid"] == card
    assert by_outcome["accepted"]["accepted_suggestions"] == [suggestion]
    assert by_outcome["accepted"]["outcome_timestamp"] == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    assert by_outcome["accepted"]["service_id"] == "liver-metastasis-resectability"
    assert by_outcome["accepted"]["received_at"] is not None
    override = by_outcome["overridden"]
    assert override["override_reason_code"] == "patient-declined"
    assert override["override_reason_system"].endswith("/override-reason")
    assert override["override_reason_display"] == "Patient declined"
    assert override["override_comment"] == "discussed with the patient"


async def test_stored_items_are_committed_when_save_returns(
    store: SqlStore, open_test_store: OpenStore
) -> None:
    card = new_uuid()
    await store.save_feedback([accepted(card, new_uuid())])

    other_process = await open_test_store()
    assert [row["card_uuid"] for row in await feedback_rows(other_process)] == [card]


async def test_a_repeated_item_is_a_duplicate_not_a_second_row(store: SqlStore) -> None:
    item = accepted(new_uuid(), new_uuid())
    first = await store.save_feedback([item])
    again = await store.save_feedback([item])

    assert (first.stored, first.duplicates) == (1, 0)
    assert (again.stored, again.duplicates) == (0, 1)
    assert len(await feedback_rows(store)) == 1


async def test_the_same_instant_in_another_time_zone_is_the_same_item(store: SqlStore) -> None:
    card = new_uuid()
    utc = datetime(2025, 3, 1, 10, 0, 0, 520000, tzinfo=UTC)
    paris = utc.astimezone(timezone(timedelta(hours=1)))
    await store.save_feedback([accepted(card, at=utc)])
    again = await store.save_feedback([accepted(card, at=paris)])

    assert again.duplicates == 1
    assert len(await feedback_rows(store)) == 1


async def test_a_duplicate_inside_one_request_is_stored_once(store: SqlStore) -> None:
    item = overridden(new_uuid())
    result = await store.save_feedback([item, item])

    assert (result.stored, result.duplicates) == (1, 1)
    assert len(await feedback_rows(store)) == 1


async def test_another_outcome_or_timestamp_for_the_same_card_is_a_new_item(
    store: SqlStore,
) -> None:
    card = new_uuid()
    first = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    result = await store.save_feedback(
        [
            accepted(card, at=first),
            accepted(card, at=first + timedelta(seconds=1)),
            overridden(card, at=first),
        ]
    )
    assert (result.stored, result.duplicates) == (3, 0)


async def test_unknown_cards_are_stored_and_flagged(store: SqlStore) -> None:
    known = hook_call()
    store.audit(known)
    await store.flush_audit()
    unknown_card = new_uuid()

    result = await store.save_feedback(
        [accepted(known.card_uuids[0], known.suggestion_uuids[0]), overridden(unknown_card)]
    )

    assert (result.stored, result.unknown_cards) == (2, 1)
    flags = {row["card_uuid"]: row["known_card"] for row in await feedback_rows(store)}
    assert flags == {known.card_uuids[0]: True, unknown_card: False}


async def test_a_card_whose_audit_is_still_queued_counts_as_known(store: SqlStore) -> None:
    call = hook_call()
    store.audit(call)  # not flushed: the writer may not have run yet
    result = await store.save_feedback([overridden(call.card_uuids[0])])

    assert result.unknown_cards == 0


async def test_feedback_received_before_its_audit_record_becomes_known(
    store: SqlStore, open_test_store: OpenStore
) -> None:
    call = hook_call()
    other_replica = await open_test_store()
    result = await other_replica.save_feedback([overridden(call.card_uuids[0])])
    assert result.unknown_cards == 1

    store.audit(call)
    await store.flush_audit()

    assert [row["known_card"] for row in await feedback_rows(store)] == [True]


async def test_two_processes_saving_overlapping_feedback_store_each_item_once(
    open_test_store: OpenStore,
) -> None:
    """Two stores (two engines, as two replicas have) race on the same items."""
    first, second = await open_test_store(), await open_test_store()
    items = [accepted(new_uuid(), new_uuid()) for _ in range(60)]
    shared = items[20:40]
    batches_first = [items[i : i + 5] for i in range(0, 40, 5)]
    batches_second = [items[i : i + 5] for i in range(20, 60, 5)]

    results = await asyncio.gather(
        *(first.save_feedback(batch) for batch in batches_first),
        *(second.save_feedback(batch) for batch in batches_second),
    )

    assert sum(r.stored for r in results) == len(items)
    assert sum(r.duplicates for r in results) == len(shared)
    stored = await feedback_rows(first)
    assert sorted(row["card_uuid"] for row in stored) == sorted(i.card_uuid for i in items)


async def test_an_empty_request_stores_nothing(store: SqlStore) -> None:
    result = await store.save_feedback([])
    assert (result.stored, result.duplicates, result.unknown_cards) == (0, 0, 0)


@pytest.mark.parametrize(
    "item",
    [
        FeedbackItem("s", "x" * 201, "accepted", datetime(2025, 1, 1, tzinfo=UTC)),
        FeedbackItem("s", "", "accepted", datetime(2025, 1, 1, tzinfo=UTC)),
        FeedbackItem("s", "card\x00", "accepted", datetime(2025, 1, 1, tzinfo=UTC)),
        FeedbackItem("s", "card", "accepted", datetime(2025, 1, 1)),
        FeedbackItem(
            "s", "card", "accepted", datetime(2025, 1, 1, tzinfo=UTC), accepted_suggestions=("",)
        ),
    ],
    ids=["card-too-long", "card-empty", "nul-in-card", "naive-timestamp", "empty-suggestion"],
)
async def test_unstorable_items_are_refused_with_a_clear_error(
    store: SqlStore, item: FeedbackItem
) -> None:
    with pytest.raises(InvalidFeedbackError):
        await store.save_feedback([item])
    assert await feedback_rows(store) == []


async def test_free_text_is_kept_even_with_characters_postgresql_refuses(store: SqlStore) -> None:
    card = new_uuid()
    item = FeedbackItem(
        "s",
        card,
        "overridden",
        datetime(2025, 1, 1, tzinfo=UTC),
        override_reason_code="data-incorrect",
        override_comment="size is wrong\x00 see MRI",
    )
    assert (await store.save_feedback([item])).stored == 1
    [row] = await feedback_rows(store)
    assert row["override_comment"].startswith("size is wrong")
    assert row["override_comment"].endswith("see MRI")
