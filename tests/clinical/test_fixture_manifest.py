"""Every fixture patient of ``fixtures/manifest.json`` gives the expected result.

The expectations were derived by hand from the clinical rules by the fixtures' author; list
values are sets (the manifest's schema says order is not significant). Each fixture goes
through the service's one pipeline exactly as a hook call does (tests/pipeline_harness.py),
and the same fixture from ``liver-cds evaluate`` gives the same verdict, options and
data-quality notes. Skips with a reason when the manifest is absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pipeline_harness import FIXTURES, MANIFEST, evaluate_request, evaluated_at, load, manifest

from service.cli import main

ENTRIES = manifest()["patients"]
pytestmark = pytest.mark.skipif(not ENTRIES, reason=f"no fixture manifest at {MANIFEST}")


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["patient_id"] for e in ENTRIES])
def test_fixture_patient(entry: dict[str, Any]) -> None:
    a = evaluate_request(load(entry["file"]), at=evaluated_at()).assessment
    expected = entry["expected"]
    assert (a.verdict, a.rule) == (expected["verdict"], expected["rule"])
    assert set(a.recommended) == set(expected["recommended"])
    assert {o.code for o in a.options if not o.recommended} == set(
        expected["offered_not_recommended"]
    )
    assert {m.fact for m in a.missing if m.essential} == set(expected["missing_essential"])
    cp = a.scores.child_pugh
    assert (cp.category if cp else None) == expected["child_pugh_class"]
    assert (cp.value if cp else None) == expected["child_pugh_points"]


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["patient_id"] for e in ENTRIES])
def test_the_cli_gives_the_same_answer_as_the_hook_path(
    entry: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    at = manifest()["evaluated_at"]
    assert main(["evaluate", str(FIXTURES / entry["file"]), "--at", at, "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    a = evaluate_request(load(entry["file"]), at=evaluated_at()).assessment
    assert (cli["verdict"], cli["rule"]) == (a.verdict, a.rule)
    assert cli["recommended"] == list(a.recommended)
    assert [o["code"] for o in cli["options"]] == list(a.offered)
    assert [(n["resource"], n["problem"]) for n in cli["data_quality"]] == [
        (n.resource, n.problem) for n in a.data_quality
    ]


def test_fixture_files_exist() -> None:
    missing = [e["file"] for e in ENTRIES if not (FIXTURES / e["file"]).is_file()]
    assert not missing, missing
    assert Path(MANIFEST).is_file()
