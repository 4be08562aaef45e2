"""Card, suggestion and row uuids: time-ordered version-7 uuids (RFC 9562) whose random bits
come from the OS in blocks; never repeated, also across a fork."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable

import pytest

from service.render.cards import RenderContext
from service.uuids import new_uuid, random_uuid


def _millis(text: str) -> int:
    """The Unix time in milliseconds a version-7 uuid carries in its first 48 bits."""
    return uuid.UUID(text).int >> 80


@pytest.mark.parametrize(("make", "version"), [(new_uuid, 7), (random_uuid, 4)])
def test_each_uuid_is_of_its_version_in_canonical_text(
    make: Callable[[], str], version: int
) -> None:
    # new_uuid: time-ordered (cards, rows); random_uuid: the block source it draws from.
    for _ in range(200):  # more than one block of 64
        text = make()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == version
        assert parsed.variant == uuid.RFC_4122


def test_a_uuid_carries_the_millisecond_it_was_made_in() -> None:
    before = time.time_ns() // 1_000_000
    made = new_uuid()
    after = time.time_ns() // 1_000_000
    assert before <= _millis(made) <= after


def test_uuids_made_later_sort_later_so_an_index_grows_at_its_right_edge() -> None:
    first = new_uuid()
    time.sleep(0.002)
    second = new_uuid()
    assert first < second  # as text, the order the audit indexes keep
    assert uuid.UUID(first).int < uuid.UUID(second).int


def test_the_74_bits_beside_the_time_are_random() -> None:
    made = [new_uuid() for _ in range(64 * 50)]
    assert len(set(made)) == len(made)
    # Within one millisecond uuids differ in their random part: rand_a (12 bits) and
    # rand_b (62 bits) both vary.
    rand_a = {uuid.UUID(m).int >> 64 & 0x0FFF for m in made}
    rand_b = {uuid.UUID(m).int & (1 << 62) - 1 for m in made}
    assert len(rand_a) > 1000 and len(rand_b) == len(made)


def test_cards_use_the_time_ordered_source_unless_the_caller_gives_one() -> None:
    assert RenderContext(patient_id="p").new_uuid is new_uuid
    fixed = RenderContext(patient_id="p", new_uuid=lambda: "fixed")
    assert fixed.new_uuid() == "fixed"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_draws_its_own_bytes() -> None:
    new_uuid()  # the parent now holds a partly used block
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next uuid and leave at once
        os.close(read_end)
        os.write(write_end, new_uuid().encode())
        os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 100).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert uuid.UUID(child).version == 7
    parent = new_uuid()  # the parent's next uuid, from the block it kept
    assert child[15:] != parent[15:], "the random parts differ"
