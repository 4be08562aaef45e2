"""The SMART launch steps against answers an EHR should not give: discovery and the token
response are checked before anything is trusted."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from service.smart import oauth

from .ehr import s256

ISS = "https://ehr.example.org/fhir"
CLIENT = oauth.ClientConfig("cds", "https://cds.example.org/smart/callback", "launch")
GOOD_CONFIG: dict[str, Any] = {
    "authorization_endpoint": "https://ehr.example.org/authorize",
    "token_endpoint": "https://ehr.example.org/token",
    "capabilities": ["launch-ehr", "client-public"],
    "code_challenge_methods_supported": ["S256"],
}
GOOD_TOKEN: dict[str, Any] = {
    "access_token": "the-access-token",
    "token_type": "bearer",
    "patient": "p1",
    "expires_in": 300,
    "scope": "launch patient/Patient.rs",
}


def answering(status: int, body: Any, seen: list[httpx.Request] | None = None) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if isinstance(body, bytes):
            return httpx.Response(status, content=body)
        return httpx.Response(status, json=body)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_discovery_reads_the_endpoints_from_the_iss() -> None:
    seen: list[httpx.Request] = []
    async with answering(200, GOOD_CONFIG, seen) as http:
        config = await oauth.discover(http, ISS + "/")
    assert str(seen[0].url) == ISS + "/.well-known/smart-configuration"
    assert config.token_endpoint == GOOD_CONFIG["token_endpoint"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"code_challenge_methods_supported": ["plain"]}, "PKCE S256"),
        ({"code_challenge_methods_supported": None}, "PKCE S256"),
        ({"capabilities": ["launch-standalone"]}, "EHR launch"),
        ({"token_endpoint": "http://ehr.example.org/token"}, "token_endpoint"),
        ({"authorization_endpoint": None}, "authorization_endpoint"),
        ({"code_challenge_methods_supported": 256}, "PKCE S256"),
        ({"code_challenge_methods_supported": "S256"}, "PKCE S256"),
        ({"capabilities": True}, "EHR launch"),
        ({"capabilities": {"launch-ehr": True}}, "EHR launch"),
    ],
)
async def test_discovery_refuses_a_server_the_launch_cannot_trust(
    change: dict[str, Any], message: str
) -> None:
    async with answering(200, GOOD_CONFIG | change) as http:
        with pytest.raises(oauth.LaunchError, match=message):
            await oauth.discover(http, ISS)


async def test_discovery_refuses_an_oversized_or_failed_answer() -> None:
    async with answering(200, b"{" + b" " * (oauth.MAX_RESPONSE_BYTES + 1)) as http:
        with pytest.raises(oauth.LaunchError, match="too large"):
            await oauth.discover(http, ISS)
    async with answering(404, {"error": "x"}) as http:
        with pytest.raises(oauth.LaunchError, match="HTTP 404"):
            await oauth.discover(http, ISS)


def test_the_authorization_request_carries_state_pkce_aud_and_launch() -> None:
    config = oauth.SmartConfiguration(
        GOOD_CONFIG["authorization_endpoint"],
        GOOD_CONFIG["token_endpoint"],
        frozenset({"launch-ehr"}),
        frozenset({"S256"}),
    )
    first = oauth.authorization_request(config, CLIENT, iss=ISS, launch="L1")
    second = oauth.authorization_request(config, CLIENT, iss=ISS, launch="L1")
    query = {k: v[0] for k, v in parse_qs(urlsplit(first.url).query).items()}
    assert query == {
        "response_type": "code",
        "client_id": "cds",
        "redirect_uri": CLIENT.redirect_uri,
        "scope": "launch",
        "state": first.state,
        "aud": ISS,
        "launch": "L1",
        "code_challenge": s256(first.code_verifier),
        "code_challenge_method": "S256",
    }
    assert 43 <= len(first.code_verifier) <= 128  # RFC 7636 4.1
    assert first.state != second.state and first.code_verifier != second.code_verifier


async def test_the_token_request_sends_the_verifier_and_reads_the_patient() -> None:
    seen: list[httpx.Request] = []
    async with answering(200, GOOD_TOKEN, seen) as http:
        token = await oauth.exchange_code(
            http, GOOD_CONFIG["token_endpoint"], CLIENT, code="c", code_verifier="v" * 43
        )
    form = {k: v[0] for k, v in parse_qs(seen[0].content.decode()).items()}
    assert form == {
        "grant_type": "authorization_code",
        "code": "c",
        "redirect_uri": CLIENT.redirect_uri,
        "code_verifier": "v" * 43,
        "client_id": "cds",
    }
    assert (token.patient, token.expires_in) == ("p1", 300.0)
    assert "the-access-token" not in repr(token)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"patient": None}, "no patient context"),
        ({"token_type": "mac"}, "not Bearer"),
        ({"access_token": ""}, "no access_token"),
    ],
)
async def test_a_token_response_without_what_the_app_needs_is_refused(
    change: dict[str, Any], message: str
) -> None:
    async with answering(200, GOOD_TOKEN | change) as http:
        with pytest.raises(oauth.LaunchError, match=message):
            await oauth.exchange_code(http, "https://e/token", CLIENT, code="c", code_verifier="v")


async def test_a_refused_token_request_names_the_oauth_error_only() -> None:
    body = {"error": "invalid_grant", "error_description": "code for Patient/secret-123 used"}
    async with answering(400, body) as http:
        with pytest.raises(oauth.LaunchError) as refused:
            await oauth.exchange_code(http, "https://e/token", CLIENT, code="c", code_verifier="v")
    assert refused.value.message == "the EHR refused the token request (invalid_grant)"


def test_only_a_configured_iss_is_accepted() -> None:
    allowed = ("https://EHR.example.org:443/fhir/",)
    assert oauth.allowed_iss(ISS, allowed) == ISS
    for bad in ("https://ehr.example.org/fhir2", "https://evil.example/fhir", "", None):
        with pytest.raises(oauth.LaunchError):
            oauth.allowed_iss(bad, allowed)


async def test_a_token_endpoint_httpx_cannot_request_is_a_502_page_not_a_500() -> None:
    # It passed discovery's https check (urllib's reading); httpx refuses its IDNA host.
    async with answering(200, GOOD_TOKEN) as http:
        with pytest.raises(oauth.LaunchError, match="could not be reached") as caught:
            await oauth.exchange_code(
                http, "https://xn--a.example/token", CLIENT, code="c", code_verifier="v"
            )
    assert caught.value.status == 502
