"""The trust file: which CDS clients (JWT issuers) we accept, with which keys, for which
FHIR servers.

Format (``LIVER_CDS_TRUST_FILE``, JSON)::

    {"issuers": [{
        "iss": "https://ehr.example.org",
        "jwks": {"keys": [ ...public JWKs... ]},          # pinned keys, and/or
        "jku": ["https://ehr.example.org/jwks.json"],     # JWKS URLs we may fetch
        "tenants": ["tenant-a"],                          # optional
        "fhir_servers": ["https://ehr.example.org/fhir/r4"],
        "description": "...", "development_only": false   # optional
    }]}

Every problem is reported with its place in the file (``issuers[2].jku[0]: ...``)
and stops the start-up: a service that silently trusts less (or more) than its
operator wrote is worse than one that does not start.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .keys import JwkError, VerificationKey, parse_jwk_set
from .urls import UrlError, is_https_or_loopback_http, normalise_url, split_url

_ISSUER_FIELDS = frozenset(
    {"iss", "jwks", "jku", "tenants", "fhir_servers", "description", "development_only"}
)
_TOP_FIELDS = frozenset({"issuers", "description"})


class TrustFileError(ValueError):
    """The trust file cannot be read or is not valid (the message says where and why)."""


@dataclass(frozen=True)
class IssuerTrust:
    """What one trusted CDS client may do."""

    iss: str
    keys: Mapping[str, VerificationKey] = field(default_factory=dict)
    """Pinned public keys by kid (the trust file's inline ``jwks``)."""
    jku: tuple[str, ...] = ()
    """JWKS URLs we may fetch this issuer's keys from (exact match with the JWT's ``jku``)."""
    tenants: tuple[str, ...] = ()
    """When non-empty, the JWT's ``tenant`` claim must be one of these."""
    fhir_servers: tuple[str, ...] = ()
    """Allowed fhirServer bases, normalised (see :func:`service.security.urls.normalise_url`)."""
    description: str = ""
    development_only: bool = False


@dataclass(frozen=True)
class TrustConfig:
    """All trusted issuers, by ``iss`` (exact string match, as RFC 7519 compares it)."""

    issuers: Mapping[str, IssuerTrust]

    @property
    def development_only_issuers(self) -> tuple[str, ...]:
        return tuple(i.iss for i in self.issuers.values() if i.development_only)


def load_trust_file(path: str | Path) -> TrustConfig:
    """Read and check a trust file; raise :class:`TrustFileError` naming the problem."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise TrustFileError(f"trust file {str(p)!r}: cannot read ({exc.strerror})") from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TrustFileError(f"trust file {str(p)!r}: not valid JSON ({exc})") from None
    try:
        return parse_trust(data)
    except TrustFileError as exc:
        raise TrustFileError(f"trust file {str(p)!r}: {exc}") from None


def parse_trust(data: object) -> TrustConfig:
    """Check the decoded JSON of a trust file and build a :class:`TrustConfig`."""
    if not isinstance(data, dict):
        raise TrustFileError("the top level must be a JSON object with an 'issuers' array")
    unknown = sorted(set(data) - _TOP_FIELDS)
    if unknown:
        raise TrustFileError(f"unknown top-level field(s): {', '.join(unknown)}")
    issuers = data.get("issuers")
    if not isinstance(issuers, list) or not issuers:
        raise TrustFileError("'issuers' must be a non-empty array")
    by_iss: dict[str, IssuerTrust] = {}
    for i, entry in enumerate(issuers):
        where = f"issuers[{i}]"
        issuer = _parse_issuer(entry, where)
        if issuer.iss in by_iss:
            raise TrustFileError(f"{where}: issuer {issuer.iss!r} is listed twice")
        by_iss[issuer.iss] = issuer
    return TrustConfig(issuers=by_iss)


def _parse_issuer(entry: object, where: str) -> IssuerTrust:
    if not isinstance(entry, dict):
        raise TrustFileError(f"{where}: must be a JSON object")
    unknown = sorted(set(entry) - _ISSUER_FIELDS)
    if unknown:
        raise TrustFileError(f"{where}: unknown field(s): {', '.join(unknown)}")
    iss = entry.get("iss")
    if not isinstance(iss, str) or not iss.strip():
        raise TrustFileError(f"{where}.iss: a non-empty string is required")

    keys: dict[str, VerificationKey] = {}
    if "jwks" in entry:
        try:
            keys = parse_jwk_set(entry["jwks"], strict=True)
        except JwkError as exc:
            raise TrustFileError(f"{where}.jwks: {exc}") from None
        if not keys:
            raise TrustFileError(f"{where}.jwks: the key set is empty")

    jku = _string_list(entry, "jku", where)
    for j, url in enumerate(jku):
        try:
            ok = is_https_or_loopback_http(url)
        except UrlError as exc:
            raise TrustFileError(f"{where}.jku[{j}]: {exc}") from None
        if not ok:
            raise TrustFileError(f"{where}.jku[{j}]: must be https (http only for loopback)")
    if not keys and not jku:
        raise TrustFileError(f"{where}: needs 'jwks' (pinned keys) or 'jku' (JWKS URLs), or both")

    tenants = _string_list(entry, "tenants", where)

    fhir_servers: list[str] = []
    for j, url in enumerate(_string_list(entry, "fhir_servers", where)):
        try:
            parts = split_url(url)
            normal = normalise_url(url)
        except UrlError as exc:
            raise TrustFileError(f"{where}.fhir_servers[{j}]: {exc}") from None
        if parts.scheme.lower() != "https":
            raise TrustFileError(
                f"{where}.fhir_servers[{j}]: must be https (bearer tokens are never sent in clear)"
            )
        fhir_servers.append(normal)

    description = entry.get("description", "")
    if not isinstance(description, str):
        raise TrustFileError(f"{where}.description: must be a string")
    dev = entry.get("development_only", False)
    if not isinstance(dev, bool):
        raise TrustFileError(f"{where}.development_only: must be true or false")

    return IssuerTrust(
        iss=iss,
        keys=keys,
        jku=tuple(jku),
        tenants=tuple(tenants),
        fhir_servers=tuple(dict.fromkeys(fhir_servers)),
        description=description,
        development_only=dev,
    )


def _string_list(entry: Mapping[str, object], name: str, where: str) -> list[str]:
    value = entry.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise TrustFileError(f"{where}.{name}: must be an array of non-empty strings")
    if len(set(value)) != len(value):
        raise TrustFileError(f"{where}.{name}: lists a value twice")
    return list(value)
