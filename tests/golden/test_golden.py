"""Golden responses: every fixture patient through the HTTP app, compared with a reviewed file.

For each fixture of ``fixtures/manifest.json`` (``patients`` and ``bundles``), the test
posts the hook request to the real application (the production path: body parser, request
check, the one pipeline, cards, response) with its clock at the manifest's evaluation time,
and compares the ``{"cards": [...]}`` response with ``tests/golden/<slug>.json`` after
normalising uuids. A Bundle fixture is turned into a hook request the way
``liver-cds evaluate`` does. Each response must also pass the project's CDS Hooks 2.0
response schema, and each proposed ServiceRequest must validate under fhir.resources R4B.

A golden file is a reviewed artefact: read it as a clinician would before committing it.
Regenerate after a deliberate change with::

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/golden -q
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from app_harness import make_settings, running_app
from cds_schema import assert_valid_response
from fhir.resources.R4B.servicerequest import ServiceRequest
from pipeline_harness import MANIFEST, evaluated_at, load, manifest

from service.commands.evaluate import hook_request_of

GOLDEN = Path(__file__).resolve().parent
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")

if not MANIFEST.is_file():
    pytest.skip(
        "fixtures/manifest.json is absent: golden responses need the fixture patients",
        allow_module_level=True,
    )

_manifest: dict[str, Any] = manifest()
CASES: list[tuple[str, str, str]] = [
    (Path(p["file"]).stem, p["file"], p["patient_id"]) for p in _manifest["patients"]
] + [
    (f"bundle-{Path(b['file']).stem}", b["file"], b["patient_id"])
    for b in _manifest.get("bundles", [])
]


def request_for(file: str, patient_id: str) -> dict[str, Any]:
    data = load(file)
    return hook_request_of(data, None if "hook" in data else patient_id)


async def _post(request: dict[str, Any]) -> dict[str, Any]:
    at = evaluated_at()
    async with running_app(make_settings(), clock=lambda: at) as app:
        response = await app.client.post(f"/cds-services/{app_service_id(request)}", json=request)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def app_service_id(request: dict[str, Any]) -> str:
    from pipeline_harness import service_for

    return service_for(request).id


def response_for(file: str, patient_id: str) -> dict[str, Any]:
    return asyncio.run(_post(request_for(file, patient_id)))


def normalised(response: dict[str, Any]) -> dict[str, Any]:
    """``response`` with every uuid replaced by ``<uuid-N>`` in order of appearance."""
    seen: dict[str, str] = {}

    def name(match: re.Match[str]) -> str:
        return seen.setdefault(match.group(0), f"<uuid-{len(seen) + 1}>")

    result: dict[str, Any] = json.loads(UUID.sub(name, json.dumps(response)))
    return result


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize(("slug", "file", "patient_id"), CASES, ids=[c[0] for c in CASES])
def test_response_matches_the_reviewed_golden_file(slug: str, file: str, patient_id: str) -> None:
    response = response_for(file, patient_id)
    assert_valid_response(response)
    for card in response["cards"]:
        for suggestion in card.get("suggestions", []):
            for action in suggestion["actions"]:
                ServiceRequest.model_validate(action["resource"])

    actual = normalised(response)
    path = GOLDEN / f"{slug}.json"
    if UPDATE:
        path.write_text(dumps(actual), encoding="utf-8")
        return
    assert path.is_file(), f"{path.name} missing: run UPDATE_GOLDEN=1 pytest tests/golden"
    expected = json.loads(path.read_text(encoding="utf-8"))
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                dumps(expected).splitlines(keepends=True),
                dumps(actual).splitlines(keepends=True),
                f"golden/{path.name}",
                "actual",
            )
        )
        pytest.fail(f"{slug}: response differs from the golden file\n{diff}")


def test_every_golden_file_belongs_to_a_fixture() -> None:
    slugs = {case[0] for case in CASES}
    stray = sorted(p.stem for p in GOLDEN.glob("*.json") if p.stem not in slugs)
    assert not stray, f"golden files without a fixture (delete them): {stray}"
