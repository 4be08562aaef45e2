"""An event loop on a thread of its own, for work that must not queue behind hook calls.

Why: the audit writer talks to the database through an async driver, and every driver
call is a round trip through the event loop that runs it (aiosqlite hands each call to
its thread and wakes the loop with the result; asyncpg waits for the socket). On the
service's own loop, each of those round trips waits for every hook call ready at that
moment: under sustained load an audit transaction of a dozen round trips took seconds,
the writer fell behind the calls, and its queue (and the process's memory) grew without
bound. On this loop, which runs nothing else, a round trip costs microseconds.

:meth:`BackgroundLoop.run` awaits a coroutine on the background loop from the caller's
loop; :meth:`BackgroundLoop.call_soon` schedules a plain function there from any thread.
Objects bound to an event loop (the engine, its connections, the writer's queue) must be
created *on* the background loop, i.e. inside a coroutine passed to :meth:`run`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_STOP_TIMEOUT_S = 10.0


class BackgroundLoop:
    """One daemon thread running one asyncio loop until :meth:`stop`."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=main, name=self._name, daemon=True)
        self._thread.start()
        ready.wait()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError(f"{self._name} has not started")
        return self._loop

    async def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the background loop and await its result here."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return await asyncio.wrap_future(future)

    def call_soon(self, function: Callable[..., Any], *args: Any) -> None:
        """Schedule ``function(*args)`` on the background loop (from any thread)."""
        self.loop.call_soon_threadsafe(function, *args)

    async def stop(self) -> None:
        """Stop the loop after what is already scheduled, and wait for its thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join, _STOP_TIMEOUT_S)
        self._thread = None
        self._loop = None
