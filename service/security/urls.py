"""URL comparisons for allowlists: one normal form, so "exact match" means one thing."""

from __future__ import annotations

import ipaddress
from urllib.parse import SplitResult, urlsplit

_DEFAULT_PORTS = {"https": 443, "http": 80}


class UrlError(ValueError):
    """A URL that cannot be used in an allowlist or as a fhirServer."""


def split_url(url: str) -> SplitResult:
    """Split an absolute http(s) URL, refusing anything an allowlist should never match.

    Credentials in the URL, queries and fragments are refused: a FHIR base or a JWKS
    URL has none, and accepting them would let two spellings of one server differ.
    """
    if not isinstance(url, str) or not url or url != url.strip():
        raise UrlError("not a URL")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError:
        raise UrlError("not a valid URL") from None
    if parts.scheme.lower() not in _DEFAULT_PORTS:
        raise UrlError("scheme must be https (or http for loopback development)")
    if not parts.hostname:
        raise UrlError("URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UrlError("URL must not hold credentials")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise UrlError("URL must not have a query or fragment")
    return parts


def normalise_url(url: str) -> str:
    """``scheme://host[:port]/path`` with scheme and host lower-cased, the default port
    dropped and trailing slashes removed: ``https://FHIR.example.org:443/r4/`` ->
    ``https://fhir.example.org/r4``. The path keeps its case (FHIR bases are case
    sensitive)."""
    parts = split_url(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1 (the development-only http targets)."""
    if not host:
        return False
    host = host.lower().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_https_or_loopback_http(url: str) -> bool:
    """https anywhere, or plain http to a loopback host."""
    parts = split_url(url)
    scheme = parts.scheme.lower()
    return scheme == "https" or (scheme == "http" and is_loopback_host(parts.hostname))
