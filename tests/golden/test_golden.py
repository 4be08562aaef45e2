"""Golden responses: the full pipeline on every fixture patient, compared with a reviewed file.

For each fixture of ``fixtures/manifest.json`` (``patients`` and ``bundles``), the test
unpacks the prefetch the way the service does (``service.fhir.bundle.unpack`` on each key of
the service declaration, in its order), runs ``assess`` at the manifest's evaluation time,
renders the cards with a deterministic uuid factory, and compares the ``{"cards": [...]}``
response with ``tests/golden/<slug>.json`` after normalising uuids. Each response must also
pass the project's CDS Hooks 2.0 response schema, and each proposed ServiceRequest must
validate under fhir.resources R4B.

A golden file is a reviewed artefact: read it as a clinician would before committing it.
Regenerate after a deliberate change with::

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/golden -q
"""

from __future__ import annotations

import difflib
import itertools
import json
import os
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cds_schema import assert_valid_response
from fhir.resources.R4B.servicerequest import ServiceRequest

from service.clinical.engine import assess
from service.clinical.model import DataQualityNote
from service.fhir.bundle import unpack
from service.protocol.declaration import LIVER_METASTASIS_RESECTABILITY
from service.render.cards import RenderContext, render_cards

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
MANIFEST = FIXTURES / "manifest.json"
GOLDEN = Path(__file__).resolve().parent
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")

if not MANIFEST.is_file():
    pytest.skip(
        "fixtures/manifest.json is absent: golden responses need the fixture patients",
        allow_module_level=True,
    )

_manifest: dict[str, Any] = json.loads(MANIFEST.read_text(encoding="utf-8"))
EVALUATED_AT = datetime.fromisoformat(_manifest["evaluated_at"].replace("Z", "+00:00"))
CASES: list[tuple[str, str, str]] = [
    (Path(p["file"]).stem, p["file"], p["patient_id"]) for p in _manifest["patients"]
] + [
    (f"bundle-{Path(b['file']).stem}", b["file"], b["patient_id"])
    for b in _manifest.get("bundles", [])
]


def counter_uuids() -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"00000000-0000-4000-8000-{next(numbers):012d}"


def resources_of(data: dict[str, Any]) -> tuple[list[dict[str, Any]], list[DataQualityNote]]:
    """A hook request's prefetch as the service unpacks it, or a Bundle's entries."""
    resources: list[dict[str, Any]] = []
    notes: list[DataQualityNote] = []
    if "hook" in data:
        prefetch = data.get("prefetch") or {}
        parts = [
            unpack(prefetch[key], f"prefetch '{key}'")
            for key in LIVER_METASTASIS_RESECTABILITY.prefetch
            if key in prefetch
        ]
    else:
        parts = [unpack(data, "Bundle")]
    for part in parts:
        resources += part.resources
        notes += part.notes
    return resources, notes


def response_for(file: str, patient_id: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / file).read_text(encoding="utf-8"))
    resources, notes = resources_of(data)
    assessment = assess(resources, patient_id=patient_id, at=EVALUATED_AT, notes=notes)
    context = RenderContext(patient_id=patient_id, new_uuid=counter_uuids())
    return {"cards": render_cards(assessment, context)}


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
