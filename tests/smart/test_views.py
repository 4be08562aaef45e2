"""The full view's pages without a launch: the demo's fixture patients, the security
headers, errors as pages, and the SMART routes off unless configured."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from app_harness import make_settings, running_app
from fhir.resources.R4B.servicerequest import ServiceRequest
from starlette.applications import Starlette

from service.demo import DEFAULT_FIXTURES_DIR, load_manifest
from service.settings import Settings, SettingsError
from service.smart import full_view_routes

MANIFEST = json.loads((DEFAULT_FIXTURES_DIR / "manifest.json").read_text())
SLUGS = [p.slug for p in load_manifest(DEFAULT_FIXTURES_DIR).patients]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=full_view_routes(Settings()))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def expected_verdict(slug: str) -> str | None:
    for entry in MANIFEST["patients"]:
        if Path(entry["file"]).stem == slug:
            verdict: str | None = entry["expected"]["verdict"]
            return verdict
    raise AssertionError(slug)


async def test_every_fixture_patient_has_a_full_view(client: httpx.AsyncClient) -> None:
    """One test over all fixtures (each page takes ~10 ms; a test each would cost more)."""
    assert len(SLUGS) >= 40
    for slug in SLUGS:
        page = await client.get(f"/demo/view/{slug}")
        assert page.status_code == 200, slug
        verdict = re.search(r'id="assessment" data-verdict="([\w-]+)"', page.text)
        assert verdict is not None, slug
        assert verdict[1] == (expected_verdict(slug) or "indeterminate"), slug
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-store"
        # No inline script or style: scripts come from this origin, data in a JSON block.
        for tag in re.findall(r"<script[^>]*>", page.text):
            assert 'src="/smart/static/' in tag or 'type="application/json"' in tag, tag
        assert "style=" not in page.text and "<style" not in page.text, slug


async def test_the_referral_of_a_fixture_patient_is_a_valid_draft(
    client: httpx.AsyncClient,
) -> None:
    slug = next(s for s in SLUGS if expected_verdict(s) == "resectable")
    response = await client.get(f"/demo/view/{slug}/service-request.json")
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment")
    resource = response.json()
    ServiceRequest.model_validate(resource)
    assert (resource["status"], resource["intent"]) == ("draft", "proposal")
    assert resource["code"]["coding"][0]["code"] == "mdt-review"
    assert resource["note"][0]["text"].startswith("Liver MDT referral: Patient/")


async def test_an_unknown_fixture_is_a_404_page(client: httpx.AsyncClient) -> None:
    page = await client.get("/demo/view/no-such-patient")
    assert page.status_code == 404
    assert "unknown fixture patient" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")


async def test_the_pages_assets_are_served_by_the_service(client: httpx.AsyncClient) -> None:
    for path in ("app.js", "app.css", "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css"):
        response = await client.get(f"/smart/static/{path}")
        assert response.status_code == 200, path


async def test_the_smart_routes_exist_only_when_configured() -> None:
    async with running_app(make_settings()) as off:
        for path in ("/smart/launch?iss=x&launch=y", "/smart/callback", "/smart/view"):
            assert (await off.client.get(path)).status_code == 404, path
    on = make_settings(
        smart_client_id="cds",
        smart_allowed_iss=("https://ehr.example.org/fhir",),
        smart_session_key="k" * 32,
    )
    async with running_app(on) as running:
        refused = await running.client.get("/smart/launch?iss=https://other.example/fhir&launch=y")
        assert refused.status_code == 403
        assert (await running.client.get("/smart/view")).status_code == 401


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({}, "LIVER_CDS_SMART_ALLOWED_ISS"),
        ({"smart_allowed_iss": ("http://ehr.example.org/fhir",)}, "https is required"),
        (
            {
                "smart_allowed_iss": ("http://127.0.0.1:8080/fhir",),
                "auth": "required",
                "trust_file": "trust.json",
            },
            "https is required",
        ),
        ({"smart_allowed_iss": ("https://ehr.example.org/fhir?x=1",)}, "query"),
        (
            {"smart_allowed_iss": ("https://e.org/fhir",), "smart_session_key": "short"},
            "at least 32",
        ),
        ({"smart_allowed_iss": ("https://e.org/fhir",), "workers": 2}, "WORKERS=1"),
        (
            {"smart_allowed_iss": ("https://e.org/fhir",), "public_url": "http://cds.example.org"},
            "LIVER_CDS_PUBLIC_URL",
        ),
    ],
)
def test_unusable_smart_settings_stop_the_start_up(changes: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings(smart_client_id="cds", **changes).check()


def test_smart_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "LIVER_CDS_SMART_CLIENT_ID": "cds",
            "LIVER_CDS_SMART_ALLOWED_ISS": "https://a.example/fhir, https://b.example/r4",
        }
    )
    assert settings.smart_enabled
    assert settings.smart_allowed_iss == ("https://a.example/fhir", "https://b.example/r4")
    assert not Settings().smart_enabled


async def test_links_follow_the_path_of_the_public_url() -> None:
    """Behind a proxy that serves the service under a path, the page's links keep it."""
    app = Starlette(routes=full_view_routes(Settings(public_url="https://h.example/liver/")))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        slug = next(s for s in SLUGS if expected_verdict(s) == "resectable")
        page = await client.get(f"/demo/view/{slug}")
    assert 'src="/liver/smart/static/app.js"' in page.text
    assert 'href="/liver/smart/static/app.css"' in page.text
    assert f'href="/liver/demo/view/{slug}/service-request.json"' in page.text


def test_the_banner_names_the_patient_the_record_belongs_to() -> None:
    from service.smart.record import patient_banner

    named = {"resourceType": "Patient", "id": "p", "name": [{"text": "Dr. Ada Lovelace"}]}
    split = {
        "resourceType": "Patient",
        "id": "p",
        "name": [{"given": ["Ada", "B"], "family": "Lovelace"}],
        "birthDate": "1962-05-04",
        "gender": "female",
    }
    other = {"resourceType": "Patient", "id": "q", "name": [{"text": "Someone Else"}]}
    assert patient_banner([other, named], "p") == "Dr. Ada Lovelace"
    assert patient_banner([split], "p") == "Ada B Lovelace, born 1962-05-04, female"
    assert patient_banner([other], "p") == ""
    assert patient_banner([{"resourceType": "Patient", "id": "p", "name": "x"}], "p") == ""


@pytest.mark.parametrize("given", [1.5, True, {"Ada": 1}, "Ada"])
def test_a_malformed_given_name_is_left_out_of_the_banner(given: object) -> None:
    # The EHR's Patient is data, not a contract: HumanName.given must be a list of strings.
    from service.smart.record import patient_banner

    patient = {
        "resourceType": "Patient",
        "id": "p",
        "name": [{"given": given, "family": "Lovelace"}],
        "birthDate": "1962-05-04",
    }
    assert patient_banner([patient], "p") == "Lovelace, born 1962-05-04"
