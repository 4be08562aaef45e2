"""Who may read the service's internal endpoints: ``/metrics`` and ``/openapi.json``.

``/metrics`` counts rejected JWTs by reason (``unknown-issuer``, ``unknown-kid``,
``bad-audience``, ...). Served to anyone, it answers the questions a bare 401 is there to
hide: a caller guessing issuers or audiences reads after each try whether the guess was
trusted. ``/openapi.json`` maps every route and limit. So with ``LIVER_CDS_AUTH=required``
neither is served on the public listener except to a scraper holding
``LIVER_CDS_METRICS_TOKEN`` (sent as ``Authorization: Bearer <token>``, compared in
constant time); without a token they are not served at all. Anyone else gets the same
404 as an unknown path, so the answer does not even say the endpoint exists.

With auth off (development) they stay open unless a token is set.

The decision is a setting-controlled token rather than a second port: it works the same
with one process or several uvicorn workers, behind any load balancer, and Prometheus
sends a bearer token natively (``authorization: credentials``).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from service.settings import Settings

__all__ = ["InternalAccess"]


@dataclass(frozen=True)
class InternalAccess:
    """The rule for ``/metrics`` and ``/openapi.json``, from the settings."""

    token: str
    auth_required: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> InternalAccess:
        return cls(token=settings.metrics_token, auth_required=settings.auth == "required")

    @property
    def served(self) -> bool:
        """Whether the endpoints exist at all (not with auth required and no token)."""
        return bool(self.token) or not self.auth_required

    def allows(self, authorization: str | None) -> bool:
        """Whether a request with this ``Authorization`` header may read them."""
        if not self.token:
            return not self.auth_required
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip().encode(), self.token.encode())
