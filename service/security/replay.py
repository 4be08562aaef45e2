"""The JWT replay cache: each (iss, jti) is accepted once until the token can no longer be used.

CDS Hooks 2.0 makes ``jti`` a nonce "used to protect against replay attacks". A token
is remembered until its ``exp`` plus the clock leeway; after that the ``exp`` check
rejects it anyway, so nothing older needs to be kept.

Two implementations behind one protocol:

* :class:`MemoryReplayCache` — one process; the local default.
* :class:`RedisReplayCache` — ``SET key 1 NX EX ttl``, one atomic round trip, so every
  replica behind a load balancer sees every jti (``LIVER_CDS_REDIS_URL``).

Only tokens whose signature and claims already verified reach the cache, so an
attacker cannot fill it with junk without a trusted client's private key.
"""

from __future__ import annotations

import hashlib
import heapq
import time
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..observability import get_logger
from ..settings import Settings

log = get_logger("security.replay")

DEFAULT_MAX_ENTRIES = 100_000
KEY_PREFIX = "liver-cds:jti:"


class ReplayCacheUnavailable(Exception):
    """The shared cache cannot be reached; the caller must fail closed."""


class ReplayCache(Protocol):
    async def first_use(self, iss: str, jti: str, ttl_s: float) -> bool:
        """Record ``(iss, jti)`` for ``ttl_s`` seconds; True if it was not seen before.

        Raises :class:`ReplayCacheUnavailable` when the answer cannot be known.
        """
        ...

    async def aclose(self) -> None: ...


def replay_key(iss: str, jti: str) -> str:
    """A fixed-length key: issuer and nonce are client-chosen strings of any length."""
    digest = hashlib.sha256(iss.encode() + b"\x00" + jti.encode()).hexdigest()
    return KEY_PREFIX + digest


class MemoryReplayCache:
    """In-process cache with expiry and a size bound.

    When full, expired entries go first; if it is still full, the entries closest to
    expiry are dropped (they have the least replay window left). The bound keeps a
    flood of valid tokens from growing memory without limit.
    """

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries <= 0:
            raise ValueError("max_entries must be positive")
        self._max = max_entries
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    async def first_use(self, iss: str, jti: str, ttl_s: float) -> bool:
        now = self._clock()
        key = replay_key(iss, jti)
        seen = self._expiry.get(key)
        if seen is not None and seen > now:
            return False
        self._purge(now)
        while len(self._expiry) >= self._max:
            self._evict_one()
        expires = now + max(ttl_s, 1.0)
        self._expiry[key] = expires
        heapq.heappush(self._heap, (expires, key))
        return True

    def _purge(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            self._evict_one()

    def _evict_one(self) -> None:
        expires, key = heapq.heappop(self._heap)
        if self._expiry.get(key) == expires:
            del self._expiry[key]

    async def aclose(self) -> None:
        self._expiry.clear()
        self._heap.clear()


class RedisReplayCache:
    """Replay cache shared by all replicas through Redis (``SET NX EX``)."""

    def __init__(self, redis: Redis, *, owns_client: bool = True) -> None:
        self._redis = redis
        self._owns = owns_client

    async def first_use(self, iss: str, jti: str, ttl_s: float) -> bool:
        try:
            stored = await self._redis.set(
                replay_key(iss, jti), b"1", nx=True, ex=max(int(ttl_s) + 1, 1)
            )
        except (RedisError, OSError) as exc:
            log.error("replay cache unavailable", extra={"error": type(exc).__name__})
            raise ReplayCacheUnavailable(type(exc).__name__) from None
        return bool(stored)

    async def aclose(self) -> None:
        if self._owns:
            await self._redis.aclose()


def open_redis(url: str) -> Redis:
    """A Redis client for shared security state (connects lazily, on first use)."""
    client: Redis = Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    return client


def open_replay_cache(settings: Settings, *, redis: Redis | None = None) -> ReplayCache:
    """Redis-backed when ``settings.redis_url`` is set (shared by replicas), else in memory.

    Pass ``redis`` to share one client with the JWKS cache; the cache then does not
    close it.
    """
    if redis is not None:
        return RedisReplayCache(redis, owns_client=False)
    if settings.redis_url:
        return RedisReplayCache(open_redis(settings.redis_url))
    return MemoryReplayCache()
