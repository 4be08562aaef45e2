"""The store's background loop (service/store/background.py)."""

from __future__ import annotations

import asyncio
import threading

from service.store.background import BackgroundLoop


async def test_a_coroutine_runs_on_the_background_thread_and_its_result_comes_back() -> None:
    loop = BackgroundLoop("test-loop")
    loop.start()
    try:

        async def where() -> str:
            return threading.current_thread().name

        assert await loop.run(where()) == "test-loop"
    finally:
        await loop.stop()
    assert not any(t.name == "test-loop" for t in threading.enumerate())


async def test_call_soon_from_this_thread_runs_on_the_background_loop() -> None:
    loop = BackgroundLoop("test-loop-2")
    loop.start()
    try:
        seen: list[str] = []
        done = threading.Event()

        def record() -> None:
            seen.append(threading.current_thread().name)
            done.set()

        loop.call_soon(record)
        assert await asyncio.to_thread(done.wait, 5.0)
        assert seen == ["test-loop-2"]
    finally:
        await loop.stop()
