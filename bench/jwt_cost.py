"""What authentication costs per call: JWT verification with ``LIVER_CDS_AUTH=required``.

Usage::

    .venv/bin/python bench/jwt_cost.py                    # ES384 and RS384, 2,000 tokens each
    .venv/bin/python bench/jwt_cost.py --tokens 5000 --redis redis://127.0.0.1:6379/0

It generates an EC P-384 and an RSA-2048 key pair, writes a temporary trust file that
pins their public JWKs for one issuer, builds the authenticator exactly as the service
does (:func:`service.security.build_authenticator` from :class:`Settings`), signs many
tokens up front (each with a new ``jti``, as a CDS client sends one per call: signing is
the client's cost and is not timed), then times ``authenticate()`` once per token. It
prints the median and p95 in microseconds per verification, and, to show where that
time goes, the median of PyJWT's ``jwt.decode`` alone (signature and claims) on the same
tokens. With ``--redis`` the replay cache is Redis (one round trip per call) instead of
process memory. Every token must be accepted; a rejection stops the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from service.security import build_authenticator  # noqa: E402
from service.settings import Settings  # noqa: E402

ISS = "https://ehr.bench.example.org"
FHIR = "https://ehr.bench.example.org/fhir/r4"
PUBLIC_URL = "https://cds.bench.example.org"
AUDIENCE = PUBLIC_URL + "/cds-services/liver-metastasis-resectability"


@dataclass(frozen=True)
class Key:
    kid: str
    alg: str
    private: Any

    def public_jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        data: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        data.update(kid=self.kid, alg=self.alg, use="sig")
        return data


def generate_keys() -> list[Key]:
    return [
        Key("bench-ec", "ES384", ec.generate_private_key(ec.SECP384R1())),
        Key("bench-rsa", "RS384", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    ]


def sign_tokens(key: Key, count: int) -> list[str]:
    """``count`` valid CDS Hooks client JWTs, each with its own jti."""
    now = int(time.time())
    headers = {"typ": "JWT", "kid": key.kid}
    return [
        jwt.encode(
            {"iss": ISS, "aud": AUDIENCE, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())},
            key.private,
            algorithm=key.alg,
            headers=headers,
        )
        for _ in range(count)
    ]


def write_trust_file(directory: str, keys: list[Key]) -> str:
    path = Path(directory) / "trust.json"
    trust = {
        "issuers": [
            {
                "iss": ISS,
                "jwks": {"keys": [k.public_jwk() for k in keys]},
                "fhir_servers": [FHIR],
                "description": "benchmark issuer (temporary keys)",
            }
        ]
    }
    path.write_text(json.dumps(trust))
    return str(path)


async def time_authenticate(
    settings: Settings, tokens: list[str], key: Key
) -> tuple[list[float], list[float]]:
    """Microseconds per ``authenticate()`` and per bare ``jwt.decode`` over ``tokens``."""
    async with httpx.AsyncClient() as http:
        authenticator = build_authenticator(settings, http=http)
        assert authenticator is not None
        try:
            for token in tokens[:20]:  # warm-up: key objects, code paths (fresh jti each)
                await authenticator.authenticate(f"Bearer {token}", AUDIENCE)
            full = []
            for token in tokens[20:]:
                t0 = time.perf_counter()
                await authenticator.authenticate(f"Bearer {token}", AUDIENCE)
                full.append((time.perf_counter() - t0) * 1e6)
        finally:
            await authenticator.aclose()
    public = key.private.public_key()
    bare = []
    for token in tokens[20:]:
        t0 = time.perf_counter()
        jwt.decode(token, key=public, algorithms=[key.alg], audience=AUDIENCE)
        bare.append((time.perf_counter() - t0) * 1e6)
    return full, bare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=2000, help="tokens per algorithm")
    parser.add_argument("--redis", default="", help="replay cache on this Redis URL")
    args = parser.parse_args()
    logging.getLogger("liver_cds").setLevel(logging.WARNING)
    keys = generate_keys()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="liver-cds-jwt-") as tmp:
        settings = Settings(
            auth="required",
            trust_file=write_trust_file(tmp, keys),
            public_url=PUBLIC_URL,
            redis_url=args.redis,
        )
        for key in keys:
            tokens = sign_tokens(key, args.tokens + 20)
            full, bare = asyncio.run(time_authenticate(settings, tokens, key))
            full.sort()
            results[key.alg] = {
                "median_us": statistics.median(full),
                "p95_us": full[int(len(full) * 0.95)],
                "jwt_decode_median_us": statistics.median(bare),
            }
    replay = "Redis" if args.redis else "memory"
    print(
        f"JWT verification per call (authenticate(), replay cache in {replay}, "
        f"{args.tokens} unique tokens per algorithm):"
    )
    for alg, r in results.items():
        print(
            f"  {alg}: median {r['median_us']:.0f} µs, p95 {r['p95_us']:.0f} µs "
            f"(of which PyJWT decode+verify alone: median {r['jwt_decode_median_us']:.0f} µs)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
