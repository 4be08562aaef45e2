"""CDS Hooks 2.0 "Trusting CDS Clients": which JWTs authenticate a CDS client, and which do not.

Each rejected case asserts the machine-friendly reason, so a test cannot pass because
the token failed for some other, earlier reason.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any

import jwt
import pytest

from service.observability import JWT_FAILURES
from service.security import AuthenticationError, ClientIdentity

from .tokens import (
    AUDIENCE,
    FHIR,
    ISS,
    JKU,
    SigningKey,
    b64,
    claims,
    issuer,
    jwks_transport,
    sign,
    trust_config,
)


async def rejected(auth: Any, authorization: str | None, audience: str = AUDIENCE) -> str:
    with pytest.raises(AuthenticationError) as info:
        await auth.authenticate(authorization, audience)
    return info.value.reason


# --- tokens that pass -----


async def test_valid_es384_token_identifies_the_client(
    make_authenticator: Any, ec_key: SigningKey
) -> None:
    auth = make_authenticator(trust_config(issuer([ec_key], tenants=["t-1"])))
    payload = claims(tenant="t-1", sub="ehr-client-7")
    identity = await auth.authenticate("Bearer " + sign(ec_key, payload), AUDIENCE)
    assert identity == ClientIdentity(
        iss=ISS, sub="ehr-client-7", tenant="t-1", jti=payload["jti"], fhir_servers=(FHIR,)
    )


async def test_valid_rs384_token_passes(make_authenticator: Any, rsa_key: SigningKey) -> None:
    auth = make_authenticator(trust_config(issuer([rsa_key])))
    identity = await auth.authenticate("Bearer " + sign(rsa_key), AUDIENCE)
    assert identity.iss == ISS


async def test_bearer_scheme_is_case_insensitive(
    make_authenticator: Any, ec_key: SigningKey
) -> None:
    auth = make_authenticator(trust_config(issuer([ec_key])))
    identity = await auth.authenticate("bEaReR  " + sign(ec_key), AUDIENCE)
    assert identity.iss == ISS


async def test_audience_may_be_a_one_element_array(
    make_authenticator: Any, ec_key: SigningKey
) -> None:
    auth = make_authenticator(trust_config(issuer([ec_key])))
    token = sign(ec_key, claims(aud=[AUDIENCE]))
    assert (await auth.authenticate("Bearer " + token, AUDIENCE)).iss == ISS


async def test_es256_passes_only_when_configured(make_authenticator: Any) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from .tokens import _public_jwk

    private = ec.generate_private_key(ec.SECP256R1())
    key = SigningKey("p256", "ES256", private, _public_jwk(private, "p256", "ES256"))
    trust = trust_config(issuer([key]))
    default = make_authenticator(trust)
    assert await rejected(default, "Bearer " + sign(key)) == "alg-not-allowed"
    widened = make_authenticator(trust, algorithms=("ES384", "RS384", "ES256"))
    assert (await widened.authenticate("Bearer " + sign(key), AUDIENCE)).iss == ISS


async def test_clock_skew_within_leeway_is_tolerated(
    make_authenticator: Any, ec_key: SigningKey
) -> None:
    now = int(time.time())
    auth = make_authenticator(trust_config(issuer([ec_key])))
    issued_ahead = sign(ec_key, claims(iat=now + 30, exp=now + 300))
    just_expired = sign(ec_key, claims(iat=now - 300, exp=now - 30))
    for token in (issued_ahead, just_expired):
        assert (await auth.authenticate("Bearer " + token, AUDIENCE)).iss == ISS


# --- the header and the token's shape ------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "", "   "])
async def test_missing_authorization_header(
    make_authenticator: Any, ec_key: SigningKey, authorization: str | None
) -> None:
    auth = make_authenticator(trust_config(issuer([ec_key])))
    assert await rejected(auth, authorization) == "missing-authorization"


@pytest.mark.parametrize("scheme", ["Basic", "Token", "JWT"])
async def test_other_schemes_are_refused(
    make_authenticator: Any, ec_key: SigningKey, scheme: str
) -> None:
    auth = make_authenticator(trust_config(issuer([ec_key])))
    assert await rejected(auth, f"{scheme} {sign(ec_key)}") == "not-bearer"


_HEADER = b64(b'{"alg": "ES384", "typ": "JWT", "kid": "ec-1"}')


@pytest.mark.parametrize(
    "token",
    [
        "abc",
        "a.b",
        "a.b.c",
        "....",
        f"{_HEADER}.%%%.c2ln",  # payload not base64url
        f"{_HEADER}.{b64(b'[1, 2]')}.c2ln",  # payload not a JSON object
        f"{_HEADER}.{b64(b'{not json')}.c2ln",
        f"{b64(b'[]')}.{b64(b'{}')}.c2ln",  # header not a JSON object
        "x" * 20_000,
    ],
)
async def test_malformed_tokens(make_authenticator: Any, ec_key: SigningKey, token: str) -> None:
    auth = make_authenticator(trust_config(issuer([ec_key])))
    assert await rejected(auth, "Bearer " + token) == "malformed"


async def test_alg_none_is_refused(make_authenticator: Any, ec_key: SigningKey) -> None:
    auth = make_authenticator(trust_config(issuer([ec_key])))
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": ec_key.kid}).encode())
    payload = b64(json.dumps(claims()).encode())
    for token in (f"{header}.{payload}.", f"{header}.{payload}.c2ln"):
        assert await rejected(auth, "Bearer " + token) == "alg-not-allowed"


@pytest.mark.parametrize("hs", ["HS256", "HS384", "HS512"])
async def test_hmac_signed_with_the_public_key_as_secret_is_refused(
    make_authenticator: Any, ec_key: SigningKey, rsa_key: SigningKey, hs: str
) -> None:
    """The classic algorithm-confusion attack: the public key is public, so a verifier
    that lets the token pick HMAC would accept anything signed with it."""
    auth = make_authenticator(trust_config(issuer([ec_key, rsa_key])))
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[hs]
    for key in (ec_key, rsa_key):
        for secret in (key.public_pem, json.dumps(key.public_jwk).encode()):
            header = b64(json.dumps({"alg": hs, "typ": "JWT", "kid": key.kid}).encode())
            payload = b64(json.dumps(claims()).encode())
            mac = hmac.new(secret, f"{header}.{payload}".encode(), digest).digest()
            token = f"{header}.{payload}.{b64(mac)}"
            assert await rejected(auth, "Bearer " + token) == "alg-not-allowed"


async def test_kid_is_required(make_authenticator: Any, ec_key: SigningKey) -> None:
    auth = make_authenticator(trust_config(issuer([ec_key])))
    assert await rejected(auth, "Bearer " + sign(ec_key, kid=None)) == "missing-kid"


async def test_typ_other_than_jwt_is_refused(make_authenticator: Any, ec_key: SigningKey) -> None:
    auth = make_authenticator(trust_config(issuer([ec_key])))
    assert await rejected(auth, "Bearer " + sign(ec_key, typ="at+jwt")) == "bad-typ"


async def test_typ_is_required(make_authenticator: Any, ec_key: SigningKey) -> None:
    # CDS Hooks 2.0 "Trusting CDS Clients": typ is REQUIRED, fixed value JWT.
    auth = make_authenticator(trust_config(issuer([ec_key])))
    token = sign(ec_key, typ="")  # PyJWT leaves an empty typ out of the header
    assert "typ" not in jwt.get_unverified_header(token)
    assert await rejected(auth, "Bearer " + token) == "bad-typ"


# --- issuer and keys -----


async def test_unknown_issuer(make_authenticator: Any, ec_key: SigningKey) -> None:
    auth = make_authenticator(trust_config(issuer([ec_key])))
    token = sign(ec_key, claims(iss="https://evil.example.com"))
    assert await rejected(auth, "Bearer " + token) == "unknown-issuer"


async def test_issuer_compared_exactly(make_authenticator: Any, ec_key: SigningKey) -> None:
    auth = make_authenticator(trust_config(issuer([ec_key])))
    token = sign(ec_key, claims(iss=ISS + "/"))
    assert await rejected(auth, "Bearer " + token) == "unknown-issuer"


async def test_unknown_kid(make_authenticator: Any, ec_key: SigningKey) -> None:
    auth = make_authenticator(trust_config(issuer([ec_key])))
    assert await rejected(auth, "Bearer " + sign(ec_key, kid="not-in-the-set")) == "unknown-kid"


async def test_wrong_key_under_a_known_kid(
    make_authenticator: Any, ec_key: SigningKey, other_ec_key: SigningKey
) -> None:
    """An attacker's key claiming the trusted kid: the signature does not verify."""
    auth = make_authenticator(trust_config(issuer([ec_key])))
    token = sign(other_ec_key, kid=ec_key.kid)
    assert await rejected(auth, "Bearer " + token) == "bad-signature"


async def test_tampered_payload(make_authenticator: Any, ec_key: SigningKey) -> None:
    auth = make_authenticator(trust_config(issuer([ec_key])))
    header, _, signature = sign(ec_key).split(".")
    forged = b64(json.dumps(claims(sub="someone-else")).encode())
    assert await rejected(auth, f"Bearer {header}.{forged}.{signature}") == "bad-signature"


async def test_key_of_another_type_than_alg(
    make_authenticator: Any, ec_key: SigningKey, rsa_key: SigningKey
) -> None:
    """An RS384 header naming the EC key's kid never reaches a verifier with that key."""
    auth = make_authenticator(trust_config(issuer([ec_key, rsa_key])))
    token = sign(rsa_key, kid=ec_key.kid)
    assert await rejected(auth, "Bearer " + token) == "key-alg-mismatch"


async def test_keys_are_per_issuer(
    make_authenticator: Any, ec_key: SigningKey, rsa_key: SigningKey
) -> None:
    """A key trusted for one issuer does not authenticate tokens claiming another issuer."""
    other = "https://other-ehr.example.org"
    auth = make_authenticator(
        trust_config(issuer([ec_key]), issuer([rsa_key], iss=other, fhir_servers=[]))
    )
    token = sign(ec_key, claims(iss=other))
    assert await rejected(auth, "Bearer " + token) == "unknown-kid"


# --- claims -----


async def test_wrong_audience(make_authenticator: Any, ec_key: SigningKey) -> None:
    auth = make_authenticator(trust_config(issuer([ec_key])))
    for aud in (
        "https://cds.example.org/cds-services",  # discovery's URL, not this service's
        "https://cds.example.org/cds-services/other-service",
        AUDIENCE + "/feedback",
        [AUDIENCE, "https://elsewhere.example.org"],
        [],
    ):
        token = sign(ec_key, claims(aud=aud))
        assert await rejected(auth, "Bearer " + token) == "bad-audience", aud


async def test_expired(make_authenticator: Any, ec_key: SigningKey) -> None:
    now = int(time.time())
    auth = make_authenticator(trust_config(issuer([ec_key])))
    token = sign(ec_key, claims(iat=now - 900, exp=now - 600))
    assert await rejected(auth, "Bearer " + token) == "expired"


async def test_tokens_valid_for_too_long_are_refused(
    make_authenticator: Any, ec_key: SigningKey
) -> None:
    """Single use needs remembering the jti until exp: a years-long token is refused."""
    now = int(time.time())
    auth = make_authenticator(trust_config(issuer([ec_key])))
    token = sign(ec_key, claims(iat=now, exp=now + 30 * 24 * 3600))
    assert await rejected(auth, "Bearer " + token) == "exp-too-far"
    hour = sign(ec_key, claims(iat=now, exp=now + 3600))
    assert (await auth.authenticate("Bearer " + hour, AUDIENCE)).iss == ISS


async def test_iat_in_the_future(make_authenticator: Any, ec_key: SigningKey) -> None:
    now = int(time.time())
    auth = make_authenticator(trust_config(issuer([ec_key])))
    token = sign(ec_key, claims(iat=now + 600, exp=now + 900))
    assert await rejected(auth, "Bearer " + token) == "iat-in-future"


async def test_nbf_in_the_future_is_named_as_such(
    make_authenticator: Any, ec_key: SigningKey
) -> None:
    """A token minted now but valid only later is logged as nbf-in-future, not iat-in-future:
    the operator looks for a different mistake (a token minted for later, not a clock)."""
    now = int(time.time())
    auth = make_authenticator(trust_config(issuer([ec_key])))
    later = sign(ec_key, claims(iat=now, nbf=now + 600, exp=now + 900))
    assert await rejected(auth, "Bearer " + later) == "nbf-in-future"
    odd = sign(ec_key, claims(iat=now, nbf="tomorrow", exp=now + 300))
    assert await rejected(auth, "Bearer " + odd) == "bad-nbf"
    within_leeway = sign(ec_key, claims(iat=now, nbf=now + 30, exp=now + 300))
    assert (await auth.authenticate("Bearer " + within_leeway, AUDIENCE)).iss == ISS


@pytest.mark.parametrize("claim", ["exp", "iat", "jti", "aud"])
async def test_required_claims(make_authenticator: Any, ec_key: SigningKey, claim: str) -> None:
    auth = make_authenticator(trust_config(issuer([ec_key])))
    token = sign(ec_key, claims(**{claim: None}))
    assert await rejected(auth, "Bearer " + token) == f"missing-{claim}"


async def test_tenant_mismatch(make_authenticator: Any, ec_key: SigningKey) -> None:
    auth = make_authenticator(trust_config(issuer([ec_key], tenants=["t-1", "t-2"])))
    assert await rejected(auth, "Bearer " + sign(ec_key, claims(tenant="t-3"))) == "bad-tenant"
    assert await rejected(auth, "Bearer " + sign(ec_key)) == "bad-tenant"  # no tenant at all


async def test_tenant_is_free_when_the_issuer_lists_none(
    make_authenticator: Any, ec_key: SigningKey
) -> None:
    auth = make_authenticator(trust_config(issuer([ec_key])))
    identity = await auth.authenticate("Bearer " + sign(ec_key, claims(tenant="any")), AUDIENCE)
    assert identity.tenant == "any"


async def test_replayed_jti(make_authenticator: Any, ec_key: SigningKey) -> None:
    auth = make_authenticator(trust_config(issuer([ec_key])))
    token = sign(ec_key)
    await auth.authenticate("Bearer " + token, AUDIENCE)
    assert await rejected(auth, "Bearer " + token) == "replayed-jti"
    # The same jti in a freshly signed token is a replay too.
    again = sign(ec_key, claims(jti=json.loads(_payload(token))["jti"]))
    assert await rejected(auth, "Bearer " + again) == "replayed-jti"


async def test_rejected_tokens_do_not_consume_their_jti(
    make_authenticator: Any, ec_key: SigningKey
) -> None:
    """A token refused for its audience must not burn the jti of the real one."""
    auth = make_authenticator(trust_config(issuer([ec_key])))
    payload = claims()
    wrong = sign(ec_key, {**payload, "aud": "https://elsewhere.example.org"})
    assert await rejected(auth, "Bearer " + wrong) == "bad-audience"
    assert (await auth.authenticate("Bearer " + sign(ec_key, payload), AUDIENCE)).jti == payload[
        "jti"
    ]


# --- jku -----


async def test_key_fetched_from_an_allowlisted_jku(
    make_authenticator: Any, ec_key: SigningKey
) -> None:
    calls: list[str] = []
    transport = jwks_transport({JKU: {"keys": [ec_key.public_jwk]}}, calls)
    auth = make_authenticator(trust_config(issuer(jku=[JKU])), transport=transport)
    assert (await auth.authenticate("Bearer " + sign(ec_key, jku=JKU), AUDIENCE)).iss == ISS
    # Without a jku header, the issuer's listed JWKS URLs are used (JWK Set agreed out of band).
    assert (await auth.authenticate("Bearer " + sign(ec_key), AUDIENCE)).iss == ISS
    assert calls == [JKU]  # fetched once, then cached


async def test_jku_not_on_the_allowlist(make_authenticator: Any, ec_key: SigningKey) -> None:
    calls: list[str] = []
    evil = "https://evil.example.com/jwks.json"
    transport = jwks_transport({evil: {"keys": [ec_key.public_jwk]}}, calls)
    auth = make_authenticator(trust_config(issuer([ec_key], jku=[JKU])), transport=transport)
    for jku in (evil, JKU + "?x=1", JKU.upper(), JKU + "/"):
        assert await rejected(auth, "Bearer " + sign(ec_key, jku=jku)) == "jku-not-allowed"
    assert calls == []  # never fetched


async def test_jku_refused_when_the_issuer_has_only_pinned_keys(
    make_authenticator: Any, ec_key: SigningKey
) -> None:
    auth = make_authenticator(trust_config(issuer([ec_key])))
    assert await rejected(auth, "Bearer " + sign(ec_key, jku=JKU)) == "jku-not-allowed"


async def test_jwks_endpoint_returning_500(make_authenticator: Any, ec_key: SigningKey) -> None:
    transport = jwks_transport({}, status=500)
    auth = make_authenticator(trust_config(issuer(jku=[JKU])), transport=transport)
    assert await rejected(auth, "Bearer " + sign(ec_key, jku=JKU)) == "jwks-unavailable"


async def test_jwks_endpoint_down(
    make_authenticator: Any, ec_key: SigningKey, unused_tcp_port: int
) -> None:
    """A jku on a loopback port where nothing listens: connection refused, no crash, 401."""
    import httpx

    down = f"http://127.0.0.1:{unused_tcp_port}/jwks.json"
    auth = make_authenticator(
        trust_config(issuer(jku=[down])), transport=httpx.AsyncHTTPTransport()
    )
    assert await rejected(auth, "Bearer " + sign(ec_key, jku=down)) == "jwks-unavailable"


# --- what failures leave behind -----


async def test_failures_are_counted_and_logged_without_the_token(
    make_authenticator: Any, ec_key: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    auth = make_authenticator(trust_config(issuer([ec_key])))
    token = sign(ec_key, claims(aud="https://elsewhere.example.org"))
    before = JWT_FAILURES.labels(reason="bad-audience")._value.get()
    with caplog.at_level(logging.DEBUG, logger="liver_cds"):
        assert await rejected(auth, "Bearer " + token) == "bad-audience"
    assert JWT_FAILURES.labels(reason="bad-audience")._value.get() == before + 1
    records = [r for r in caplog.records if r.getMessage() == "jwt rejected"]
    assert len(records) == 1
    assert records[0].__dict__["reason"] == "bad-audience"
    assert records[0].__dict__["iss"] == ISS
    assert records[0].__dict__["kid"] == ec_key.kid
    for part in token.split(".")[1:]:
        assert part not in caplog.text
        assert all(part not in repr(r.__dict__) for r in caplog.records)


def _payload(token: str) -> bytes:
    import base64

    part = token.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


async def test_logged_claims_cannot_forge_log_lines(
    make_authenticator: Any, ec_key: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    auth = make_authenticator(trust_config(issuer([ec_key])))
    token = sign(ec_key, claims(iss="https://x.example.org\nlevel=INFO event=forged" + "x" * 500))
    with caplog.at_level(logging.WARNING, logger="liver_cds"):
        assert await rejected(auth, "Bearer " + token) == "unknown-issuer"
    logged = next(r for r in caplog.records if r.getMessage() == "jwt rejected").__dict__["iss"]
    assert "\n" not in logged
    assert len(logged) == 200


async def test_an_unexpected_fault_in_a_check_is_a_rejection(
    make_authenticator: Any, ec_key: SigningKey
) -> None:
    """Fail closed: an error inside the replay cache (or any check) refuses the token."""

    class BrokenCache:
        async def first_use(self, iss: str, jti: str, ttl_s: float) -> bool:
            raise RuntimeError("boom")

        async def aclose(self) -> None:
            return None

    auth = make_authenticator(trust_config(issuer([ec_key])), replay=BrokenCache())
    assert await rejected(auth, "Bearer " + sign(ec_key)) == "internal-error"
