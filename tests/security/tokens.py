"""Keys, tokens and authenticators for the security tests.

Keys are generated here (EC P-384 and RSA) so no private key is ever committed; tokens
are signed with PyJWT exactly as a CDS client would sign them.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from service.security import (
    JwksCache,
    JwtAuthenticator,
    MemoryReplayCache,
    ReplayCache,
    TrustConfig,
    parse_trust,
)

ISS = "https://ehr.example.org"
JKU = "https://ehr.example.org/.well-known/jwks.json"
FHIR = "https://ehr.example.org/fhir/r4"
AUDIENCE = "https://cds.example.org/cds-services/liver-metastasis-resectability"


@dataclass(frozen=True)
class SigningKey:
    """A CDS client's key pair, with its public JWK as the trust file holds it."""

    kid: str
    alg: str
    private: Any
    public_jwk: dict[str, Any]

    @property
    def public_pem(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


def _public_jwk(private: Any, kid: str, alg: str) -> dict[str, Any]:
    algo = jwt.get_algorithm_by_name(alg)
    data: dict[str, Any] = json.loads(algo.to_jwk(private.public_key()))
    data.update(kid=kid, alg=alg, use="sig")
    return data


@pytest.fixture(scope="session")
def ec_key() -> SigningKey:
    private = ec.generate_private_key(ec.SECP384R1())
    return SigningKey("ec-1", "ES384", private, _public_jwk(private, "ec-1", "ES384"))


@pytest.fixture(scope="session")
def rsa_key() -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey("rsa-1", "RS384", private, _public_jwk(private, "rsa-1", "RS384"))


@pytest.fixture(scope="session")
def other_ec_key() -> SigningKey:
    """A second key pair: an attacker's, or the client's next key after rotation."""
    private = ec.generate_private_key(ec.SECP384R1())
    return SigningKey("ec-2", "ES384", private, _public_jwk(private, "ec-2", "ES384"))


def claims(**overrides: Any) -> dict[str, Any]:
    """A valid CDS Hooks 2.0 client JWT payload; ``overrides`` replace or (None) drop claims."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": ISS,
        "aud": AUDIENCE,
        "exp": now + 300,
        "iat": now,
        "jti": str(uuid.uuid4()),
    }
    for name, value in overrides.items():
        if value is None:
            payload.pop(name, None)
        else:
            payload[name] = value
    return payload


def sign(key: SigningKey, payload: dict[str, Any] | None = None, **header: Any) -> str:
    """Sign ``payload`` (default: :func:`claims`) with ``key``; ``header`` adds or (None)
    drops header fields, ``kid`` defaulting to the key's."""
    headers: dict[str, Any] = {"typ": "JWT", "kid": key.kid}
    alg = header.pop("alg", key.alg)
    for name, value in header.items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return jwt.encode(payload or claims(), key.private, algorithm=alg, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def trust_config(*issuers: dict[str, Any]) -> TrustConfig:
    return parse_trust({"issuers": list(issuers)})


def issuer(keys: list[SigningKey] | None = None, **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"iss": ISS, "fhir_servers": [FHIR]}
    if keys:
        entry["jwks"] = {"keys": [k.public_jwk for k in keys]}
    entry.update(fields)
    return entry


def jwks_transport(
    sets: dict[str, dict[str, Any]], calls: list[str] | None = None, status: int = 200
) -> httpx.MockTransport:
    """Serves ``sets`` (URL -> JWK Set) and records each requested URL in ``calls``."""

    def handler(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if calls is not None:
            calls.append(url)
        if status != 200:
            return httpx.Response(status, text="unavailable")
        if url not in sets:
            return httpx.Response(404)
        return httpx.Response(200, json=sets[url])

    return httpx.MockTransport(handler)


AuthFactory = Callable[..., JwtAuthenticator]


@pytest.fixture
async def make_authenticator() -> Any:
    """Build authenticators over a trust config; closes their httpx clients afterwards."""
    clients: list[httpx.AsyncClient] = []

    def factory(
        trust: TrustConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        replay: ReplayCache | None = None,
        algorithms: tuple[str, ...] = ("ES384", "RS384"),
        jwks_clock: Callable[[], float] = time.time,
    ) -> JwtAuthenticator:
        client = httpx.AsyncClient(transport=transport or jwks_transport({}))
        clients.append(client)
        return JwtAuthenticator(
            trust,
            jwks=JwksCache(client, min_interval_s=60, clock=jwks_clock),
            replay=replay or MemoryReplayCache(),
            algorithms=algorithms,
            leeway_s=60,
        )

    yield factory
    for client in clients:
        await client.aclose()


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("TEST_REDIS_URL is not set (a real Redis is needed for the shared cache)")
    yield url
