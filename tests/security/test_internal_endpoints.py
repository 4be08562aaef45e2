"""``/metrics`` and ``/openapi.json`` are no authentication oracle (issue 15, item 5).

``liver_cds_jwt_failures_total{reason}`` tells whoever reads it why each token failed
(``unknown-issuer`` vs ``unknown-kid`` vs ``bad-audience``). With ``LIVER_CDS_AUTH=required``
the internal endpoints are served only to a request carrying ``LIVER_CDS_METRICS_TOKEN``,
and not at all without one; anyone else gets exactly the 404 of an unknown path. The 401
itself is bare, whatever the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from service.settings import Settings

from .app_helpers import HOOK_PATH, hook_request, running, settings_for, write_trust
from .tokens import SigningKey, claims, issuer, sign

TOKEN = "m" * 40
INTERNAL = ("/metrics", "/openapi.json")


def required(tmp_path: Path, key: SigningKey, **fields: Any) -> Settings:
    return settings_for(
        tmp_path, auth="required", trust_file=write_trust(tmp_path, issuer([key])), **fields
    )


def same_as_unknown_path(answer: httpx.Response, unknown: httpx.Response) -> bool:
    return (answer.status_code, answer.content, answer.headers.get("content-type")) == (
        unknown.status_code,
        unknown.content,
        unknown.headers.get("content-type"),
    )


async def test_with_auth_required_and_no_token_they_are_not_served(
    tmp_path: Path, ec_key: SigningKey
) -> None:
    async with running(required(tmp_path, ec_key)) as client:
        unknown = await client.get("/no-such-path")
        for path in INTERNAL:
            answer = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert same_as_unknown_path(answer, unknown), path


async def test_with_auth_required_only_the_token_holder_reads_them(
    tmp_path: Path, ec_key: SigningKey
) -> None:
    async with running(required(tmp_path, ec_key, metrics_token=TOKEN)) as client:
        unknown = await client.get("/no-such-path")
        for path in INTERNAL:
            for headers in (
                {},
                {"Authorization": "Bearer " + "x" * 40},
                {"Authorization": TOKEN},
                {"Authorization": f"Basic {TOKEN}"},
                {"Authorization": f"Bearer {TOKEN}x"},
            ):
                answer = await client.get(path, headers=headers)
                assert same_as_unknown_path(answer, unknown), (path, headers)
        metrics = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert metrics.status_code == 200
        assert "liver_cds_jwt_failures" in metrics.text
        openapi = await client.get("/openapi.json", headers={"Authorization": f"bearer {TOKEN}"})
        assert openapi.status_code == 200
        assert openapi.json()["openapi"].startswith("3.")


async def test_a_guessed_issuer_and_a_guessed_kid_get_the_same_bare_401(
    tmp_path: Path, ec_key: SigningKey, other_ec_key: SigningKey
) -> None:
    """The reason is logged and counted, never answered."""
    body = hook_request()
    async with running(required(tmp_path, ec_key, metrics_token=TOKEN)) as client:
        unknown_issuer = sign(ec_key, claims(iss="https://guessed.example"))
        unknown_kid = sign(other_ec_key)
        wrong_audience = sign(ec_key, claims(aud="https://elsewhere.example/x"))
        answers = [
            await client.post(HOOK_PATH, json=body, headers={"Authorization": f"Bearer {jwt}"})
            for jwt in (unknown_issuer, unknown_kid, wrong_audience)
        ]
        scrape = await client.get("/metrics")  # no token: the counts stay hidden
    shapes = {(a.status_code, a.content, tuple(sorted(a.headers.keys()))) for a in answers}
    assert len(shapes) == 1
    (status, content, _), *_ = shapes
    assert status == 401 and content == b""
    assert scrape.status_code == 404
    assert "unknown-issuer" not in scrape.text


@pytest.mark.parametrize("token", ["", TOKEN])
async def test_with_auth_off_they_are_open_unless_a_token_is_set(
    tmp_path: Path, token: str
) -> None:
    async with running(settings_for(tmp_path, metrics_token=token)) as client:
        anonymous = await client.get("/metrics")
        holder = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert anonymous.status_code == (404 if token else 200)
    assert holder.status_code == 200
