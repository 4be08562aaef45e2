"""Trusting CDS clients (JWT) and FHIR servers (allowlist).

The HTTP layer needs four things, all exported here:

* :func:`build_authenticator` — at start-up; None when ``LIVER_CDS_AUTH=off``.
* ``await authenticator.authenticate(authorization_header, audience_url)`` on every
  call -> :class:`ClientIdentity`, or :class:`AuthenticationError` (answer a bare 401).
* :func:`check_fhir_server` before any FHIR request -> or :class:`FhirServerNotAllowed`.
* ``await authenticator.aclose()`` at shutdown.
"""

from .authenticator import JwtAuthenticator, build_authenticator
from .base import AuthenticationError, Authenticator, ClientIdentity, FhirServerNotAllowed
from .jwks import JwksCache
from .policy import check_fhir_server
from .replay import MemoryReplayCache, RedisReplayCache, ReplayCache, open_replay_cache
from .trust import IssuerTrust, TrustConfig, TrustFileError, load_trust_file, parse_trust

__all__ = [
    "AuthenticationError",
    "Authenticator",
    "ClientIdentity",
    "FhirServerNotAllowed",
    "IssuerTrust",
    "JwksCache",
    "JwtAuthenticator",
    "MemoryReplayCache",
    "RedisReplayCache",
    "ReplayCache",
    "TrustConfig",
    "TrustFileError",
    "build_authenticator",
    "check_fhir_server",
    "load_trust_file",
    "open_replay_cache",
    "parse_trust",
]
