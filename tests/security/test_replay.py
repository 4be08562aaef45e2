"""The jti replay cache: once per (iss, jti) until expiry, in memory and across replicas."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from service.security import (
    AuthenticationError,
    JwksCache,
    JwtAuthenticator,
    MemoryReplayCache,
    RedisReplayCache,
    open_replay_cache,
)
from service.security.replay import ReplayCacheUnavailable, open_redis
from service.settings import Settings

from .tokens import AUDIENCE, SigningKey, issuer, sign, trust_config


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_memory_cache_remembers_until_expiry() -> None:
    clock = Clock()
    cache = MemoryReplayCache(clock=clock)
    assert await cache.first_use("iss", "a", 120)
    assert not await cache.first_use("iss", "a", 120)
    assert await cache.first_use("other-iss", "a", 120)  # keyed by issuer and jti
    clock.now = 119
    assert not await cache.first_use("iss", "a", 120)
    clock.now = 121
    assert await cache.first_use("iss", "a", 120)


async def test_memory_cache_is_bounded_and_drops_the_soonest_to_expire() -> None:
    clock = Clock()
    cache = MemoryReplayCache(max_entries=3, clock=clock)
    assert await cache.first_use("iss", "short", 10)
    assert await cache.first_use("iss", "long-1", 1000)
    assert await cache.first_use("iss", "long-2", 1000)
    assert await cache.first_use("iss", "long-3", 1000)
    assert len(cache) == 3
    assert not await cache.first_use("iss", "long-1", 1000)
    assert await cache.first_use("iss", "short", 10)  # it was the one evicted


async def test_memory_cache_purges_expired_entries() -> None:
    clock = Clock()
    cache = MemoryReplayCache(clock=clock)
    for i in range(100):
        await cache.first_use("iss", str(i), 10)
    clock.now = 11
    await cache.first_use("iss", "new", 10)
    assert len(cache) == 1


def test_open_replay_cache_follows_the_settings() -> None:
    assert isinstance(open_replay_cache(Settings()), MemoryReplayCache)
    redis_backed = open_replay_cache(Settings(redis_url="redis://127.0.0.1:1/0"))
    assert isinstance(redis_backed, RedisReplayCache)


async def test_unreachable_redis_fails_closed(unused_tcp_port: int) -> None:
    cache = RedisReplayCache(open_redis(f"redis://127.0.0.1:{unused_tcp_port}/0"))
    try:
        with pytest.raises(ReplayCacheUnavailable):
            await cache.first_use("iss", "jti", 60)
    finally:
        await cache.aclose()


async def test_redis_cache_sets_once_with_expiry(redis_url: str) -> None:
    cache = RedisReplayCache(open_redis(redis_url))
    other = RedisReplayCache(open_redis(redis_url))
    jti = str(uuid.uuid4())
    try:
        assert await cache.first_use("iss", jti, 30)
        assert not await cache.first_use("iss", jti, 30)
        assert not await other.first_use("iss", jti, 30)  # another replica sees it too
        from service.security.replay import replay_key

        ttl = await cache._redis.ttl(replay_key("iss", jti))
        assert 0 < ttl <= 31
    finally:
        await cache.aclose()
        await other.aclose()


async def test_replay_across_two_authenticators_sharing_redis(
    redis_url: str, ec_key: SigningKey
) -> None:
    """Two replicas behind a load balancer: a token used at one is refused at the other."""
    trust = trust_config(issuer([ec_key]))
    async with httpx.AsyncClient() as http:
        replicas = [
            JwtAuthenticator(
                trust, jwks=JwksCache(http), replay=RedisReplayCache(open_redis(redis_url))
            )
            for _ in range(2)
        ]
        try:
            token = sign(ec_key)
            await replicas[0].authenticate("Bearer " + token, AUDIENCE)
            with pytest.raises(AuthenticationError) as info:
                await replicas[1].authenticate("Bearer " + token, AUDIENCE)
            assert info.value.reason == "replayed-jti"
        finally:
            for r in replicas:
                await r.aclose()


async def test_jwks_fetch_is_shared_through_redis(redis_url: str, ec_key: SigningKey) -> None:
    """With Redis, a JWK Set fetched by one replica serves the others without a fetch."""
    jku = f"https://ehr-{uuid.uuid4()}.example.org/jwks.json"
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(200, json={"keys": [ec_key.public_jwk]})

    redis_a, redis_b = open_redis(redis_url), open_redis(redis_url)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        try:
            first = JwksCache(http, redis=redis_a)
            second = JwksCache(http, redis=redis_b)
            assert (await first.get_key(jku, ec_key.kid)) is not None
            assert (await second.get_key(jku, ec_key.kid)) is not None
            # An unknown kid at the second replica: the fleet already fetched this minute.
            assert (await second.get_key(jku, "unknown")) is None
        finally:
            await redis_a.aclose()
            await redis_b.aclose()
    assert calls == [jku]


async def test_replay_across_two_authenticators_with_jku_keys(
    redis_url: str, ec_key: SigningKey
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"keys": [ec_key.public_jwk]})

    jku = f"https://ehr-{uuid.uuid4()}.example.org/jwks.json"  # fresh in the shared cache
    trust = trust_config(issuer(jku=[jku]))
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        made: list[Any] = []
        for _ in range(2):
            redis = open_redis(redis_url)
            made.append(
                JwtAuthenticator(
                    trust,
                    jwks=JwksCache(http, redis=redis),
                    replay=RedisReplayCache(redis, owns_client=False),
                    redis=redis,
                )
            )
        try:
            token = sign(ec_key, jku=jku)
            await made[0].authenticate("Bearer " + token, AUDIENCE)
            with pytest.raises(AuthenticationError) as info:
                await made[1].authenticate("Bearer " + token, AUDIENCE)
            assert info.value.reason == "replayed-jti"
        finally:
            for a in made:
                await a.aclose()
