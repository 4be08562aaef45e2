"""The audit writer on its own: batches, retries, isolates a refused record, drains on close."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from service.store import AuditRecord
from service.store.audit_writer import AuditWriter
from service.store.background import BackgroundLoop

from .helpers import hook_call


class FlakyDatabase:
    """Fails the first ``failures`` writes, refuses records named in ``refused`` forever."""

    def __init__(self, failures: int = 0, refused: frozenset[str] = frozenset()) -> None:
        self.failures = failures
        self.refused = refused
        self.written: list[str] = []
        self.batches: list[int] = []
        self.up = True

    async def write(self, records: Sequence[AuditRecord]) -> None:
        await asyncio.sleep(0)
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("database restarting")
        if any(r.hook_instance in self.refused for r in records):
            raise ValueError("refused")
        self.batches.append(len(records))
        self.written.extend(r.hook_instance for r in records)

    async def ping(self) -> bool:
        return self.up


def writer_for(db: FlakyDatabase, **options: float) -> AuditWriter:
    return AuditWriter(db.write, db.ping, retry_initial_s=0.001, retry_max_s=0.002, **options)  # type: ignore[arg-type]


async def started_writer(db: FlakyDatabase, **options: float) -> AuditWriter:
    """A writer started on the running loop (run it on a background loop to put it there)."""
    writer = writer_for(db, **options)
    writer.start()
    return writer


async def test_records_submitted_before_close_are_all_written() -> None:
    db = FlakyDatabase()
    writer = writer_for(db)
    writer.start()
    calls = [hook_call() for _ in range(1200)]
    for call in calls:
        assert writer.submit(call)
    await writer.close()

    assert db.written == [c.hook_instance for c in calls]
    assert max(db.batches) <= 500


async def test_records_queued_together_are_written_in_one_batch() -> None:
    db = FlakyDatabase()
    writer = writer_for(db)
    for _ in range(30):
        writer.submit(hook_call())
    writer.start()
    await writer.flush()

    assert db.batches == [30]
    await writer.close()


async def test_a_failing_database_is_retried_until_the_records_are_written() -> None:
    db = FlakyDatabase(failures=2)
    db.up = False  # the ping fails too: the writer must keep the batch and wait
    writer = writer_for(db)
    writer.start()
    calls = [hook_call() for _ in range(5)]
    for call in calls:
        writer.submit(call)
    await writer.flush()

    assert db.written == [c.hook_instance for c in calls]
    assert writer.dropped == 0
    await writer.close()


async def test_a_record_the_database_refuses_does_not_block_the_others() -> None:
    calls = [hook_call() for _ in range(4)]
    db = FlakyDatabase(refused=frozenset({calls[1].hook_instance}))
    writer = writer_for(db)
    for call in calls:
        writer.submit(call)
    writer.start()
    await writer.close()

    assert db.written == [c.hook_instance for i, c in enumerate(calls) if i != 1]
    assert writer.dropped == 1


async def test_a_full_queue_drops_new_records_instead_of_growing() -> None:
    db = FlakyDatabase()
    writer = AuditWriter(db.write, db.ping, max_queue=3)
    accepted = [writer.submit(hook_call()) for _ in range(5)]

    assert accepted == [True, True, True, False, False]
    assert writer.dropped == 2
    writer.start()
    await writer.close()
    assert len(db.written) == 3


async def test_close_gives_up_at_its_deadline_when_the_database_stays_down() -> None:
    db = FlakyDatabase(failures=10**9)
    db.up = False
    writer = writer_for(db)
    writer.start()
    writer.submit(hook_call())
    await writer.close(timeout_s=0.05)

    assert db.written == []
    assert writer.dropped == 1


async def test_records_arriving_one_after_another_share_a_transaction_when_it_lingers() -> None:
    # Calls a few milliseconds apart: without lingering each would pay a transaction.
    db = FlakyDatabase()
    writer = writer_for(db, linger_s=0.2)
    writer.start()
    for _ in range(10):
        writer.submit(hook_call())
        await asyncio.sleep(0.002)
    await writer.flush()
    assert db.batches == [10]
    await writer.close()


async def test_close_does_not_wait_out_the_linger() -> None:
    db = FlakyDatabase()
    writer = writer_for(db, linger_s=30.0)
    writer.start()
    call = hook_call()
    writer.submit(call)
    await asyncio.sleep(0.01)  # the writer is now lingering after its first record
    await asyncio.wait_for(writer.close(), timeout=2.0)
    assert db.written == [call.hook_instance]


async def test_records_from_another_thread_wake_the_writer_once_per_batch_not_per_record() -> None:
    # Waking another thread's loop is paid by the thread answering hook calls; per record
    # it cost about a quarter of a W1 call's CPU (bench/run.py --variants noaudit).
    db = FlakyDatabase()
    background = BackgroundLoop("test-audit-writer")
    background.start()
    wakeups = 0
    original = background.loop.call_soon_threadsafe

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal wakeups
        wakeups += 1
        return original(*args, **kwargs)

    try:
        writer = await background.run(started_writer(db, linger_s=0.5))
        background.loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        calls = [hook_call() for _ in range(50)]
        for call in calls:
            assert writer.submit(call)  # from this thread, while the writer lingers
        wakeups_by_submit = wakeups
        await background.run(writer.flush())

        assert wakeups_by_submit == 1
        assert db.batches == [50]
        assert db.written == [c.hook_instance for c in calls]
        await background.run(writer.close())
    finally:
        await background.stop()


async def test_flush_waits_for_records_submitted_while_a_batch_is_written() -> None:
    db = FlakyDatabase()
    writer = writer_for(db)
    writer.start()
    first = hook_call()
    writer.submit(first)
    await asyncio.sleep(0)  # the writer has taken the first record and is writing it
    second = hook_call()
    writer.submit(second)
    await writer.flush()

    assert db.written == [first.hook_instance, second.hook_instance]
    await writer.close()


async def test_records_submitted_while_closing_are_written_or_refused_never_lost() -> None:
    # A thread keeps submitting while the writer closes on its own loop: every record the
    # writer accepted is written, every other one is refused (and counted), none vanishes.
    db = FlakyDatabase()
    background = BackgroundLoop("test-audit-close")
    background.start()
    try:
        writer = await background.run(started_writer(db, linger_s=0.001))
        accepted: list[str] = []
        refused: list[str] = []
        started = threading.Event()

        def submit_many() -> None:
            for index in range(3000):
                call = hook_call()
                (accepted if writer.submit(call) else refused).append(call.hook_instance)
                if index == 100:
                    started.set()

        submitter = threading.Thread(target=submit_many)
        submitter.start()
        await asyncio.to_thread(started.wait, 5.0)
        await background.run(writer.close())
        await asyncio.to_thread(submitter.join, 10.0)

        assert refused  # the close really happened while records were still coming
        assert db.written == accepted
        assert writer.dropped == len(refused)
    finally:
        await background.stop()


async def test_a_batch_cut_off_by_the_close_deadline_is_counted_as_lost() -> None:
    async def stalled(records: Sequence[AuditRecord]) -> None:
        await asyncio.sleep(3600)  # a database that never answers

    async def ping() -> bool:
        return True

    writer = AuditWriter(stalled, ping)
    writer.start()
    for _ in range(3):
        writer.submit(hook_call())
    await asyncio.sleep(0.01)  # the writer has taken the batch and waits on the database
    await asyncio.wait_for(writer.close(timeout_s=0.1), timeout=5.0)

    assert writer.written == 0
    assert writer.dropped == 3
    assert writer.queued == 0


async def test_a_cancelled_writer_counts_its_batch_and_its_queue_as_lost() -> None:
    db = FlakyDatabase()
    writer = writer_for(db, linger_s=1.0)
    writer.start()
    first = hook_call()
    writer.submit(first)
    await asyncio.sleep(0.01)  # the writer holds the first record and lingers
    writer.submit(hook_call())  # still queued
    task = writer._task
    assert task is not None
    task.cancel()  # as an event loop torn down without close() would
    await asyncio.gather(task, return_exceptions=True)

    await asyncio.wait_for(writer.flush(), timeout=1.0)  # returns: nothing is left to wait for
    assert db.written == []
    assert writer.dropped == 2
    assert not any(writer.is_pending_card(card) for card in first.card_uuids)
    assert writer.submit(hook_call()) is False  # a writer that stopped takes no more records
    assert writer.dropped == 3
