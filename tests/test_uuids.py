"""Card and suggestion uuids: random version-4 uuids, never repeated, also across a fork."""

from __future__ import annotations

import os
import uuid

import pytest

from service.render.cards import RenderContext
from service.uuids import random_uuid


def test_each_uuid_is_a_random_version_4_uuid_in_canonical_text() -> None:
    for _ in range(200):  # more than one block of 64
        text = random_uuid()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_uuids_are_not_repeated_across_blocks() -> None:
    made = [random_uuid() for _ in range(64 * 50)]
    assert len(set(made)) == len(made)


def test_cards_use_the_random_source_unless_the_caller_gives_one() -> None:
    assert RenderContext(patient_id="p").new_uuid is random_uuid
    fixed = RenderContext(patient_id="p", new_uuid=lambda: "fixed")
    assert fixed.new_uuid() == "fixed"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_draws_its_own_bytes() -> None:
    random_uuid()  # the parent now holds a partly used block
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next uuid and leave at once
        os.close(read_end)
        os.write(write_end, random_uuid().encode())
        os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 100).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert uuid.UUID(child).version == 4
    assert child != random_uuid()  # the parent's next uuid, from the block it kept
