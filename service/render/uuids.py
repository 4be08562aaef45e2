"""Random (version 4) uuids for cards and suggestions, drawn from the OS in blocks.

``uuid.uuid4()`` calls ``os.urandom(16)`` once per uuid, and every ``os.urandom`` call
releases and re-takes the GIL around its system call. A hook call makes several uuids
(a card and each of its suggestions), and while the audit writer's threads are active
each GIL hand-over costs the thread answering hook calls far more than the 16 bytes do
(README "Performance"). So the bytes come from the same source, the OS's CSPRNG, 64 uuids
at a time; each uuid is still 122 random bits with the version and variant bits set
exactly as :func:`uuid.uuid4` sets them.

A forked child starts with an empty block, so two processes never hand out the same
bytes; the lock makes the source safe to call from any thread.
"""

from __future__ import annotations

import os
import threading
import uuid
from typing import Final

_BLOCK_UUIDS: Final = 64
_UUID_BYTES: Final = 16


class _RandomUuids:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._block = b""
        self._next = 0

    def reset(self) -> None:
        """Forget the current block (after a fork, so the child draws its own bytes)."""
        self._lock = threading.Lock()
        self._block = b""
        self._next = 0

    def __call__(self) -> str:
        with self._lock:
            at = self._next
            if at >= len(self._block):
                self._block = os.urandom(_UUID_BYTES * _BLOCK_UUIDS)
                at = 0
            self._next = at + _UUID_BYTES
            raw = self._block[at : at + _UUID_BYTES]
        return str(uuid.UUID(bytes=raw, version=4))


random_uuid: Final = _RandomUuids()
"""A new random uuid as text, e.g. ``"0b6f3c9e-2f4d-4c1a-9e3b-5d7a8f1e2c40"``."""

os.register_at_fork(after_in_child=random_uuid.reset)
