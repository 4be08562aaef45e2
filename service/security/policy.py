"""Which FHIR servers a hook call may send us to (and so receive its bearer token).

The request body names ``fhirServer`` and hands us an access token for it. Without a
policy, anyone who can call the service can make it connect anywhere: to internal
hosts (SSRF), or to a server of their own that harvests the EHR's access token. So:

* ``LIVER_CDS_AUTH=required``: only the authenticated issuer's ``fhir_servers`` from
  the trust file, https only, exact base match (trailing slash, host case and default
  port normalised).
* ``LIVER_CDS_AUTH=off`` (development): https anywhere, or plain http to loopback
  (127.0.0.0/8, ::1, localhost) when ``LIVER_CDS_FHIR_ALLOW_LOOPBACK_HTTP`` is true.

The check is pure (no DNS, no connection) and runs before any request is made.
"""

from __future__ import annotations

from ..settings import Settings
from .base import ClientIdentity, FhirServerNotAllowed
from .urls import UrlError, is_loopback_host, normalise_url, split_url


def check_fhir_server(
    identity: ClientIdentity | None, fhir_server: str, settings: Settings
) -> None:
    """Raise :class:`FhirServerNotAllowed` (with a message fit for the 4xx body) unless
    ``fhir_server`` may be fetched from for this caller."""
    try:
        parts = split_url(fhir_server)
        normal = normalise_url(fhir_server)
    except UrlError as exc:
        raise FhirServerNotAllowed(f"fhirServer is not usable: {exc}") from None
    scheme = parts.scheme.lower()

    if settings.auth == "required":
        if identity is None:
            raise FhirServerNotAllowed("fhirServer cannot be used without an authenticated client")
        if scheme != "https":
            raise FhirServerNotAllowed("fhirServer must use https")
        allowed = {normalise_url(u) for u in identity.fhir_servers}
        if normal not in allowed:
            raise FhirServerNotAllowed(
                "fhirServer is not on the allowlist for this client (trust file fhir_servers)"
            )
        return

    if scheme == "https":
        return
    if settings.fhir_allow_loopback_http and is_loopback_host(parts.hostname):
        return
    if settings.fhir_allow_loopback_http:
        raise FhirServerNotAllowed("fhirServer must use https (plain http only to loopback hosts)")
    raise FhirServerNotAllowed("fhirServer must use https")
