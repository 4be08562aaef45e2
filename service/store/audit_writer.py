"""The audit writer: hook calls hand over a record and return; a background task writes.

Why a queue: the audit row is the answer to "what did the service tell whom, when and
why", but writing it must not add a database round trip (and, on SQLite, an fsync) to
every hook call. :meth:`AuditWriter.submit` only appends to an in-memory queue; one task
per process takes whatever has accumulated (up to ``max_batch`` records) and writes it in
one transaction, so under load the cost per record falls. The batch stays small (100 in
the store) because building its rows is Python work that holds the GIL: a bounded batch
bounds the pause it puts into concurrent hook calls.

Why it lingers: a transaction's fixed cost (SQLAlchemy's execute path, a hop to the
driver's thread, a commit and its fsync) is paid per batch, and without a pause calls that
arrive a millisecond apart each get a transaction of their own. After the first record of
a batch the writer waits ``linger_s`` (50 ms in the store) for others to join, like Kafka's
``linger.ms``: a record reaches the database at most that much later, which nobody
reading the audit can tell, and under load the transactions per call fall several-fold
(``bench/run.py`` measures the throughput; docs/performance.md). A shutdown never waits.

Why the hand-over wakes the writer only when it sleeps: the writer runs on a thread of
its own (the store's background loop). Waking another thread's loop costs a write to its
self-pipe, a wake-up, and a GIL hand-over between the two threads, paid by the busy
thread that answers hook calls. Per record that cost about a quarter of a W1 call's CPU
(``bench/run.py --variants noaudit`` priced it). So :meth:`AuditWriter.submit` appends
to a deque under a lock and wakes the writer only if it is waiting for work; while it
lingers or writes, records accumulate without any wake-up, one per batch instead of one
per call.

Why it never loses a record on a clean shutdown: :meth:`AuditWriter.close` marks the
writer closing and wakes it; the writer then takes every record already submitted (no
linger) before it stops, so everything accepted before ``close`` is written first. A
failed write is retried with back-off and never dropped while the service runs. If a
batch keeps failing while the database answers (a record the database refuses), the batch
is written record by record and only the refused record is dropped, with an error log,
so one bad record cannot block the audit forever. What cannot be written by the shutdown
deadline is logged as lost.

The queue is bounded (``max_queue``): if the database is down for long, new records are
dropped with an error log rather than growing memory without limit.

Threads: the writer runs on one event loop (in the store, a loop of its own on a
background thread, see ``background.py``); :meth:`AuditWriter.submit`,
:meth:`AuditWriter.is_pending_card` and :attr:`AuditWriter.queued` may be called from any
thread. Everything else runs on the writer's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence

from service.observability import get_logger
from service.store.base import AuditRecord

log = get_logger("store.audit")

WriteBatch = Callable[[Sequence[AuditRecord]], Awaitable[None]]
Ping = Callable[[], Awaitable[bool]]


class AuditWriter:
    def __init__(
        self,
        write_batch: WriteBatch,
        ping: Ping,
        *,
        max_queue: int = 100_000,
        max_batch: int = 500,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 5.0,
        attempts_before_split: int = 3,
        linger_s: float = 0.0,
    ) -> None:
        self._write_batch = write_batch
        self._ping = ping
        self._max_queue = max_queue
        self._max_batch = max_batch
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._attempts_before_split = attempts_before_split
        self._linger_s = linger_s
        # Guarded by _lock: the records handed over and not yet taken, the cards they and
        # the batch being written name, and whether the writer waits to be woken.
        self._lock = threading.Lock()
        self._incoming: deque[AuditRecord] = deque()
        self._pending_cards: Counter[str] = Counter()
        self._asleep = False
        self._accepted = 0
        # Writer-loop state.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._progress: asyncio.Condition | None = None
        self._finished = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._deadline: float | None = None
        self.written = 0
        self.dropped = 0

    def start(self) -> None:
        """Start writing; call it on the loop the writer is to run on."""
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            self._progress = asyncio.Condition()
            self._task = self._loop.create_task(self._run(), name="liver-cds-audit-writer")

    def submit(self, record: AuditRecord) -> bool:
        """Queue ``record`` (from any thread); False (and an error log) when closed or full.

        The check and the append happen under the lock that :meth:`close` takes to mark the
        writer closing, so a record is either accepted before the writer's final drain, and
        written, or refused: never left behind unwritten and unlogged.
        """
        with self._lock:
            if self._closing:
                refused: str | None = "audit record after close dropped"
            elif len(self._incoming) >= self._max_queue:
                refused = "audit queue full, record dropped"
            else:
                refused = None
                self._incoming.append(record)
                self._pending_cards.update(record.card_uuids)
                self._accepted += 1
            if refused is not None:
                self.dropped += 1
                queued = len(self._incoming)
            wake = refused is None and self._asleep
            if wake:
                self._asleep = False
        if refused is not None:
            log.error(refused, extra={"hookInstance": record.hook_instance, "queued": queued})
            return False
        if wake:
            self._wake_writer()
        return True

    def _wake_writer(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return  # not started: start() finds the records
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            loop.call_soon_threadsafe(wake.set)

    def _take(self, limit: int) -> list[AuditRecord]:
        """Up to ``limit`` of the records handed over, oldest first."""
        with self._lock:
            incoming = self._incoming
            return [incoming.popleft() for _ in range(min(limit, len(incoming)))]

    def _sleep_if_idle(self) -> bool:
        """Mark the writer asleep, so the next submit wakes it, unless a record came in."""
        with self._lock:
            self._asleep = not self._incoming
            return self._asleep

    def _forget_cards(self, records: Sequence[AuditRecord]) -> None:
        with self._lock:
            for record in records:
                self._pending_cards.subtract(record.card_uuids)
                for card in record.card_uuids:
                    if self._pending_cards[card] <= 0:
                        del self._pending_cards[card]

    def is_pending_card(self, card_uuid: str) -> bool:
        """True while an audit record naming this card is queued but not yet written."""
        with self._lock:
            return self._pending_cards[card_uuid] > 0

    @property
    def queued(self) -> int:
        """Records handed over and not yet taken into a batch."""
        with self._lock:
            return len(self._incoming)

    async def flush(self) -> None:
        """Wait until every record submitted so far is written (or given up)."""
        progress = self._progress
        if progress is None:
            raise RuntimeError("the audit writer has not started")
        with self._lock:
            target = self._accepted
        async with progress:
            await progress.wait_for(lambda: self._finished >= target or self._task_done())

    def _task_done(self) -> bool:
        return self._task is None or self._task.done()

    async def close(self, timeout_s: float = 30.0) -> None:
        """Write everything submitted before this call, then stop the task."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        task = self._task
        if task is None or task.done():
            left = self._stop_taking()  # never started (or already stopped): nothing writes them
            self._forget_cards(left)
            self._log_lost(len(left))
            return
        self._deadline = asyncio.get_running_loop().time() + timeout_s
        if self._wake is not None:
            self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s + 1.0)
        except TimeoutError:
            task.cancel()  # the task logs its batch and what is still queued as lost
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        try:
            await self._write_until_closed()
        finally:
            # However the task ends (close, cancellation, an error), it takes no more
            # records, and what is still queued is counted and logged as lost, so that
            # flush() returns and nothing is silently left behind.
            left = self._stop_taking()
            if left:
                self._forget_cards(left)
                self._log_lost(len(left))
            await self._finish(len(left))

    def hand_over(self) -> list[AuditRecord]:
        """Stop a writer that never started; its queued records, for the one replacing it."""
        if self._task is not None:
            raise RuntimeError("a started audit writer is stopped with close()")
        left = self._stop_taking()
        self._forget_cards(left)
        return left

    def _stop_taking(self) -> list[AuditRecord]:
        """Refuse further records; the ones still queued, taken out."""
        with self._lock:
            self._closing = True
            left = list(self._incoming)
            self._incoming.clear()
        return left

    async def _write_until_closed(self) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            batch = self._take(self._max_batch)
            if not batch:
                if self._closing:
                    return
                if self._sleep_if_idle():
                    await wake.wait()  # set by the next submit, or by close
                    wake.clear()
                continue
            try:
                if self._linger_s > 0 and not self._closing and len(batch) < self._max_batch:
                    await self._linger()
                    batch += self._take(self._max_batch - len(batch))
                await self._write_reliably(batch)
            except asyncio.CancelledError:
                self._log_lost(len(batch))  # taken from the queue, never written
                raise
            finally:
                self._forget_cards(batch)
                await self._finish(len(batch))

    async def _finish(self, count: int) -> None:
        progress = self._progress
        assert progress is not None
        async with progress:
            self._finished += count
            progress.notify_all()

    async def _linger(self) -> None:
        """Wait ``linger_s`` for more records, cut short when :meth:`close` begins."""
        wake = self._wake
        assert wake is not None
        loop = asyncio.get_running_loop()
        end = loop.time() + self._linger_s
        while not self._closing and (remaining := end - loop.time()) > 0:
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), remaining)

    async def _write_reliably(self, batch: list[AuditRecord]) -> None:
        delay = self._retry_initial_s
        attempts = 0
        while True:
            try:
                await self._write_batch(batch)
                self.written += len(batch)
                return
            except Exception as exc:
                attempts += 1
                log.warning(
                    "audit write failed, will retry",
                    extra={"records": len(batch), "attempt": attempts, "error": type(exc).__name__},
                )
            if self._past_deadline():
                self._log_lost(len(batch))
                return
            if attempts >= self._attempts_before_split and await self._safe_ping():
                await self._write_one_by_one(batch)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max_s)

    async def _write_one_by_one(self, batch: list[AuditRecord]) -> None:
        for record in batch:
            try:
                await self._write_batch([record])
                self.written += 1
            except Exception as exc:
                self._count_dropped(1)
                log.error(
                    "audit record refused by the database, dropped",
                    extra={"hookInstance": record.hook_instance, "error": type(exc).__name__},
                )

    async def _safe_ping(self) -> bool:
        try:
            return await self._ping()
        except Exception:
            return False

    def _past_deadline(self) -> bool:
        if self._deadline is None:
            return False
        return asyncio.get_running_loop().time() >= self._deadline

    def _log_lost(self, count: int) -> None:
        if count:
            self._count_dropped(count)
            log.error("audit records not written before shutdown", extra={"records": count})

    def _count_dropped(self, count: int) -> None:
        with self._lock:  # submit() counts its refusals from other threads
            self.dropped += count
