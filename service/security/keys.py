"""Public verification keys from JWK Sets, and which signing algorithm each may verify.

A JWK is accepted only if it is an asymmetric *public* key (EC on P-256/P-384/P-521 or
RSA of at least 2048 bits) meant for signatures. Symmetric (``oct``) keys are refused
outright: CDS Hooks 2.0 forbids HMAC, and a symmetric key in a trust file would be a
shared secret sitting in a config file. Private members (``d``) are refused too, so a
trust file that accidentally holds a client's private key fails loudly instead of being
used quietly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..settings import ALLOWED_JWT_ALGORITHMS

MIN_RSA_BITS = 2048

_CURVE_FOR_ALG = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


class JwkError(ValueError):
    """A JWK cannot be used as a verification key (the message says why)."""


@dataclass(frozen=True)
class VerificationKey:
    """One public key from a JWK Set, ready for PyJWT."""

    kid: str
    kty: str
    """``EC`` or ``RSA``."""
    crv: str | None
    """Curve name for EC keys (``P-384``); None for RSA."""
    alg: str | None
    """The JWK's own ``alg`` member, when it declares one."""
    key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey

    def accepts(self, alg: str) -> bool:
        """True when a JWT signed with ``alg`` may be verified with this key.

        Binding the header's ``alg`` to the key type (and to the key's declared ``alg``)
        is what stops algorithm-confusion attacks from reaching the verifier.
        """
        if alg not in ALLOWED_JWT_ALGORITHMS:
            return False
        if self.alg is not None and self.alg != alg:
            return False
        if alg.startswith("ES"):
            return self.kty == "EC" and self.crv == _CURVE_FOR_ALG.get(alg)
        if alg.startswith("RS"):
            return self.kty == "RSA"
        return False


def parse_jwk(data: object) -> VerificationKey:
    """Turn one JWK (a JSON object) into a :class:`VerificationKey`, or raise JwkError."""
    if not isinstance(data, Mapping):
        raise JwkError("a key must be a JSON object")
    kid = data.get("kid")
    if not isinstance(kid, str) or not kid:
        raise JwkError("a key needs a non-empty string 'kid'")
    kty = data.get("kty")
    if kty == "oct":
        raise JwkError(f"key {kid!r}: symmetric keys (kty 'oct') are not allowed")
    if kty not in ("EC", "RSA"):
        raise JwkError(f"key {kid!r}: kty must be 'EC' or 'RSA', not {kty!r}")
    private = [m for m in _PRIVATE_MEMBERS if m in data]
    if private:
        raise JwkError(
            f"key {kid!r}: holds private key members ({', '.join(private)}); "
            "publish only the public key"
        )
    use = data.get("use")
    if use is not None and use != "sig":
        raise JwkError(f"key {kid!r}: 'use' is {use!r}, a signature key needs 'sig'")
    alg = data.get("alg")
    if alg is not None and alg not in ALLOWED_JWT_ALGORITHMS:
        raise JwkError(f"key {kid!r}: alg {alg!r} is not an allowed signature algorithm")
    crv = data.get("crv") if kty == "EC" else None
    if kty == "EC" and crv not in _CURVE_FOR_ALG.values():
        raise JwkError(f"key {kid!r}: curve {crv!r} is not supported")
    try:
        # The algorithm argument only selects PyJWT's JWK parser (EC vs RSA); the
        # algorithm a token may use with this key is decided by accepts().
        parsed: Any = jwt.PyJWK(dict(data), algorithm="ES384" if kty == "EC" else "RS384").key
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise JwkError(f"key {kid!r}: not a valid {kty} JWK ({type(exc).__name__})") from None
    if isinstance(parsed, rsa.RSAPublicKey):
        if parsed.key_size < MIN_RSA_BITS:
            raise JwkError(f"key {kid!r}: RSA keys need at least {MIN_RSA_BITS} bits")
    elif not isinstance(parsed, ec.EllipticCurvePublicKey):
        raise JwkError(f"key {kid!r}: not a public key")
    return VerificationKey(
        kid=kid,
        kty=kty,
        crv=crv if isinstance(crv, str) else None,
        alg=alg if isinstance(alg, str) else None,
        key=parsed,
    )


def parse_jwk_set(data: object, *, strict: bool) -> dict[str, VerificationKey]:
    """Parse a JWK Set ``{"keys": [...]}`` into keys by ``kid``.

    ``strict`` (trust files) raises on the first unusable key or duplicate kid;
    otherwise (sets fetched from a ``jku``) unusable keys are skipped, because a
    client's published set may legitimately hold encryption keys next to its
    signing key.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("keys"), list):
        raise JwkError("a JWK Set must be an object with a 'keys' array")
    keys: dict[str, VerificationKey] = {}
    for item in data["keys"]:
        try:
            key = parse_jwk(item)
        except JwkError:
            if strict:
                raise
            continue
        if key.kid in keys:
            if strict:
                raise JwkError(f"duplicate kid {key.kid!r} in the JWK Set")
            continue
        keys[key.kid] = key
    return keys
