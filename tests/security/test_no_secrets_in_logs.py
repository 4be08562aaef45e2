"""Whole hook flows through create_app with known secrets: none may appear in any log record
(caplog at DEBUG, extras included), in the service's formatted stderr output, or in an
error body. The secrets are the CDS client's JWT, the EHR's FHIR access token, and
patient content (a name, a clinical note, a clinician's free-text comment).

The flows cover the paths where secrets travel: accepted and rejected JWTs, prefetch,
the FHIR fetch with the bearer token (and FHIR servers that fail or echo it back), a
refused fhirServer, malformed requests, and feedback.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from .app_helpers import (
    FEEDBACK_AUD,
    HOOK_AUD,
    HOOK_PATH,
    hook_request,
    running,
    settings_for,
    write_trust,
)
from .tokens import SigningKey, claims, issuer, sign

FHIR_BASE = "https://ehr.example.org/fhir/r4"  # the trust file's fhir_servers (tokens.FHIR)


class Secrets:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:12]
        self.access_token = f"at-{tag}-SeCrEt-access-token"
        self.family = f"Secretfamily{tag}"
        self.given = f"Secretgiven{tag}"
        self.note = f"secret clinical note {tag}"
        self.comment = f"secret clinician comment {tag}"
        self.jwts: list[str] = []

    def values(self) -> list[str]:
        found = [self.access_token, self.family, self.given, self.note, self.comment]
        for jwt in self.jwts:
            found.append(jwt)
            found.extend(jwt.split(".")[1:])  # payload and signature each on their own
        return found


def _with_secrets(request: dict[str, Any], s: Secrets) -> dict[str, Any]:
    """The fixture patient's request, carrying the secrets where an EHR puts them."""
    prefetch = request["prefetch"]
    prefetch["patient"]["name"] = [{"family": s.family, "given": [s.given]}]
    conditions = prefetch["conditions"]["entry"]
    conditions[0]["resource"]["note"] = [{"text": s.note}]
    request["fhirServer"] = FHIR_BASE
    request["fhirAuthorization"] = {
        "access_token": s.access_token,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/Patient.read patient/Condition.read patient/Observation.read",
        "subject": "liver-cds",
    }
    return request


def _fhir_server(s: Secrets, prefetch: dict[str, Any], mode: str) -> httpx.MockTransport:
    """A FHIR server serving the fixture patient, checking the bearer token.

    ``mode`` ``ok`` answers; ``echo-401`` and ``echo-500`` fail with bodies that quote the
    token and the patient's name (as some servers do), which must not reach our answer.
    """

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers.get("authorization") == f"Bearer {s.access_token}"
        echo = f"token {s.access_token} rejected for {s.given} {s.family}"
        if mode == "echo-401":
            return httpx.Response(401, text=echo)
        if mode == "echo-500":
            return httpx.Response(500, text=echo)
        path = request.url.path
        if "/Patient/" in path:
            return httpx.Response(200, json=prefetch["patient"])
        if path.endswith("/Condition"):
            return httpx.Response(200, json=prefetch["conditions"])
        if path.endswith("/Observation"):
            return httpx.Response(200, json=prefetch["observations"])
        return httpx.Response(404, json={"resourceType": "OperationOutcome"})

    return httpx.MockTransport(handler)


async def test_no_secret_reaches_logs_or_error_bodies(
    tmp_path: Path,
    ec_key: SigningKey,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = Secrets()
    bodies: list[tuple[str, int, bytes]] = []

    def keep(name: str, response: httpx.Response, expected: int) -> None:
        assert response.status_code == expected, (name, response.status_code, response.text)
        bodies.append((name, response.status_code, response.content))

    def token(aud: str = HOOK_AUD) -> str:
        jwt = sign(ec_key, claims(aud=aud))
        s.jwts.append(jwt)
        return jwt

    base = _with_secrets(hook_request(), s)
    caplog.set_level(logging.DEBUG)

    # --- auth required: JWTs, prefetch, a refused fhirServer, malformed requests ------------
    trust = write_trust(tmp_path, issuer([ec_key]))
    required = settings_for(
        tmp_path / "required", auth="required", trust_file=trust, log_level="debug"
    )
    (tmp_path / "required").mkdir()
    async with running(required) as client:
        ok = token()
        keep("prefetch", await client.post(HOOK_PATH, json=base, headers=_bearer(ok)), 200)
        keep("replayed", await client.post(HOOK_PATH, json=base, headers=_bearer(ok)), 401)
        tampered = token()
        keep(
            "bad signature",
            await client.post(HOOK_PATH, json=base, headers=_bearer(tampered[:-8] + "AAAAAAAA")),
            401,
        )
        keep(
            "wrong scheme",
            await client.post(HOOK_PATH, json=base, headers={"Authorization": f"Basic {token()}"}),
            401,
        )

        elsewhere = _copy(base)
        elsewhere.pop("prefetch")
        elsewhere["fhirServer"] = "https://attacker.example.com/fhir"
        keep(
            "refused fhirServer",
            await client.post(HOOK_PATH, json=elsewhere, headers=_bearer(token())),
            412,
        )

        basic = _copy(base)
        basic["fhirAuthorization"]["token_type"] = "Basic"
        keep("token_type", await client.post(HOOK_PATH, json=basic, headers=_bearer(token())), 400)

        no_subject = _copy(base)
        del no_subject["fhirAuthorization"]["subject"]
        keep(
            "no subject",
            await client.post(HOOK_PATH, json=no_subject, headers=_bearer(token())),
            400,
        )

        bad_prefetch = _copy(base)
        bad_prefetch["prefetch"]["patient"] = [bad_prefetch["prefetch"]["patient"]]
        keep(
            "prefetch shape",
            await client.post(HOOK_PATH, json=bad_prefetch, headers=_bearer(token())),
            400,
        )

        no_hook = _copy(base)
        no_hook["hook"] = f"{s.given} {s.family}"
        response = await client.post(HOOK_PATH, json=no_hook, headers=_bearer(token()))
        assert response.status_code == 400
        # An echo of the caller's own misplaced value is allowed in a 400 only for fields
        # that are not secrets; the log must still not carry it.

        feedback = {
            "feedback": [
                {
                    "card": str(uuid.uuid4()),
                    "outcome": "overridden",
                    "overrideReason": {"userComment": s.comment},
                    "outcomeTimestamp": "2026-06-01T12:05:00Z",
                }
            ]
        }
        keep(
            "feedback",
            await client.post(
                HOOK_PATH + "/feedback", json=feedback, headers=_bearer(token(FEEDBACK_AUD))
            ),
            200,
        )

    # --- auth off: the FHIR fetch with the access token --------------------------------------
    fetched = _copy(base)
    prefetch = fetched.pop("prefetch")
    for mode, expected in (("ok", 200), ("echo-401", 412), ("echo-500", 412)):
        off = settings_for(tmp_path / mode, auth="off", log_level="debug")
        (tmp_path / mode).mkdir()
        async with running(off, http_transport=_fhir_server(s, prefetch, mode)) as client:
            keep(f"fetch {mode}", await client.post(HOOK_PATH, json=fetched), expected)

    # --- nothing secret anywhere ------------------------------------------------------------
    stderr = capsys.readouterr().err
    assert "hook call" in caplog.text and "jwt rejected" in caplog.text  # logs were captured
    assert '"event"' in stderr or "hook call" in stderr  # and the service's own output too
    for secret in s.values():
        assert secret not in caplog.text, f"secret in a log message: {secret[:12]}..."
        for record in caplog.records:
            assert secret not in repr(record.__dict__), (
                f"secret in log record {record.name}:{record.getMessage()!r}"
            )
        assert secret not in stderr, f"secret in the service's log output: {secret[:12]}..."
        for name, status, body in bodies:
            if status != 200:
                assert secret.encode() not in body, f"secret in the {name} error body"
        for name, status, body in bodies:
            if status == 200:
                assert secret.encode() not in body, f"secret in the {name} answer"


def _bearer(jwt: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt}"}


def _copy(value: dict[str, Any]) -> dict[str, Any]:
    import copy

    return copy.deepcopy(value)
