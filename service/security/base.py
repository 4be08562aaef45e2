"""What the HTTP layer needs from security: who is calling, and may we fetch from there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class AuthenticationError(Exception):
    """The caller could not be authenticated. ``reason`` is logged, never sent (bare 401)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FhirServerNotAllowed(Exception):
    """The request names a fhirServer this caller may not send us to (no request is made)."""


@dataclass(frozen=True)
class ClientIdentity:
    """An authenticated CDS client (EHR), from a verified JWT."""

    iss: str
    sub: str | None = None
    tenant: str | None = None
    jti: str | None = None
    fhir_servers: tuple[str, ...] = ()
    """Base URLs this issuer's requests may name as fhirServer (trust file)."""


class Authenticator(Protocol):
    async def authenticate(self, authorization: str | None, audience: str) -> ClientIdentity:
        """Verify ``Authorization: Bearer <jwt>`` for a call to URL ``audience``.

        Raises :class:`AuthenticationError` on any failure.
        """
        ...

    async def aclose(self) -> None:
        """Release what the authenticator holds (its Redis connection)."""
        ...
