"""The SMART App Launch against a test EHR (tests/smart/ehr.py) in front of the real
Medplum FHIR server: launch, discovery, authorize with PKCE S256 and state, token
exchange, FHIR reads with the user's token, the full view; and every way it must refuse.

The requests a browser would make are made with httpx here (cookies kept per client);
tests/smart/test_browser.py drives the same launch in Chromium.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from .ehr import SmartEhr, s256
from .servers import CLIENT_ID, PATIENT, Stack, start

if TYPE_CHECKING:
    pass

pytestmark = pytest.mark.integration


def authorize(client: httpx.Client, stack: Stack) -> tuple[str, dict[str, str]]:
    """Launch and approve in the EHR: the callback URL the EHR redirects to, and the
    parameters of the authorization request the app made."""
    launched = client.get(stack.launch_url())
    assert launched.status_code == 302, launched.text
    location = launched.headers["location"]
    assert location.startswith(stack.ehr.base + "/authorize?")
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    consent = client.get(location)
    assert consent.status_code == 200, consent.text
    ticket = re.search(r'name="ticket" value="([^"]+)"', consent.text)
    assert ticket is not None
    approved = client.post(stack.ehr.base + "/authorize/approve", data={"ticket": ticket[1]})
    assert approved.status_code == 303
    return approved.headers["location"], params


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{httpx.QueryParams(query)}"


# --- the launch that works -------------------------------------------------------------------


def test_ehr_launch_shows_the_full_assessment_read_with_the_users_token(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with httpx.Client(timeout=30) as client:
        callback, params = authorize(client, stack)
        # SMART 2.x authorization request: PKCE S256, state, aud = the FHIR base, launch.
        assert params["response_type"] == "code" and params["client_id"] == CLIENT_ID
        assert params["code_challenge_method"] == "S256" and len(params["state"]) >= 32
        assert params["aud"] == stack.ehr.iss and params["launch"] in stack.ehr.launches
        assert params["redirect_uri"] == stack.base + "/smart/callback"
        assert "patient/Observation.rs" in params["scope"].split()

        done = client.get(callback)
        assert done.status_code == 303
        assert re.fullmatch(r"/smart/view\?v=[A-Za-z0-9_-]{16,}", done.headers["location"])
        page = client.get(stack.base + "/smart/view")
        assert page.status_code == 200, page.text[-2000:]

    (token_request,) = stack.ehr.token_requests
    assert s256(token_request["code_verifier"]) == params["code_challenge"]
    assert token_request["client_id"] == CLIENT_ID  # a public client names itself
    (access_token,) = stack.ehr.tokens
    # Every FHIR read went to the EHR with the token it issued to this user.
    paths = {r["path"].split("/")[0] for r in stack.ehr.fhir_requests}
    assert {"Patient", "Condition", "Observation", "Procedure"} <= paths
    assert all(r["token_ok"] for r in stack.ehr.fhir_requests)

    html = page.text
    assert 'data-verdict="resectable"' in html
    assert re.search(r'data-segment="VI" data-involvement="lesion"', html)
    assert re.search(r'data-segment="VII" data-involvement="lesion"', html)
    assert re.search(r'data-segment="II" data-involvement="none"', html)
    assert f"Patient/{PATIENT}" in html
    assert '<p class="banner" id="patient-banner">Ada Testperson, born 1962-05-04, female' in html
    assert 'id="trend-data"' in html and "Child-Pugh" in html
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["cache-control"] == "no-store"

    # The token is in no page, no URL and no log record.
    assert access_token not in html
    assert access_token not in callback and access_token not in done.headers["location"]
    logged = " ".join(str(vars(record)) for record in caplog.records)
    assert "smart launch authorized" in logged
    assert access_token not in logged
    assert token_request["code_verifier"] not in logged


def test_the_draft_mdt_referral_is_valid_fhir_and_carries_the_board_summary(
    stack: Stack,
) -> None:
    from fhir.resources.R4B.servicerequest import ServiceRequest

    with httpx.Client(timeout=30) as client:
        callback, _ = authorize(client, stack)
        client.get(callback)
        page = client.get(stack.base + "/smart/view")
        response = client.get(stack.base + "/smart/view/service-request.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    resource = response.json()
    ServiceRequest.model_validate(resource)
    assert (resource["status"], resource["intent"]) == ("draft", "proposal")
    assert resource["subject"] == {"reference": f"Patient/{PATIENT}"}
    (note,) = resource["note"]
    assert note["text"].startswith(f"Liver MDT referral: Patient/{PATIENT}")
    assert "Segments involved: VI, VII" in note["text"]
    summary = re.search(r'<textarea id="board-summary"[^>]*>(.*?)</textarea>', page.text, re.S)
    assert summary is not None
    assert summary[1].replace("&#39;", "'").replace("&amp;", "&") == note["text"]


def test_a_tab_left_from_an_earlier_launch_never_shows_the_newer_patient(stack: Stack) -> None:
    # Tab 1 launched the app (its URL carries its launch's view id); a second launch in the
    # same browser replaced the session. Reloading tab 1 or downloading its referral must
    # not serve the second launch's record under the first one's page.
    with httpx.Client(timeout=30) as client:
        first, _ = authorize(client, stack)
        first_page = client.get(first).headers["location"]
        second, _ = authorize(client, stack)
        second_page = client.get(second).headers["location"]
        assert first_page != second_page
        stale = client.get(stack.base + first_page)
        stale_json = client.get(
            stack.base + "/smart/view/service-request.json?" + first_page.split("?", 1)[1]
        )
        current = client.get(stack.base + second_page)
    assert stale.status_code == 409 and "earlier launch" in stale.text
    assert stale_json.status_code == 409
    assert current.status_code == 200
    assert "service-request.json?v=" + second_page.split("v=", 1)[1] in current.text


def test_a_confidential_client_authenticates_with_its_secret(ehr: SmartEhr, tmp_path: Path) -> None:
    for stack in start(ehr, tmp_path, smart_client_secret="a-secret-for-the-test"):
        with httpx.Client(timeout=30) as client:
            callback, _ = authorize(client, stack)
            assert client.get(callback).status_code == 303
            assert client.get(stack.base + "/smart/view").status_code == 200
        (token_request,) = ehr.token_requests
        assert "client_id" not in token_request  # it authenticated with HTTP Basic


# --- state and PKCE are enforced ---------------------------------------------------------------


def test_a_wrong_state_is_refused_and_ends_the_launch(stack: Stack) -> None:
    with httpx.Client(timeout=30) as client:
        callback, params = authorize(client, stack)
        last = "y" if params["state"].endswith("x") else "x"
        wrong = client.get(with_query(callback, state=params["state"][:-1] + last))
        assert wrong.status_code == 400
        assert "state does not match" in wrong.text
        # The pending launch is gone: the right state no longer works either.
        again = client.get(callback)
        assert again.status_code == 400
        assert client.get(stack.base + "/smart/view").status_code == 401
    assert stack.ehr.token_requests == []  # the code was never exchanged


def test_a_callback_without_the_launch_cookie_is_refused(stack: Stack) -> None:
    with httpx.Client(timeout=30) as client:
        callback, _ = authorize(client, stack)
    with httpx.Client(timeout=30) as stranger:  # another browser: no session cookie
        refused = stranger.get(callback)
    assert refused.status_code == 400 and "no launch in progress" in refused.text
    assert stack.ehr.token_requests == []


def test_a_replayed_code_is_refused(stack: Stack) -> None:
    with httpx.Client(timeout=30) as client:
        callback, _ = authorize(client, stack)
        assert client.get(callback).status_code == 303
        # The same callback again: the launch was used.
        replay = client.get(callback)
        assert replay.status_code == 400 and "already used" in replay.text
        # A new launch (new state) presenting the old code: the EHR refuses the code.
        launched = client.get(stack.launch_url())
        state = parse_qs(urlsplit(launched.headers["location"]).query)["state"][0]
        old_code = parse_qs(urlsplit(callback).query)["code"][0]
        reused = client.get(f"{stack.base}/smart/callback?code={old_code}&state={state}")
        assert reused.status_code == 401 and "invalid_grant" in reused.text
        # A new launch replaces the session: the failed one leaves no patient shown.
        assert client.get(stack.base + "/smart/view").status_code == 401
    assert len(stack.ehr.tokens) == 1


def test_the_ehr_refuses_a_token_request_without_the_verifier(stack: Stack) -> None:
    with httpx.Client(timeout=30) as client:
        callback, _ = authorize(client, stack)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": stack.base + "/smart/callback",
        "client_id": CLIENT_ID,
    }
    refused = httpx.post(stack.ehr.base + "/token", data=form)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert stack.ehr.tokens == {}


def test_a_server_without_pkce_s256_is_not_sent_the_user(stack: Stack) -> None:
    stack.ehr.offer_s256 = False
    refused = httpx.get(stack.launch_url(), timeout=30)
    assert refused.status_code == 502 and "PKCE S256" in refused.text
    assert "location" not in refused.headers


# --- what is refused before any redirect -----------------------------------------------------


def test_an_iss_that_is_not_configured_is_refused(stack: Stack) -> None:
    refused = httpx.get(stack.launch_url(iss="https://evil.example/fhir"), timeout=30)
    assert refused.status_code == 403 and "not configured" in refused.text
    assert refused.headers["content-security-policy"].startswith("default-src 'none'")


def test_a_launch_without_launch_or_iss_is_refused(stack: Stack) -> None:
    no_launch = httpx.get(f"{stack.base}/smart/launch?iss={stack.ehr.iss}", timeout=30)
    assert no_launch.status_code == 400 and "launch" in no_launch.text
    no_iss = httpx.get(f"{stack.base}/smart/launch?launch=x", timeout=30)
    assert no_iss.status_code == 400 and "iss" in no_iss.text


def test_the_view_needs_a_launch(stack: Stack) -> None:
    page = httpx.get(stack.base + "/smart/view", timeout=30)
    assert page.status_code == 401
    forged = httpx.get(
        stack.base + "/smart/view", cookies={"liver_cds_smart": "abc.def"}, timeout=30
    )
    assert forged.status_code == 401


def test_a_token_that_expires_at_once_is_not_used(stack: Stack) -> None:
    # expires_in 0 is "already expired", not "no expiry".
    stack.ehr.expires_in = 0
    with httpx.Client(timeout=30) as client:
        callback, _ = authorize(client, stack)
        assert client.get(callback).status_code == 303
        page = client.get(stack.base + "/smart/view")
    assert page.status_code == 401
    assert "expired" in page.text
    assert stack.ehr.fhir_requests == []


def test_each_record_read_through_a_launch_is_audited_like_a_hook_call(
    stack: Stack, tmp_path: Path
) -> None:
    import sqlite3
    import time

    with httpx.Client(timeout=30) as client:
        callback, _ = authorize(client, stack)
        page_url = client.get(callback).headers["location"]
        assert client.get(stack.base + page_url).status_code == 200
    view_id = page_url.split("v=", 1)[1]
    database = stack.settings.database_url.removeprefix("sqlite:///")
    rows: list[tuple[str, str, int, str]] = []
    deadline = time.monotonic() + 10
    while not rows and time.monotonic() < deadline:  # written off the request path
        time.sleep(0.1)
        with sqlite3.connect(database) as db:
            rows = db.execute(
                "SELECT hook_instance, service_id, status, verdict FROM liver_cds_audit "
                "WHERE service_id = 'smart-full-view'"
            ).fetchall()
    assert rows == [(f"full-view:{view_id}", "smart-full-view", 200, "resectable")]
