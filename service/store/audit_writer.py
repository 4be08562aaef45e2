"""The audit writer: hook calls hand over a record and return; a background task writes.

Why a queue: the audit row is the answer to "what did the service tell whom, when and
why", but writing it must not add a database round trip (and, on SQLite, an fsync) to
every hook call. :meth:`AuditWriter.submit` only appends to an in-memory queue; one task
per process takes whatever has accumulated (up to ``max_batch`` records) and writes it in
one transaction, so under load the cost per record falls. The batch stays small (100 in
the store) because building its rows is Python work (about 0.15 ms per record) that
holds the GIL: a bounded batch bounds the pause it puts into concurrent hook calls.

Why it lingers: a transaction's fixed cost (SQLAlchemy's execute path, a hop to the
driver's thread, a commit and its fsync) is paid per batch, and without a pause calls that
arrive a millisecond apart each get a transaction of their own. After the first record of
a batch the writer waits ``linger_s`` (50 ms in the store) for others to join, like Kafka's
``linger.ms``: a record reaches the database at most that much later, which nobody
reading the audit can tell, and under load the transactions per call fall several-fold
(``bench/run.py`` measures the throughput; README "Performance"). A shutdown never waits.

Why it never loses a record on a clean shutdown: :meth:`AuditWriter.close` enqueues a
stop marker *behind* every record already submitted and waits for the task to reach it,
so everything accepted before ``close`` is written first. A failed write is retried with
back-off and never dropped while the service runs. If a batch keeps failing while the
database answers (a record the database refuses), the batch is written record by record
and only the refused record is dropped, with an error log, so one bad record cannot
block the audit forever. What cannot be written by the shutdown deadline is logged as lost.

The queue is bounded (``max_queue``): if the database is down for long, new records are
dropped with an error log rather than growing memory without limit.

Threads: the writer runs on one event loop (in the store, a loop of its own on a
background thread, see ``background.py``); :meth:`AuditWriter.submit` and
:meth:`AuditWriter.is_pending_card` may be called from any thread. Everything else runs
on the writer's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
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
        self._queue: asyncio.Queue[AuditRecord | None] = asyncio.Queue(maxsize=max_queue)
        self._max_batch = max_batch
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._attempts_before_split = attempts_before_split
        self._linger_s = linger_s
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._deadline: float | None = None
        self._pending_cards: Counter[str] = Counter()
        self._pending_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.written = 0
        self.dropped = 0

    def start(self) -> None:
        """Start writing; call it on the loop the writer is to run on."""
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
            self._task = self._loop.create_task(self._run(), name="liver-cds-audit-writer")

    def submit(self, record: AuditRecord) -> bool:
        """Queue ``record`` (from any thread); False (and an error log) when closed or full.

        From another thread the record is handed to the writer's loop, so a full queue is
        only logged there (the answer is then True: accepted for queueing).
        """
        if self._closing:
            self.dropped += 1
            log.error(
                "audit record after close dropped",
                extra={"hookInstance": record.hook_instance},
            )
            return False
        with self._pending_lock:
            self._pending_cards.update(record.card_uuids)
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self._enqueue, record)
            return True
        return self._enqueue(record)

    def _enqueue(self, record: AuditRecord) -> bool:
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self.dropped += 1
            self._forget_cards([record])
            log.error(
                "audit queue full, record dropped",
                extra={"hookInstance": record.hook_instance, "queued": self._queue.qsize()},
            )
            return False
        return True

    def _forget_cards(self, records: Sequence[AuditRecord]) -> None:
        with self._pending_lock:
            for record in records:
                self._pending_cards.subtract(record.card_uuids)
                for card in record.card_uuids:
                    if self._pending_cards[card] <= 0:
                        del self._pending_cards[card]

    def is_pending_card(self, card_uuid: str) -> bool:
        """True while an audit record naming this card is queued but not yet written."""
        with self._pending_lock:
            return self._pending_cards[card_uuid] > 0

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    async def flush(self) -> None:
        """Wait until every record submitted so far is written (or given up)."""
        await self._queue.join()

    async def close(self, timeout_s: float = 30.0) -> None:
        """Write everything submitted before this call, then stop the task."""
        if self._closing:
            return
        self._closing = True
        task = self._task
        if task is None or task.done():
            self._log_lost(self._queue.qsize())
            return
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + timeout_s
        await self._queue.put(None)
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s + 1.0)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._log_lost(self._queue.qsize())

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch: list[AuditRecord] = []
            stop = first is None
            if first is not None:
                batch.append(first)
                if (
                    self._linger_s > 0
                    and not self._closing
                    and self._queue.qsize() < self._max_batch - 1
                ):
                    await self._linger()
            while not stop and len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is None:
                    stop = True
                else:
                    batch.append(item)
            try:
                if batch:
                    await self._write_reliably(batch)
            finally:
                self._forget_cards(batch)
                for _ in range(len(batch) + (1 if stop else 0)):
                    self._queue.task_done()
            if stop:
                return

    async def _linger(self) -> None:
        """Wait ``linger_s`` for more records, cut short when :meth:`close` begins."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self._linger_s
        while not self._closing and self._queue.qsize() < self._max_batch - 1:
            remaining = end - loop.time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, 0.01))

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
                self.dropped += 1
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
            self.dropped += count
            log.error("audit records not written before shutdown", extra={"records": count})
