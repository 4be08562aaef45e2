"""The demo page's routes: the page, its static files, and the fixture patients it offers."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from service.demo import DEFAULT_FIXTURES_DIR, demo_routes, shift_dates
from service.settings import Settings

EVALUATED = "2026-06-01T12:00:00Z"


def write_fixtures(directory: Path, patients: list[dict[str, Any]], files: dict[str, Any]) -> None:
    (directory / "patients").mkdir(parents=True, exist_ok=True)
    manifest = {"evaluated_at": EVALUATED, "patients": patients}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    for name, content in files.items():
        (directory / name).write_text(json.dumps(content))


def hook_request(patient_id: str) -> dict[str, Any]:
    return {
        "hook": "patient-view",
        "hookInstance": "00000000-0000-4000-8000-000000000000",
        "context": {"userId": "Practitioner/example", "patientId": patient_id},
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": patient_id, "birthDate": "1960-02-29"},
            "conditions": None,
            "observations": {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [
                    {
                        "resource": {
                            "resourceType": "Observation",
                            "id": "o1",
                            "effectiveDateTime": "2026-05-20T08:30:00+02:00",
                            "issued": "2026-05-20T09:00:00.123Z",
                            "valueString": "2026-05",
                        }
                    }
                ],
            },
        },
    }


async def client_for(settings: Settings, now: datetime) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=demo_routes(settings, clock=lambda: now))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        yield client


@pytest.fixture
def fixtures(tmp_path: Path) -> Path:
    write_fixtures(
        tmp_path,
        [
            {
                "file": "patients/a-right-lobe.json",
                "patient_id": "a",
                "title": "Right lobe",
                "why": "rule 21",
                "expected": {"verdict": "resectable", "rule": "21"},
            },
            {
                "file": "patients/b-no-liver.json",
                "patient_id": "b",
                "title": "No liver",
                "expected": {"verdict": None, "rule": "0"},
            },
            {"file": "patients/missing.json", "patient_id": "m", "title": "Missing file"},
            {"file": "../outside.json", "patient_id": "o", "title": "Outside"},
            {"file": "bundle.json", "patient_id": "c", "title": "A Bundle"},
        ],
        {
            "patients/a-right-lobe.json": hook_request("a"),
            "patients/b-no-liver.json": hook_request("b"),
            "bundle.json": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [
                    {"resource": {"resourceType": "Patient", "id": "c"}},
                    {"resource": {"resourceType": "Condition", "id": "c1"}},
                    {"resource": {"resourceType": "Observation", "id": "o1"}},
                    {"resource": {"resourceType": "Observation", "id": "o2"}},
                ],
            },
        },
    )
    (tmp_path.parent / "outside.json").write_text(json.dumps(hook_request("o")))
    return tmp_path


@pytest.fixture
async def client(fixtures: Path) -> AsyncIterator[httpx.AsyncClient]:
    now = datetime(2026, 6, 11, 9, 0, tzinfo=UTC)  # ten days after the manifest's date
    async for c in client_for(Settings(fixtures_dir=str(fixtures)), now):
        yield c


async def test_the_page_links_discovery_and_openapi_and_loads_only_its_own_scripts(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert 'href="cds-services"' in html and 'href="openapi.json"' in html
    scripts = re.findall(r"<script\b([^>]*)>", html)
    assert scripts and all('src="demo/static/' in attrs for attrs in scripts)
    assert "http://" not in html and "https://" not in html  # no CDN, nothing foreign
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


@pytest.mark.parametrize(
    ("path", "media"),
    [
        ("/demo/static/demo.js", "javascript"),
        ("/demo/static/demo.css", "text/css"),
    ],
)
async def test_static_files_are_served(client: httpx.AsyncClient, path: str, media: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert media in response.headers["content-type"]


async def test_static_files_do_not_escape_their_directory(client: httpx.AsyncClient) -> None:
    for path in ("/demo/static/../demo.py", "/demo/static/%2e%2e/demo.py"):
        assert (await client.get(path)).status_code == 404


async def test_fixture_list_names_each_openable_patient_with_its_expected_verdict(
    client: httpx.AsyncClient,
) -> None:
    body = (await client.get("/demo/fixtures")).json()
    listed = {p["slug"]: p for p in body["patients"]}
    assert list(listed) == ["a-right-lobe", "b-no-liver", "bundle"]  # missing/outside left out
    assert listed["a-right-lobe"]["verdict"] == "resectable"
    assert listed["a-right-lobe"]["rule"] == "21"
    assert listed["a-right-lobe"]["why"] == "rule 21"
    assert listed["b-no-liver"]["verdict"] is None
    assert body["evaluated_at"] == "2026-06-01"
    assert body["shift_days"] == 10


async def test_fixture_request_gets_a_fresh_hook_instance_each_time(
    client: httpx.AsyncClient,
) -> None:
    first = (await client.get("/demo/fixtures/a-right-lobe")).json()
    second = (await client.get("/demo/fixtures/a-right-lobe")).json()
    assert first["hook"] == "patient-view"
    assert first["context"]["patientId"] == "a"
    assert first["hookInstance"] != second["hookInstance"]
    assert first["hookInstance"] != hook_request("a")["hookInstance"]


async def test_fixture_dates_move_forward_so_the_record_is_as_old_as_on_the_manifest_date(
    client: httpx.AsyncClient,
) -> None:
    request = (await client.get("/demo/fixtures/a-right-lobe")).json()
    observation = request["prefetch"]["observations"]["entry"][0]["resource"]
    assert observation["effectiveDateTime"] == "2026-05-30T08:30:00+02:00"
    assert observation["issued"] == "2026-05-30T09:00:00.123Z"
    assert observation["valueString"] == "2026-05"  # month precision: not a day, left alone
    assert request["prefetch"]["patient"]["birthDate"] == "1960-03-10"


def test_shift_dates_keeps_every_interval() -> None:
    record = {"a": "2024-02-28", "b": ["2024-03-01T00:00:00Z"], "c": "not 2024-02-28", "d": 3}
    shifted = shift_dates(record, 2)
    assert shifted == {
        "a": "2024-03-01",
        "b": ["2024-03-03T00:00:00Z"],
        "c": "not 2024-02-28",
        "d": 3,
    }
    assert shift_dates(record, 0) is record
    a, b = (date.fromisoformat(shifted["a"]), date.fromisoformat(shifted["b"][0][:10]))
    assert (b - a).days == 2  # same distance as 2024-02-28 -> 2024-03-01


async def test_a_bundle_fixture_becomes_a_hook_request_with_the_three_prefetch_keys(
    client: httpx.AsyncClient,
) -> None:
    request = (await client.get("/demo/fixtures/bundle")).json()
    assert request["hook"] == "patient-view"
    assert request["context"]["patientId"] == "c"
    prefetch = request["prefetch"]
    assert prefetch["patient"]["id"] == "c"
    assert [e["resource"]["id"] for e in prefetch["conditions"]["entry"]] == ["c1"]
    assert [e["resource"]["id"] for e in prefetch["observations"]["entry"]] == ["o1", "o2"]


@pytest.mark.parametrize("slug", ["nobody", "missing", "outside"])
async def test_unknown_fixture_is_a_404_with_a_json_error(
    client: httpx.AsyncClient, slug: str
) -> None:
    response = await client.get(f"/demo/fixtures/{slug}")
    assert response.status_code == 404
    assert "error" in response.json()


@pytest.mark.parametrize("path", ["..%2Fmanifest.json", "..%2F..%2Fpyproject.toml"])
async def test_fixture_route_opens_no_file_by_path(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(f"/demo/fixtures/{path}")
    assert response.status_code == 404
    assert "patients" not in response.text and "[project]" not in response.text


async def test_without_a_manifest_the_list_is_empty_and_says_why(tmp_path: Path) -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    async for client in client_for(Settings(fixtures_dir=str(tmp_path)), now):
        body = (await client.get("/demo/fixtures")).json()
        assert body["patients"] == []
        assert body["note"] == "no fixture manifest"


async def test_the_shipped_fixtures_are_all_offered_as_patient_view_requests() -> None:
    """The repository's fixtures/ (the default directory) feed the page."""
    manifest = json.loads((DEFAULT_FIXTURES_DIR / "manifest.json").read_text())
    now = datetime.now(UTC)
    async for client in client_for(Settings(), now):
        listed = (await client.get("/demo/fixtures")).json()["patients"]
        assert [p["patient_id"] for p in listed] == [p["patient_id"] for p in manifest["patients"]]
        for patient in listed:
            request = (await client.get(f"/demo/fixtures/{patient['slug']}")).json()
            assert request["hook"] == "patient-view"
            assert request["context"]["patientId"] == patient["patient_id"]
