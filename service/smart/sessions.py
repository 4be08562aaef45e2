"""Server-side sessions of the SMART app, named by a signed cookie that holds only an id.

Why server-side: the access token is a credential to the patient's whole record; it stays
in this process's memory, never in a cookie, a URL or a log line (``repr`` leaves it
out). The cookie carries a random 256-bit id and an HMAC-SHA256 of it under the session
key, so a forged or altered cookie is refused before any lookup (``hmac`` from the
standard library: the signature is two lines, a library would add nothing).

A session lives at most ``LIVER_CDS_SMART_SESSION_TTL_S`` and is bounded in number (the
oldest go first): a flood of launches cannot grow memory without limit. The pending
launch (state and PKCE verifier) is taken out of the session by the first callback that
presents it, so a second callback with the same state or code finds nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

COOKIE_NAME: Final = "liver_cds_smart"
MAX_SESSIONS: Final = 10_000


@dataclass(frozen=True)
class PendingLaunch:
    """What the callback needs to finish one authorization (never sent to the browser
    except ``state``, which the authorization server hands back)."""

    state: str = field(repr=False)
    code_verifier: str = field(repr=False)
    iss: str
    token_endpoint: str
    launch: str = field(repr=False)


@dataclass(frozen=True)
class Authorized:
    """The outcome of a token exchange: whose record, with which token."""

    iss: str
    patient_id: str
    access_token: str = field(repr=False)
    scope: str = ""
    expires_at: float | None = None
    """``time.monotonic()`` value after which the token is not used."""
    view_id: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    """Opaque id of this launch's pages (``?v=`` in their URLs): a tab left open from an
    earlier launch asks for its own launch's id, and is refused once a newer launch in the
    same browser has replaced the session, instead of being shown the newer patient."""


@dataclass
class Session:
    id: str = field(repr=False)
    expires_at: float
    pending: PendingLaunch | None = None
    authorized: Authorized | None = None


class SessionStore:
    """In-memory sessions with a lifetime and a size bound; ``clock`` is monotonic seconds."""

    def __init__(
        self,
        key: bytes,
        ttl_s: float,
        *,
        max_sessions: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if len(key) < 32:
            raise ValueError("session key must be at least 32 bytes")
        self._key = key
        self._ttl_s = ttl_s
        self._max = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self) -> Session:
        """A new empty session (the oldest is dropped when the store is full)."""
        self._expire()
        session = Session(id=secrets.token_urlsafe(32), expires_at=self._clock() + self._ttl_s)
        self._sessions[session.id] = session
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        return session

    def get(self, cookie: str | None) -> Session | None:
        """The live session the cookie names, or None (no cookie, bad signature, expired)."""
        session_id = self._verify(cookie)
        if session_id is None:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._sessions[session_id]
            return None
        return session

    def take_pending(self, session: Session) -> PendingLaunch | None:
        """The session's pending launch, removed so that it can be used only once."""
        pending, session.pending = session.pending, None
        return pending

    def delete(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    def cookie_value(self, session: Session) -> str:
        return f"{session.id}.{self._sign(session.id)}"

    def _sign(self, session_id: str) -> str:
        digest = hmac.new(self._key, session_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _verify(self, cookie: str | None) -> str | None:
        if not cookie or len(cookie) > 200 or "." not in cookie:
            return None
        session_id, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(session_id).encode()):
            return None
        return session_id

    def _expire(self) -> None:
        """Drop expired sessions; they expire in creation order (one lifetime for all)."""
        now = self._clock()
        while self._sessions:
            first = next(iter(self._sessions.values()))
            if first.expires_at > now:
                return
            self._sessions.popitem(last=False)


def session_key(configured: str) -> bytes:
    """The configured key, or a random one for this process (sessions end with it)."""
    return configured.encode() if configured else secrets.token_bytes(32)
