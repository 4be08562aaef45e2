"""Fetching JWK Sets from allowlisted jku URLs: cached, refreshed on rotation at most once
per interval, never following redirects, and keeping known keys when the endpoint fails."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.security import JwksCache
from service.security.jwks import JwksUnavailable

from .tokens import AUDIENCE, JKU, SigningKey, issuer, sign, trust_config


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Published:
    """A client's JWKS endpoint whose content and health the test changes."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.status = 200
        self.calls = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.status != 200:
            return httpx.Response(self.status)
        return httpx.Response(200, json={"keys": [k.public_jwk for k in self.keys]})


@pytest.fixture
async def client_for() -> Any:
    clients: list[httpx.AsyncClient] = []

    def make(handler: Any) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.aclose()


async def test_rotation_is_picked_up_after_the_refresh_interval(
    client_for: Any, ec_key: SigningKey, other_ec_key: SigningKey
) -> None:
    endpoint = Published(ec_key)
    clock = Clock()
    cache = JwksCache(client_for(endpoint.handler), min_interval_s=60, clock=clock)

    assert (await cache.get_key(JKU, ec_key.kid)) is not None
    endpoint.keys.append(other_ec_key)  # the client rotates in a new key

    clock.now += 10
    assert (await cache.get_key(JKU, other_ec_key.kid)) is None  # too soon to refetch
    assert (await cache.get_key(JKU, "made-up")) is None
    assert endpoint.calls == 1

    clock.now += 60
    key = await cache.get_key(JKU, other_ec_key.kid)
    assert key is not None and key.kid == other_ec_key.kid
    assert endpoint.calls == 2


async def test_unknown_kids_cannot_drive_fetches(client_for: Any, ec_key: SigningKey) -> None:
    endpoint = Published(ec_key)
    clock = Clock()
    cache = JwksCache(client_for(endpoint.handler), min_interval_s=60, clock=clock)
    for i in range(50):
        clock.now += 1
        await cache.get_key(JKU, f"random-{i}")
    assert endpoint.calls == 1  # 50 s of junk kids: one fetch


async def test_known_keys_survive_a_failing_refresh(client_for: Any, ec_key: SigningKey) -> None:
    endpoint = Published(ec_key)
    clock = Clock()
    cache = JwksCache(client_for(endpoint.handler), min_interval_s=60, max_age_s=300, clock=clock)
    assert (await cache.get_key(JKU, ec_key.kid)) is not None
    endpoint.status = 503
    clock.now += 400  # stale: a refresh is attempted and fails
    assert (await cache.get_key(JKU, ec_key.kid)) is not None
    assert endpoint.calls == 2


async def test_stale_sets_are_refetched_so_removed_keys_stop_working(
    client_for: Any, ec_key: SigningKey, other_ec_key: SigningKey
) -> None:
    endpoint = Published(ec_key)
    clock = Clock()
    cache = JwksCache(client_for(endpoint.handler), min_interval_s=60, max_age_s=300, clock=clock)
    assert (await cache.get_key(JKU, ec_key.kid)) is not None
    endpoint.keys = [other_ec_key]  # the client withdraws the old key
    clock.now += 400
    assert (await cache.get_key(JKU, ec_key.kid)) is None


async def test_first_fetch_failure_is_unavailable_not_unknown(client_for: Any) -> None:
    endpoint = Published()
    endpoint.status = 500
    cache = JwksCache(client_for(endpoint.handler), clock=Clock())
    with pytest.raises(JwksUnavailable):
        await cache.get_key(JKU, "k")


async def test_redirects_are_not_followed(client_for: Any, ec_key: SigningKey) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if str(request.url) == JKU:
            return httpx.Response(302, headers={"Location": "https://evil.example.com/jwks"})
        return httpx.Response(200, json={"keys": [ec_key.public_jwk]})

    cache = JwksCache(client_for(handler), clock=Clock())
    with pytest.raises(JwksUnavailable):
        await cache.get_key(JKU, ec_key.kid)
    assert seen == [JKU]


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"no": "keys"}', b"[]", b'{"keys": "x"}', b"{" + b" " * 300_000 + b"}"],
)
async def test_bad_jwks_bodies_are_unavailable(client_for: Any, body: bytes) -> None:
    cache = JwksCache(client_for(lambda r: httpx.Response(200, content=body)), clock=Clock())
    with pytest.raises(JwksUnavailable):
        await cache.get_key(JKU, "k")


async def test_unusable_keys_in_a_published_set_are_skipped(
    client_for: Any, ec_key: SigningKey
) -> None:
    published = {
        "keys": [
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {**ec_key.public_jwk, "kid": "enc", "use": "enc"},
            {"kty": "EC", "kid": "broken", "crv": "P-384", "x": "AA", "y": "AA"},
            ec_key.public_jwk,
        ]
    }
    cache = JwksCache(client_for(lambda r: httpx.Response(200, json=published)), clock=Clock())
    assert (await cache.get_key(JKU, ec_key.kid)) is not None
    for kid in ("hmac", "enc", "broken"):
        assert (await cache.get_key(JKU, kid)) is None


async def test_authenticator_accepts_a_rotated_key_from_the_jku(
    make_authenticator: Any, ec_key: SigningKey, other_ec_key: SigningKey
) -> None:
    """End to end through the authenticator: new kid -> one refetch -> accepted."""
    endpoint = Published(ec_key)
    clock = Clock()
    auth = make_authenticator(
        trust_config(issuer(jku=[JKU])),
        transport=httpx.MockTransport(endpoint.handler),
        jwks_clock=clock,
    )
    await auth.authenticate("Bearer " + sign(ec_key, jku=JKU), AUDIENCE)
    endpoint.keys.append(other_ec_key)
    clock.now += 61
    identity = await auth.authenticate("Bearer " + sign(other_ec_key, jku=JKU), AUDIENCE)
    assert identity.jti is not None
    assert endpoint.calls == 2
