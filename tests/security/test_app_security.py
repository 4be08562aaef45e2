"""End to end through create_app: with LIVER_CDS_AUTH=required every endpoint answers a bare
401 to a bad JWT, and a fhirServer the client is not trusted for is never contacted."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from .app_helpers import (
    DISCOVERY_AUD,
    FEEDBACK_AUD,
    HOOK_AUD,
    HOOK_PATH,
    hook_request,
    running,
    settings_for,
    silent_listener,
    write_trust,
)
from .tokens import ISS, JKU, SigningKey, b64, claims, issuer, sign


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + token}


@pytest.fixture
def auth_settings(tmp_path: Path, ec_key: SigningKey, rsa_key: SigningKey) -> Any:
    trust = write_trust(tmp_path, issuer([ec_key, rsa_key]))
    return settings_for(tmp_path, auth="required", trust_file=trust)


async def test_valid_es384_and_rs384_tokens_reach_every_endpoint(
    auth_settings: Any, ec_key: SigningKey, rsa_key: SigningKey
) -> None:
    async with running(auth_settings) as client:
        for key in (ec_key, rsa_key):
            discovery = await client.get(
                "/cds-services", headers=_auth(sign(key, claims(aud=DISCOVERY_AUD)))
            )
            assert discovery.status_code == 200
            assert discovery.json()["services"][0]["id"] == "liver-metastasis-resectability"
            hook = await client.post(
                HOOK_PATH, json=hook_request(), headers=_auth(sign(key, claims(aud=HOOK_AUD)))
            )
            assert hook.status_code == 200, hook.text
            assert "cards" in hook.json()
            feedback = await client.post(
                HOOK_PATH + "/feedback",
                json={"feedback": []},
                headers=_auth(sign(key, claims(aud=FEEDBACK_AUD))),
            )
            assert feedback.status_code == 200, feedback.text


def _hs384_with_public_key(key: SigningKey) -> str:
    header = b64(json.dumps({"alg": "HS384", "typ": "JWT", "kid": key.kid}).encode())
    payload = b64(json.dumps(claims(aud=HOOK_AUD)).encode())
    mac = hmac.new(key.public_pem, f"{header}.{payload}".encode(), hashlib.sha384).digest()
    return f"{header}.{payload}.{b64(mac)}"


def _alg_none(key: SigningKey) -> str:
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": key.kid}).encode())
    return f"{header}.{b64(json.dumps(claims(aud=HOOK_AUD)).encode())}."


BAD_TOKENS = {
    "missing header": lambda k, o: None,
    "malformed": lambda k, o: "Bearer not.a.jwt",
    "alg none": lambda k, o: "Bearer " + _alg_none(k),
    "HS384 with the public key": lambda k, o: "Bearer " + _hs384_with_public_key(k),
    "unknown kid": lambda k, o: "Bearer " + sign(k, claims(aud=HOOK_AUD), kid="nope"),
    "wrong key": lambda k, o: "Bearer " + sign(o, claims(aud=HOOK_AUD), kid=k.kid),
    "unknown iss": lambda k, o: (
        "Bearer " + sign(k, claims(aud=HOOK_AUD, iss="https://evil.example.com"))
    ),
    "wrong aud": lambda k, o: "Bearer " + sign(k, claims(aud=DISCOVERY_AUD)),
    "expired": lambda k, o: (
        "Bearer "
        + sign(k, claims(aud=HOOK_AUD, iat=int(time.time()) - 900, exp=int(time.time()) - 600))
    ),
    "iat in the future": lambda k, o: (
        "Bearer "
        + sign(k, claims(aud=HOOK_AUD, iat=int(time.time()) + 600, exp=int(time.time()) + 900))
    ),
    "jku not allowlisted": lambda k, o: (
        "Bearer " + sign(k, claims(aud=HOOK_AUD), jku="https://evil.example.com/jwks.json")
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_bad_tokens_get_a_bare_401(
    auth_settings: Any, ec_key: SigningKey, other_ec_key: SigningKey, case: str
) -> None:
    authorization = BAD_TOKENS[case](ec_key, other_ec_key)
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with running(auth_settings) as client:
        response = await client.post(HOOK_PATH, json=hook_request(), headers=headers)
    assert response.status_code == 401
    assert response.content == b""


async def test_discovery_and_feedback_need_the_jwt_too(
    auth_settings: Any, ec_key: SigningKey
) -> None:
    async with running(auth_settings) as client:
        assert (await client.get("/cds-services")).status_code == 401
        # A token for the hook URL is not a token for discovery or feedback (aud).
        assert (await client.get("/cds-services", headers=_auth(sign(ec_key)))).status_code == 401
        response = await client.post(
            HOOK_PATH + "/feedback",
            json={"feedback": []},
            headers=_auth(sign(ec_key, claims(aud=HOOK_AUD))),
        )
        assert response.status_code == 401


async def test_replayed_token_gets_401(auth_settings: Any, ec_key: SigningKey) -> None:
    token = sign(ec_key, claims(aud=HOOK_AUD))
    async with running(auth_settings) as client:
        accepted = await client.post(HOOK_PATH, json=hook_request(), headers=_auth(token))
        assert accepted.status_code == 200
        again = await client.post(HOOK_PATH, json=hook_request(), headers=_auth(token))
    assert again.status_code == 401


async def test_replay_across_two_app_instances_sharing_redis(
    tmp_path: Path, redis_url: str, ec_key: SigningKey
) -> None:
    """Two replicas, one Redis: a token accepted by one is refused by the other."""
    trust = write_trust(tmp_path, issuer([ec_key]))
    token = sign(ec_key, claims(aud=HOOK_AUD))
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    common = {"auth": "required", "trust_file": trust, "redis_url": redis_url}
    async with (
        running(settings_for(first_dir, **common)) as first,
        running(settings_for(second_dir, **common)) as second,
    ):
        accepted = await first.post(HOOK_PATH, json=hook_request(), headers=_auth(token))
        assert accepted.status_code == 200
        replay = await second.post(HOOK_PATH, json=hook_request(), headers=_auth(token))
    assert replay.status_code == 401


async def test_jwks_endpoint_down_gets_401(tmp_path: Path, ec_key: SigningKey) -> None:
    with silent_listener() as (port, _):
        pass  # the port is closed again: nothing listens there now
    down = f"http://127.0.0.1:{port}/jwks.json"
    trust = write_trust(tmp_path, issuer(jku=[down]))
    settings = settings_for(tmp_path, auth="required", trust_file=trust)
    async with running(settings) as client:
        response = await client.post(
            HOOK_PATH,
            json=hook_request(),
            headers=_auth(sign(ec_key, claims(aud=HOOK_AUD), jku=down)),
        )
    assert response.status_code == 401


async def test_keys_from_an_allowlisted_jku_through_the_app(
    tmp_path: Path, ec_key: SigningKey
) -> None:
    import httpx

    fetched: list[str] = []

    def jwks(request: httpx.Request) -> httpx.Response:
        fetched.append(str(request.url))
        return httpx.Response(200, json={"keys": [ec_key.public_jwk]})

    trust = write_trust(tmp_path, issuer(jku=[JKU]))
    settings = settings_for(tmp_path, auth="required", trust_file=trust)
    async with running(settings, http_transport=httpx.MockTransport(jwks)) as client:
        for _ in range(2):
            token = sign(ec_key, claims(aud=HOOK_AUD), jku=JKU)
            response = await client.post(HOOK_PATH, json=hook_request(), headers=_auth(token))
            assert response.status_code == 200
    assert fetched == [JKU]


# --- fhirServer policy: no outbound request -----------------------------------------------


def _without_prefetch(fhir_server: str) -> dict[str, Any]:
    request = hook_request()
    request.pop("prefetch")
    request["fhirServer"] = fhir_server
    request["fhirAuthorization"] = {
        "access_token": "token-" + uuid.uuid4().hex,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "cds-service",
    }
    return request


async def test_non_allowlisted_fhir_server_is_never_contacted(
    auth_settings: Any, ec_key: SigningKey
) -> None:
    with silent_listener() as (port, connections):
        request = _without_prefetch(f"https://127.0.0.1:{port}/fhir")
        async with running(auth_settings) as client:
            response = await client.post(
                HOOK_PATH, json=request, headers=_auth(sign(ec_key, claims(aud=HOOK_AUD)))
            )
        assert response.status_code in (403, 412)
        assert "allowlist" in response.json()["error"]
        assert connections() == 0


async def test_plain_http_off_loopback_policy_is_never_contacted(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, auth="off", fhir_allow_loopback_http=False)
    with silent_listener() as (port, connections):
        async with running(settings) as client:
            response = await client.post(
                HOOK_PATH, json=_without_prefetch(f"http://127.0.0.1:{port}/fhir")
            )
        assert response.status_code in (403, 412)
        assert "https" in response.json()["error"]
        assert connections() == 0


async def test_the_listener_does_see_a_permitted_connection(tmp_path: Path) -> None:
    """Control for the two tests above: an allowed fhirServer on that socket is contacted,
    so ``connections() == 0`` there really means no request was attempted."""
    settings = settings_for(
        tmp_path, auth="off", fhir_allow_loopback_http=True, fhir_timeout_s=0.3, call_budget_s=0.6
    )
    with silent_listener() as (port, connections):
        async with running(settings) as client:
            response = await client.post(
                HOOK_PATH, json=_without_prefetch(f"http://127.0.0.1:{port}/fhir")
            )
        assert response.status_code == 412  # the silent server never answers
        assert connections() >= 1


async def test_allowlisted_issuer_may_not_send_us_to_another_issuers_server(
    tmp_path: Path, ec_key: SigningKey, rsa_key: SigningKey
) -> None:
    other_fhir = "https://other-ehr.example.org/fhir"
    trust = write_trust(
        tmp_path,
        issuer([ec_key]),
        issuer([rsa_key], iss="https://other-ehr.example.org", fhir_servers=[other_fhir]),
    )
    settings = settings_for(tmp_path, auth="required", trust_file=trust)
    async with running(settings) as client:
        response = await client.post(
            HOOK_PATH,
            json=_without_prefetch(other_fhir),
            headers=_auth(sign(ec_key, claims(aud=HOOK_AUD, iss=ISS))),
        )
    assert response.status_code in (403, 412)


async def test_browser_preflight_needs_no_jwt(auth_settings: Any) -> None:
    """The sandbox runs in a browser: its CORS preflight carries no Authorization header
    and must pass, while the real call after it still needs the JWT."""
    async with running(auth_settings) as client:
        response = await client.options(
            HOOK_PATH,
            headers={
                "Origin": "https://sandbox.cds-hooks.org",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
    assert response.status_code == 200
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed


async def test_a_prefetch_outcome_with_a_refused_fhir_server_is_a_412_naming_the_policy(
    tmp_path: Path,
) -> None:
    # The prefetch says the EHR could not prefetch 'observations'; the fhirServer that could
    # supply them is refused: the 412 says why (the policy), not "no fhirServer was given".
    settings = settings_for(tmp_path, auth="off", fhir_allow_loopback_http=False)
    request = hook_request()
    request["fhirServer"] = "http://10.0.0.1/fhir"
    request["prefetch"]["observations"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout"}],
    }
    async with running(settings) as client:
        response = await client.post(HOOK_PATH, json=request)
    assert response.status_code == 412
    message = response.json()["error"]
    assert "fhirServer must use https" in message
    assert "observations" in message
