"""Every hook call leaves an audit row; written off the request path, never lost on close."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import sqlalchemy as sa

from service.settings import Settings
from service.store import SqlStore, open_store, parse_database_url
from service.store import schema as t
from service.store.engine import create_engine
from service.store.sql import PatientRef

from .conftest import OpenStore
from .helpers import audit_rows, hook_call, rows


async def test_queued_records_are_all_written_by_close(open_test_store: OpenStore) -> None:
    store = await open_test_store(audit_key="k")
    calls = [hook_call(patient=f"patient-{n}") for n in range(250)]
    for call in calls:
        store.audit(call)
    await store.close()

    reopened = await open_test_store(audit_key="k")
    written = await audit_rows(reopened)
    assert sorted(row["hook_instance"] for row in written) == sorted(c.hook_instance for c in calls)


async def test_an_audit_row_holds_what_was_told_to_whom_when_and_why(store: SqlStore) -> None:
    at = datetime(2025, 3, 1, 9, 30, 15, 250000, tzinfo=UTC)
    call = hook_call(patient="patient-42", verdict="potentially-resectable", at=at)
    store.audit(call)
    await store.flush_audit()

    [row] = await audit_rows(store)
    assert row["hook_instance"] == call.hook_instance
    assert row["service_id"] == call.service_id
    assert row["at"] == at
    assert row["status"] == 200
    assert row["latency_ms"] == call.latency_ms
    assert row["verdict"] == "potentially-resectable"
    assert row["rule"] == call.rule
    assert row["offered"] == list(call.offered)
    assert row["recommended"] == list(call.recommended)
    assert row["card_uuids"] == list(call.card_uuids)
    assert row["suggestion_uuids"] == list(call.suggestion_uuids)
    assert row["ruleset_version"] == "2025.1"


async def test_suggestions_are_mapped_to_their_card_and_option(store: SqlStore) -> None:
    call = hook_call(options={"resection": "s-res", "mdt-review": "s-mdt"})
    store.audit(call)
    await store.flush_audit()

    mapped = {
        (row["card_uuid"], row["suggestion_uuid"], row["option_code"])
        for row in await rows(store, t.audit_suggestion)
    }
    card = call.card_uuids[0]
    assert mapped == {(card, "s-res", "resection"), (card, "s-mdt", "mdt-review")}


async def test_the_patient_id_is_stored_as_its_hmac_under_the_configured_key(
    open_test_store: OpenStore,
) -> None:
    store = await open_test_store(audit_key="secret-key")
    store.audit(hook_call(patient="patient-42"))
    await store.flush_audit()

    [row] = await audit_rows(store)
    expected = hmac.new(b"secret-key", b"patient-42", hashlib.sha256).hexdigest()
    assert (row["patient_ref"], row["patient_ref_kind"]) == (expected, "hmac-sha256")


async def test_without_a_key_one_is_generated_once_and_hashes_stay_stable(
    open_test_store: OpenStore,
) -> None:
    first = await open_test_store(audit_key="")
    first.audit(hook_call(patient="patient-42"))
    await first.close()
    second = await open_test_store(audit_key="")  # a restart, or another replica
    second.audit(hook_call(patient="patient-42"))
    await second.flush_audit()

    refs = [row["patient_ref"] for row in await audit_rows(second)]
    assert len(refs) == 2
    assert refs[0] == refs[1]
    assert "patient-42" not in refs[0]
    async with second.engine.connect() as conn:
        stored_keys = (
            await conn.execute(sa.select(sa.func.count()).select_from(t.store_meta))
        ).scalar()
    assert stored_keys == 1


async def test_the_plain_patient_id_only_when_configured(open_test_store: OpenStore) -> None:
    store = await open_test_store(audit_plain_patient_id=True)
    store.audit(hook_call(patient="patient-42"))
    await store.flush_audit()

    [row] = await audit_rows(store)
    assert (row["patient_ref"], row["patient_ref_kind"]) == ("patient-42", "plain")


async def test_a_call_without_patient_or_verdict_is_audited_too(store: SqlStore) -> None:
    call = hook_call()
    failed = type(call)(
        hook_instance="hi-400",
        service_id=call.service_id,
        at=call.at,
        patient_id=None,
        status=400,
        latency_ms=0.4,
    )
    store.audit(failed)
    await store.flush_audit()

    [row] = await audit_rows(store)
    assert (row["status"], row["patient_ref"], row["verdict"], row["offered"]) == (
        400,
        None,
        None,
        [],
    )


async def test_client_supplied_strings_that_do_not_fit_are_cut_not_lost(store: SqlStore) -> None:
    call = hook_call()
    odd = type(call)(
        hook_instance="h\x00" + "i" * 500,
        service_id=call.service_id,
        at=call.at,
        patient_id="p\x00",
        status=400,
        latency_ms=1.0,
    )
    store.audit(odd)
    await store.flush_audit()

    [row] = await audit_rows(store)
    assert row["hook_instance"].startswith("h\ufffdiii")
    assert len(row["hook_instance"]) == 200


async def test_audit_after_close_neither_raises_nor_blocks(open_test_store: OpenStore) -> None:
    store = await open_test_store()
    await store.close()
    store.audit(hook_call())


async def test_the_audit_is_written_while_the_service_loop_is_busy(store: SqlStore) -> None:
    # Under sustained load the service's event loop is always busy with hook calls; a writer
    # that needs that loop for every database round trip falls behind and its queue grows
    # without bound. The writer runs on a loop of its own, so it writes while this one is
    # blocked (time.sleep stands in for a burst of CPU-bound hook calls).
    import time

    calls = [hook_call() for _ in range(30)]
    for call in calls:
        store.audit(call)
    deadline = time.monotonic() + 10.0
    while store.audit_written < len(calls) and time.monotonic() < deadline:
        time.sleep(0.02)  # noqa: ASYNC251 (blocking this loop is the point)
    assert store.audit_written == len(calls)
    await store.flush_audit()
    assert len(await audit_rows(store)) == len(calls)


async def test_records_audited_before_the_store_starts_are_written(database_url: str) -> None:
    # The store is built, then started: a record audited in between (by an embedding
    # application) goes to the writer that start() creates, not to a discarded one.
    first = await open_store(Settings(database_url=database_url))  # creates the schema
    await first.close()
    target = parse_database_url(database_url)
    store = SqlStore(
        create_engine(target),
        PatientRef("key", plain=False),
        audit_engine=lambda: create_engine(target, writer=True),
    )
    call = hook_call()
    store.audit(call)
    await store.start()
    await store.flush_audit()
    audited = await rows(store, t.audit)
    await store.close()
    assert [row["hook_instance"] for row in audited] == [call.hook_instance]
