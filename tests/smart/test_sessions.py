"""Server-side sessions: the cookie names a session only with a valid signature, sessions
expire, the pending launch is single use, and the token never shows in a repr."""

from __future__ import annotations

import pytest

from service.smart.sessions import Authorized, PendingLaunch, SessionStore

KEY = b"k" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_signed_cookie_finds_its_session_and_an_altered_one_does_not() -> None:
    store = SessionStore(KEY, 60)
    session = store.create()
    cookie = store.cookie_value(session)
    assert store.get(cookie) is session
    session_id, _, signature = cookie.rpartition(".")
    altered = signature[:-1] + ("B" if signature.endswith("A") else "A")
    assert store.get(f"{session_id}.{altered}") is None
    assert store.get(f"{session_id}x.{signature}") is None
    assert store.get(session_id) is None
    assert store.get(None) is None and store.get("") is None
    other = SessionStore(b"o" * 32, 60)  # another key (another process) signs differently
    assert other.get(cookie) is None


def test_sessions_expire_and_the_oldest_go_first_when_full() -> None:
    clock = Clock()
    store = SessionStore(KEY, 60, max_sessions=2, clock=clock)
    first, second = store.create(), store.create()
    third = store.create()
    assert store.get(store.cookie_value(first)) is None
    assert store.get(store.cookie_value(second)) is second
    clock.now += 61
    assert store.get(store.cookie_value(third)) is None
    store.create()
    assert len(store) == 1


def test_the_pending_launch_can_be_taken_once() -> None:
    store = SessionStore(KEY, 60)
    session = store.create()
    session.pending = PendingLaunch("state", "verifier", "https://ehr/fhir", "https://ehr/t", "L")
    assert store.take_pending(session) is not None
    assert store.take_pending(session) is None


def test_secrets_are_left_out_of_reprs() -> None:
    pending = PendingLaunch("the-state", "the-verifier", "https://ehr/fhir", "https://t", "L1")
    authorized = Authorized("https://ehr/fhir", "p1", "the-access-token")
    text = repr(pending) + repr(authorized)
    assert "the-state" not in text and "the-verifier" not in text
    assert "the-access-token" not in text and "p1" in text


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32"):
        SessionStore(b"short", 60)
