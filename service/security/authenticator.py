"""Authenticating CDS clients by the JWT of CDS Hooks 2.0, "Trusting CDS Clients".

The checks run cheapest and most dangerous first, and every failure has one short
reason (``alg-not-allowed``, ``expired``, ...) that is counted in ``JWT_FAILURES``,
logged with the issuer and kid, and never sent to the caller (the HTTP layer answers a
bare 401). The token itself is never logged.

1. ``Authorization: Bearer <jwt>`` (scheme case-insensitive), size-capped.
2. Header: ``alg`` in the configured asymmetric set — checked before any key is looked
   at, so ``none`` and HS* (the "HMAC signed with the public key" confusion) never
   reach a verifier; ``kid`` required; ``typ`` required and ``JWT`` (CDS Hooks 2.0).
3. ``iss`` on the trust file's allowlist.
4. Key: the issuer's pinned ``jwks``; or, from a ``jku`` URL, only one the issuer
   lists (exact match) — with no ``jku`` header, the issuer's listed URLs are used.
   The key must suit the ``alg`` (EC curve or RSA; the JWK's own ``alg``).
5. Signature, ``exp`` (required, not past, at most an hour ahead), ``iat`` (required,
   not in the future), both with ``jwt_leeway_s``; ``jti`` required.
6. ``aud`` equal to the URL called: a string or a one-element array.
7. ``tenant`` in the issuer's list when it has one.
8. ``jti`` not seen before for this issuer (replay cache, kept until exp + leeway).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import orjson
from redis.asyncio import Redis

from ..observability import JWT_FAILURES, get_logger
from ..settings import ALLOWED_JWT_ALGORITHMS, Settings
from .base import AuthenticationError, ClientIdentity
from .jwks import JwksCache, JwksUnavailable
from .keys import VerificationKey
from .replay import ReplayCache, ReplayCacheUnavailable, open_redis, open_replay_cache
from .trust import IssuerTrust, TrustConfig, load_trust_file

log = get_logger("security.auth")

MAX_TOKEN_CHARS = 16 * 1024
"""A CDS client JWT is a few hundred bytes; anything this large is not one."""
MAX_TOKEN_LIFETIME_S = 3600
"""Tokens may not expire more than this (plus leeway) after they are checked. CDS clients
sign one short-lived JWT per call (the sandbox and Epic use 5 minutes); a token valid
for days would have to be remembered for days to stay single-use."""
_LOG_FIELD_MAX = 200


class JwtAuthenticator:
    """Verifies CDS client JWTs against a :class:`TrustConfig` (see the module docstring)."""

    def __init__(
        self,
        trust: TrustConfig,
        *,
        jwks: JwksCache,
        replay: ReplayCache,
        algorithms: tuple[str, ...] = ("ES384", "RS384"),
        leeway_s: int = 60,
        redis: Redis | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.trust = trust
        self._redis = redis
        self._jwks = jwks
        self._replay = replay
        # Settings.check() already refuses anything else; filtering again here keeps the
        # guarantee when Settings are built directly (tests, tools).
        self._algorithms = frozenset(a for a in algorithms if a in ALLOWED_JWT_ALGORITHMS)
        self._leeway = leeway_s
        self._clock = clock

    async def authenticate(self, authorization: str | None, audience: str) -> ClientIdentity:
        header: dict[str, Any] = {}
        claims: dict[str, Any] = {}
        try:
            token = _bearer_token(authorization)
            header = _unverified_segment(token, 0)
            alg = self._check_header(header)
            claims = _unverified_segment(token, 1)
            issuer = self._issuer(claims)
            key = await self._key(issuer, header, alg)
            verified = self._verify(token, key, alg)
            _check_audience(verified, audience)
            tenant = _check_tenant(issuer, verified)
            await self._check_replay(issuer.iss, verified)
        except Exception as exc:
            # Fail closed: a fault in any check (a library error on a strange token) is a
            # rejection too, never a 500 nor an accepted call.
            error = exc if isinstance(exc, AuthenticationError) else None
            reason = error.reason if error is not None else "internal-error"
            JWT_FAILURES.labels(reason=reason).inc()
            log.warning(
                "jwt rejected",
                extra={
                    "reason": reason,
                    "error_type": None if error is not None else type(exc).__name__,
                    "iss": _loggable(claims.get("iss")),
                    "kid": _loggable(header.get("kid")),
                    "alg": _loggable(header.get("alg")),
                    "audience": audience,
                },
            )
            if error is not None:
                raise
            raise AuthenticationError(reason) from None
        sub = verified.get("sub")
        return ClientIdentity(
            iss=issuer.iss,
            sub=sub if isinstance(sub, str) else None,
            tenant=tenant,
            jti=verified["jti"],
            fhir_servers=issuer.fhir_servers,
        )

    async def shared_state_ready(self) -> bool:
        """Readiness: True without Redis, else when Redis answers ``PING``.

        With ``LIVER_CDS_REDIS_URL`` set, every token's ``jti`` goes through Redis; while it
        is down every authenticated call is a 401, so the replica must leave the load
        balancer (the client's own 2 s socket timeouts bound the wait).
        """
        if self._redis is None:
            return True
        try:
            return bool(await self._redis.ping())
        except Exception as exc:  # any Redis or socket error: not ready
            log.warning("redis ping failed", extra={"error": type(exc).__name__})
            return False

    async def aclose(self) -> None:
        """Close the replay cache and the Redis client this authenticator was given."""
        await self._replay.aclose()
        if self._redis is not None:
            await self._redis.aclose()

    # --- the steps -------------------------------------------------------------------------

    def _check_header(self, header: dict[str, Any]) -> str:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise AuthenticationError("alg-not-allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationError("missing-kid")
        typ = header.get("typ")  # CDS Hooks 2.0: REQUIRED, fixed value "JWT"
        if not isinstance(typ, str) or typ.upper() != "JWT":
            raise AuthenticationError("bad-typ")
        jku = header.get("jku")
        if jku is not None and not isinstance(jku, str):
            raise AuthenticationError("malformed")
        return alg

    def _issuer(self, claims: dict[str, Any]) -> IssuerTrust:
        iss = claims.get("iss")
        if not isinstance(iss, str) or not iss:
            raise AuthenticationError("missing-iss")
        issuer = self.trust.issuers.get(iss)
        if issuer is None:
            raise AuthenticationError("unknown-issuer")
        return issuer

    async def _key(self, issuer: IssuerTrust, header: dict[str, Any], alg: str) -> VerificationKey:
        kid: str = header["kid"]
        jku: str | None = header.get("jku")
        if jku is not None and jku not in issuer.jku:
            raise AuthenticationError("jku-not-allowed")
        key = issuer.keys.get(kid)
        if key is None:
            urls = (jku,) if jku is not None else issuer.jku
            key = await self._fetched_key(urls, kid)
        if not key.accepts(alg):
            raise AuthenticationError("key-alg-mismatch")
        return key

    async def _fetched_key(self, urls: tuple[str, ...], kid: str) -> VerificationKey:
        unavailable = 0
        for url in urls:
            try:
                key = await self._jwks.get_key(url, kid)
            except JwksUnavailable:
                unavailable += 1
                continue
            if key is not None:
                return key
        if urls and unavailable == len(urls):
            raise AuthenticationError("jwks-unavailable")
        raise AuthenticationError("unknown-kid")

    def _verify(self, token: str, key: VerificationKey, alg: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                leeway=self._leeway,
                options={
                    "require": ["exp", "iat", "jti", "iss", "aud"],
                    "verify_signature": True,
                    "verify_exp": True,
                    "verify_iat": True,
                    "verify_nbf": False,  # checked below, under its own reason
                    "verify_aud": False,  # checked below: exact URL, one-element list only
                    "verify_iss": False,  # already matched against the allowlist
                },
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthenticationError("iat-in-future") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f"missing-{exc.claim}") from None
        except jwt.InvalidSignatureError:
            raise AuthenticationError("bad-signature") from None
        except jwt.InvalidIssuedAtError:
            raise AuthenticationError("bad-iat") from None
        except jwt.InvalidKeyError:
            raise AuthenticationError("key-alg-mismatch") from None
        except jwt.PyJWTError:
            raise AuthenticationError("malformed") from None
        nbf = claims.get("nbf")
        if nbf is not None:
            # PyJWT reports a future nbf and a future iat with one exception type; the
            # operator needs to know which claim was early (the EHR's clock, or a token
            # minted for later), so nbf is checked here, with PyJWT's rule.
            if not isinstance(nbf, int | float) or isinstance(nbf, bool):
                raise AuthenticationError("bad-nbf")
            if nbf > self._clock() + self._leeway:
                raise AuthenticationError("nbf-in-future")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 512:
            raise AuthenticationError("bad-jti")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise AuthenticationError("bad-exp")
        if exp > self._clock() + MAX_TOKEN_LIFETIME_S + self._leeway:
            raise AuthenticationError("exp-too-far")
        return claims

    async def _check_replay(self, iss: str, claims: dict[str, Any]) -> None:
        ttl = float(claims["exp"]) + self._leeway - self._clock()
        try:
            first = await self._replay.first_use(iss, claims["jti"], max(ttl, 1.0))
        except ReplayCacheUnavailable:
            raise AuthenticationError("replay-cache-unavailable") from None
        if not first:
            raise AuthenticationError("replayed-jti")


# --- small pure helpers -----


def _bearer_token(authorization: str | None) -> str:
    if authorization is None or not authorization.strip():
        raise AuthenticationError("missing-authorization")
    parts = authorization.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise AuthenticationError("not-bearer")
    token = parts[1]
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        raise AuthenticationError("malformed")
    return token


def _unverified_segment(token: str, index: int) -> dict[str, Any]:
    """Header (0) or payload (1) before verification, only to route the token: which
    ``alg`` and ``kid``, which issuer's keys. PyJWT re-reads both from the token when it
    verifies the signature, and only that verified result is trusted. Decoding here
    directly (one pass, orjson) instead of through PyJWT saves two of its three parses,
    a third of the cost of a call."""
    part = token.split(".")[index]
    try:
        raw = base64.b64decode(part + "=" * (-len(part) % 4), altchars=b"-_", validate=True)
        value = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError):
        raise AuthenticationError("malformed") from None
    if not isinstance(value, dict):
        raise AuthenticationError("malformed")
    return value


def _check_audience(claims: dict[str, Any], audience: str) -> None:
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    if not isinstance(aud, str) or aud != audience:
        raise AuthenticationError("bad-audience")


def _check_tenant(issuer: IssuerTrust, claims: dict[str, Any]) -> str | None:
    tenant = claims.get("tenant")
    if tenant is not None and not isinstance(tenant, str):
        raise AuthenticationError("bad-tenant")
    if issuer.tenants and tenant not in issuer.tenants:
        raise AuthenticationError("bad-tenant")
    return tenant


def _loggable(value: object) -> str | None:
    """Client-chosen header/claim values, bounded and without control characters, so a
    hostile token can neither flood the log nor forge lines in it."""
    if value is None:
        return None
    text = value if isinstance(value, str) else repr(value)
    return "".join(c if c.isprintable() else "?" for c in text[:_LOG_FIELD_MAX])


# --- construction from settings -----


def build_authenticator(settings: Settings, *, http: httpx.AsyncClient) -> JwtAuthenticator | None:
    """The authenticator for ``settings``, or None when ``LIVER_CDS_AUTH=off``.

    Loads the trust file (raising :class:`~service.security.trust.TrustFileError` on a
    bad one, so start-up fails loudly), and opens the replay cache and the JWKS cache —
    both on Redis when ``LIVER_CDS_REDIS_URL`` is set, so all replicas share them.
    """
    if settings.auth == "off":
        log.warning(
            "AUTHENTICATION IS OFF (LIVER_CDS_AUTH=off): any caller can invoke the service "
            "and send it to loopback FHIR servers. Local development only; set "
            "LIVER_CDS_AUTH=required and LIVER_CDS_TRUST_FILE in production.",
            extra={"auth": "off"},
        )
        return None
    trust = load_trust_file(settings.trust_file)
    dev = trust.development_only_issuers
    if dev:
        log.warning(
            "trust file lists development-only issuers; their keys are public, so anyone "
            "can sign tokens for them. Remove them in production.",
            extra={"issuers": list(dev)},
        )
    redis = open_redis(settings.redis_url) if settings.redis_url else None
    replay = open_replay_cache(settings, redis=redis)
    jwks = JwksCache(
        http,
        min_interval_s=settings.jwks_refresh_min_interval_s,
        redis=redis,
    )
    authenticator = JwtAuthenticator(
        trust,
        jwks=jwks,
        replay=replay,
        algorithms=settings.jwt_algorithms,
        leeway_s=settings.jwt_leeway_s,
        redis=redis,
    )
    log.info(
        "authentication required",
        extra={
            "issuers": sorted(trust.issuers),
            "algorithms": list(settings.jwt_algorithms),
            "replay_cache": "redis" if redis is not None else "memory",
        },
    )
    return authenticator
