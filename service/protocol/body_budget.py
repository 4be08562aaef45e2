"""How many bytes of request bodies one process holds at once.

One worker evaluates one hook call at a time: the work is CPU-bound and runs under the
GIL. Yet uvicorn reads a connection's body as soon as the application asks for it, so
sixteen EHR clients each sending a 5 MB chart would put 80 MB of bodies, and what is
parsed from them, in memory at once, for no gain in throughput. A call therefore
reserves the size of its body from a :class:`BodyBudget` before it reads it, and gives
it back when its answer is made. A call that does not fit waits its turn, first come,
first served; while it waits its bytes stay in the kernel's socket buffer, because
uvicorn stops reading a connection once 64 KiB of its body are buffered and no one has
asked for them. A call that cannot start within its time budget is answered 503 with
``Retry-After`` (the EHR would have given up on it by then anyway).

The reservation is the declared ``Content-Length``, or the body limit when the client
streams without one (what such a body may grow to). The budget is at least the body
limit, so any body the service accepts fits on its own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from service.protocol.errors import ProtocolError

__all__ = ["BodyBudget", "Busy"]


class Busy(ProtocolError):
    """503: the call waited for its share of the body budget longer than it may."""

    status = 503
    retry_after_s = 1


@dataclass(eq=False)
class _Waiter:
    size: int
    granted: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class BodyBudget:
    """A byte budget shared by the calls of one event loop (one per worker process).

    Not thread-safe: every call runs on the worker's event loop, which is the only
    place that reserves and releases.
    """

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("the body budget must be positive")
        self.capacity = capacity
        self._available = capacity
        self._waiting: collections.deque[_Waiter] = collections.deque()

    @property
    def held(self) -> int:
        """Bytes reserved by calls now running (a figure for tests and diagnostics)."""
        return self.capacity - self._available

    @property
    def waiting(self) -> int:
        """Calls waiting for their turn."""
        return len(self._waiting)

    @contextlib.asynccontextmanager
    async def hold(self, size: int, *, timeout_s: float) -> AsyncIterator[None]:
        """Hold ``size`` bytes (at most the capacity) for the duration of the block.

        Returns at once when the bytes are free and nobody waits before this call, which
        is every call of a service that is not flooded with large bodies. Raises
        :class:`Busy` when the bytes did not come free within ``timeout_s``.
        """
        size = max(0, min(size, self.capacity))
        if not self._waiting and size <= self._available:
            self._available -= size
        else:
            await self._wait(size, timeout_s)
        try:
            yield
        finally:
            self._available += size
            self._grant()

    async def _wait(self, size: int, timeout_s: float) -> None:
        waiter = _Waiter(size)
        self._waiting.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.granted), timeout_s)
        except BaseException as exc:  # the wait timed out, or the call was cancelled
            if waiter.granted.done():
                # Granted just as the wait ended: give the bytes back to the next call.
                self._available += size
            else:
                waiter.granted.cancel()
                self._waiting.remove(waiter)
            self._grant()
            if isinstance(exc, TimeoutError):
                raise Busy("the service is busy with other large requests; retry shortly") from None
            raise
        # Granted: _grant() took the bytes off the budget before waking this call.

    def _grant(self) -> None:
        """Let waiting calls in, in their order, while the first one fits."""
        while self._waiting and self._waiting[0].size <= self._available:
            waiter = self._waiting.popleft()
            self._available -= waiter.size
            waiter.granted.set_result(None)
