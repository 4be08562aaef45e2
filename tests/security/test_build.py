"""build_authenticator: off is loud, required is strict, a bad trust file stops start-up."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from service.security import (
    AuthenticationError,
    JwtAuthenticator,
    RedisReplayCache,
    TrustFileError,
    build_authenticator,
)
from service.settings import Settings

from .tokens import AUDIENCE, SigningKey, issuer, sign

SANDBOX_FILE = Path(__file__).resolve().parents[2] / "deploy" / "trust.sandbox.json"


async def test_auth_off_gives_no_authenticator_and_a_loud_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with httpx.AsyncClient() as http:
        with caplog.at_level(logging.WARNING, logger="liver_cds"):
            assert build_authenticator(Settings(auth="off"), http=http) is None
    assert any(
        r.levelno == logging.WARNING and "AUTHENTICATION IS OFF" in r.getMessage()
        for r in caplog.records
    )


async def test_auth_required_verifies_against_the_trust_file(
    tmp_path: Path, ec_key: SigningKey
) -> None:
    path = tmp_path / "trust.json"
    path.write_text(json.dumps({"issuers": [issuer([ec_key])]}))
    settings = Settings(auth="required", trust_file=str(path))
    async with httpx.AsyncClient() as http:
        auth = build_authenticator(settings, http=http)
        assert isinstance(auth, JwtAuthenticator)
        try:
            await auth.authenticate("Bearer " + sign(ec_key), AUDIENCE)
            with pytest.raises(AuthenticationError):
                await auth.authenticate(None, AUDIENCE)
        finally:
            await auth.aclose()


async def test_development_only_issuers_are_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(auth="required", trust_file=str(SANDBOX_FILE))
    async with httpx.AsyncClient() as http:
        with caplog.at_level(logging.WARNING, logger="liver_cds"):
            auth = build_authenticator(settings, http=http)
        assert auth is not None
        await auth.aclose()
    warned = [r for r in caplog.records if "development-only" in r.getMessage()]
    assert warned and warned[0].__dict__["issuers"] == ["https://sandbox.cds-hooks.org"]


async def test_bad_trust_file_fails_start_up(tmp_path: Path) -> None:
    path = tmp_path / "trust.json"
    path.write_text(json.dumps({"issuers": [{"iss": "x", "jku": ["http://ehr.example.org/j"]}]}))
    async with httpx.AsyncClient() as http:
        with pytest.raises(TrustFileError, match="must be https"):
            build_authenticator(Settings(auth="required", trust_file=str(path)), http=http)
        with pytest.raises(TrustFileError, match="cannot read"):
            build_authenticator(
                Settings(auth="required", trust_file=str(tmp_path / "missing.json")), http=http
            )


async def test_redis_url_makes_the_replay_cache_shared(
    redis_url: str, ec_key: SigningKey, tmp_path: Path
) -> None:
    path = tmp_path / "trust.json"
    path.write_text(json.dumps({"issuers": [issuer([ec_key])]}))
    settings = Settings(auth="required", trust_file=str(path), redis_url=redis_url)
    async with httpx.AsyncClient() as http:
        first = build_authenticator(settings, http=http)
        second = build_authenticator(settings, http=http)
        assert first is not None and second is not None
        try:
            assert isinstance(first._replay, RedisReplayCache)
            token = sign(ec_key)
            await first.authenticate("Bearer " + token, AUDIENCE)
            with pytest.raises(AuthenticationError) as info:
                await second.authenticate("Bearer " + token, AUDIENCE)
            assert info.value.reason == "replayed-jti"
        finally:
            await first.aclose()
            await second.aclose()
