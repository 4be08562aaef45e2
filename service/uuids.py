"""Uuids for cards, suggestions and stored rows: time-ordered, random bits drawn in blocks.

Time-ordered: every uuid the service makes is a version-7 uuid (RFC 9562): the first 48
bits are the Unix time in milliseconds, the other 74 (beside the version and variant bits)
random. Card uuids are keys of two audit indexes (``audit_card`` and ``audit_suggestion``
by card), and audit and feedback row ids are primary keys; with random keys every row
lands on a random page of each index, so each audit transaction rewrote a page per row
and per index (SQLite writes each changed page to its write-ahead log at every commit).
Keys that grow with time land together at the right edge of the index: SQLite's CPU per
audit record fell from 55 to 25 µs (docs/performance.md), and PostgreSQL's B-tree
indexes gain the same locality. The time in a card's uuid says when the card was made,
which the EHR that asked for it knows anyway; the 74 random bits keep uuids unguessable.

Random bits in blocks: ``uuid.uuid4()`` calls ``os.urandom(16)`` once per uuid, and every
``os.urandom`` call releases and re-takes the GIL around its system call. A hook call makes
several uuids (a card and each of its suggestions), and while the audit writer's threads
are active each GIL hand-over costs the thread answering hook calls far more than the 16
bytes do (docs/performance.md). The same holds the other way round: a ``uuid.uuid4()``
per audit row in the writer's thread handed the GIL to the thread answering hook calls and
then took it back from it, a context switch of that thread per audited call. So the bytes
come from the same source, the OS's CSPRNG, 64 uuids at a time.

The block is turned into text at once (one ``bytes.hex`` for 64 uuids, the bits set with
two slice assignments), so a draw is a ``list.pop`` and the time is written over the text's
first twelve hex digits: building a :class:`uuid.UUID` and formatting it per uuid cost more
than the rest of a card's suggestion.

A forked child starts with an empty block, so two processes never hand out the same
bytes; the lock makes the source safe to call from any thread.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Final

_BLOCK_UUIDS: Final = 64
_UUID_BYTES: Final = 16


def _block_texts(raw: bytes) -> list[str]:
    """``raw`` (a multiple of 16 bytes) as version-4 uuids in canonical text, in order.

    The same text as ``str(uuid.UUID(bytes=chunk, version=4))`` for each 16-byte chunk:
    byte 6 gets version 4 in its high nibble, byte 8 the RFC 4122 variant (``10``) in its
    two high bits.
    """
    block = bytearray(raw)
    block[6::_UUID_BYTES] = bytes(b & 0x0F | 0x40 for b in block[6::_UUID_BYTES])
    block[8::_UUID_BYTES] = bytes(b & 0x3F | 0x80 for b in block[8::_UUID_BYTES])
    h = block.hex()
    return [
        f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-{h[i + 12 : i + 16]}-{h[i + 16 : i + 20]}-"
        f"{h[i + 20 : i + 32]}"
        for i in range(0, len(h), 2 * _UUID_BYTES)
    ]


class _RandomUuids:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: list[str] = []

    def reset(self) -> None:
        """Forget the current block (after a fork, so the child draws its own bytes)."""
        self._lock = threading.Lock()
        self._ready = []

    def __call__(self) -> str:
        with self._lock:
            if not self._ready:
                block = _block_texts(os.urandom(_UUID_BYTES * _BLOCK_UUIDS))
                block.reverse()  # handed out from the end: in the order they were drawn
                self._ready = block
            return self._ready.pop()


random_uuid: Final = _RandomUuids()
"""A new random (version-4) uuid as text, e.g. ``"0b6f3c9e-2f4d-4c1a-9e3b-5d7a8f1e2c40"``."""

os.register_at_fork(after_in_child=random_uuid.reset)


def new_uuid() -> str:
    """A new time-ordered (version-7) uuid as text, e.g. ``"019ae4a1-3c2b-7c1a-9e3b-5d7a8f1e2c40"``.

    A random uuid from the block with its first 48 bits replaced by the Unix time in
    milliseconds and its version digit by ``7``: the variant bits and the other 74 random
    bits stay as drawn. Uuids made in the same millisecond are in random order among
    themselves (RFC 9562 does not require more, and an index only needs them close).
    """
    stamp = f"{time.time_ns() // 1_000_000:012x}"
    drawn = random_uuid()
    return f"{stamp[:8]}-{stamp[8:]}-7{drawn[15:]}"
