"""Fetching and caching the JWK Sets published at allowlisted ``jku`` URLs.

Rules, in the order they protect us:

* Only URLs from the trust file are ever fetched (the caller checks the allowlist);
  redirects are not followed, so an allowlisted URL cannot send us elsewhere.
* A set is fetched on first use, re-fetched when older than ``max_age_s``, and
  re-fetched on an unknown ``kid`` (key rotation) — but never more than once per
  ``min_interval_s`` per URL, so a stream of tokens with made-up kids cannot turn us
  into a load generator against the client's JWKS endpoint. Failed fetches count too.
* If a re-fetch fails, the keys we already hold stay in use (logged): a JWKS endpoint
  blip must not lock every clinician out.
* Responses are capped at ``max_bytes`` and must be a JWK Set.

With Redis configured, fetched sets and the refresh rate limit are shared by all
replicas: a key rotation is fetched once for the fleet, not once per process.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..observability import get_logger
from .keys import JwkError, VerificationKey, parse_jwk_set

log = get_logger("security.jwks")

JWKS_KEY_PREFIX = "liver-cds:jwks:"
REFRESH_KEY_PREFIX = "liver-cds:jwks-refresh:"


class JwksUnavailable(Exception):
    """No usable JWK Set could be obtained from the URL (message: short cause)."""


@dataclass
class _Entry:
    keys: dict[str, VerificationKey]
    raw: bytes
    fetched_at: float
    """Wall-clock time of the fetch (shared between replicas through Redis)."""


class JwksCache:
    """Keys by ``(jku URL, kid)``, fetched with the service's shared httpx client."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        min_interval_s: float = 60.0,
        max_age_s: float = 3600.0,
        timeout_s: float = 3.0,
        max_bytes: int = 256 * 1024,
        redis: Redis | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._min_interval = min_interval_s
        self._max_age = max_age_s
        self._timeout = httpx.Timeout(timeout_s)
        self._max_bytes = max_bytes
        self._redis = redis
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._last_attempt: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetch_count = 0
        """Number of HTTP fetches made by this instance (for tests and metrics)."""

    async def get_key(self, url: str, kid: str) -> VerificationKey | None:
        """The key ``kid`` published at ``url``, fetching or refreshing as the rules allow.

        Returns None when the set is available but has no such kid; raises
        :class:`JwksUnavailable` when no set from ``url`` is available at all.
        """
        entry = self._entries.get(url)
        if entry is not None and kid in entry.keys and not self._stale(entry):
            return entry.keys[kid]
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:
            entry = self._entries.get(url)
            if entry is None or kid not in entry.keys or self._stale(entry):
                shared = await self._read_shared(url)
                if shared is not None and (entry is None or shared.fetched_at > entry.fetched_at):
                    self._entries[url] = entry = shared
            wanted = entry is None or kid not in entry.keys or self._stale(entry)
            if wanted and await self._may_refresh(url):
                entry = await self._refresh(url, entry)
            if entry is None:
                raise JwksUnavailable("no key set fetched yet")
            return entry.keys.get(kid)

    def _stale(self, entry: _Entry) -> bool:
        return self._clock() - entry.fetched_at >= self._max_age

    async def _may_refresh(self, url: str) -> bool:
        """At most one fetch per ``min_interval_s`` per URL: in this process, and across
        replicas when Redis is shared."""
        now = self._clock()
        last = self._last_attempt.get(url)
        if last is not None and now - last < self._min_interval:
            return False
        self._last_attempt[url] = now
        if self._redis is not None:
            try:
                got = await self._redis.set(
                    REFRESH_KEY_PREFIX + _url_hash(url),
                    b"1",
                    nx=True,
                    ex=max(int(self._min_interval), 1),
                )
            except (RedisError, OSError) as exc:
                log.warning(
                    "jwks shared rate limit unavailable", extra={"error": type(exc).__name__}
                )
                return True
            return bool(got)
        return True

    async def _refresh(self, url: str, old: _Entry | None) -> _Entry | None:
        try:
            raw = await self._fetch(url)
            keys = parse_jwk_set(json.loads(raw), strict=False)
        except (JwksUnavailable, JwkError, ValueError) as exc:
            log.warning("jwks fetch failed", extra={"jku": url, "error": str(exc)[:200]})
            return old
        entry = _Entry(keys=keys, raw=raw, fetched_at=self._clock())
        self._entries[url] = entry
        await self._write_shared(url, entry)
        log.info("jwks fetched", extra={"jku": url, "kids": sorted(keys)})
        return entry

    async def _fetch(self, url: str) -> bytes:
        self.fetch_count += 1
        try:
            async with self._http.stream(
                "GET",
                url,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
                follow_redirects=False,
            ) as response:
                if response.status_code != 200:
                    raise JwksUnavailable(f"HTTP {response.status_code}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self._max_bytes:
                        raise JwksUnavailable("response too large")
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise JwksUnavailable(type(exc).__name__) from None
        return b"".join(chunks)

    async def _read_shared(self, url: str) -> _Entry | None:
        if self._redis is None:
            return None
        try:
            blob = await self._redis.get(JWKS_KEY_PREFIX + _url_hash(url))
        except (RedisError, OSError) as exc:
            log.warning("jwks shared cache unavailable", extra={"error": type(exc).__name__})
            return None
        if not blob:
            return None
        try:
            doc = json.loads(blob)
            raw = doc["jwks"].encode()
            fetched_at = float(doc["fetched_at"])
            keys = parse_jwk_set(json.loads(raw), strict=False)
        except (ValueError, KeyError, TypeError, AttributeError, JwkError):
            return None
        return _Entry(keys=keys, raw=raw, fetched_at=fetched_at)

    async def _write_shared(self, url: str, entry: _Entry) -> None:
        if self._redis is None:
            return
        doc = json.dumps({"jwks": entry.raw.decode(), "fetched_at": entry.fetched_at})
        try:
            await self._redis.set(
                JWKS_KEY_PREFIX + _url_hash(url), doc.encode(), ex=max(int(self._max_age), 1)
            )
        except (RedisError, OSError, UnicodeDecodeError) as exc:
            log.warning("jwks shared cache write failed", extra={"error": type(exc).__name__})


def _url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()
