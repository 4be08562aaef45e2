"""``liver-cds evaluate`` and ``liver-cds validate`` from files, through ``service.cli.main``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from service.cli import main

from .builders import AT, PID, colorectal_right, iso


def write(tmp_path: Path, data: Any, name: str = "in.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def hook_request(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"userId": "Practitioner/1", "patientId": PID},
        "prefetch": {
            "patient": resources[0],
            "conditions": {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": r} for r in resources[1:3]],
            },
            "observations": {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": r} for r in resources[3:]],
            },
        },
    }


def test_evaluate_hook_request_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, hook_request(colorectal_right()))
    assert main(["evaluate", str(path), "--at", iso(AT)]) == 0
    out = capsys.readouterr().out
    assert "Verdict: RESECTABLE (rule 21)" in out
    assert "R  resection-local" in out and "o  resection-right-hepatectomy" in out
    assert "Child-Pugh: 5 (A)" in out
    assert "bilirubin: 0.7 mg/dL" in out


def test_evaluate_bundle_json_finds_the_patient(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in colorectal_right()],
    }
    path = write(tmp_path, bundle)
    assert main(["evaluate", str(path), "--at", "2026-06-01T12:00:00", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["verdict"], data["rule"]) == ("resectable", "21")
    assert data["recommended"] == ["resection-local", "mdt-review"]
    assert data["facts"]["evaluated_at"] == "2026-06-01T12:00:00+00:00"
    assert data["scores"]["child_pugh"]["category"] == "A"


def test_evaluate_stale_data_shows_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, hook_request(colorectal_right()))
    assert main(["evaluate", str(path), "--at", "2026-12-01T00:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert "Verdict: INDETERMINATE (rule 5)" in out
    assert "child-pugh (essential, stale since 2026-05-25)" in out


def test_evaluate_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tmp_path / "nope.json")]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    assert main(["evaluate", str(bad)]) == 2
    two = write(
        tmp_path, [{"resourceType": "Patient", "id": "a"}, {"resourceType": "Patient", "id": "b"}]
    )
    assert main(["evaluate", str(two)]) == 2
    assert "--patient" in capsys.readouterr().err
    assert main(["evaluate", str(two), "--at", "soon"]) == 2


def test_validate_valid_and_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, hook_request(colorectal_right()), "good.json")
    assert main(["validate", str(good)]) == 0
    resources = colorectal_right()
    resources[3]["valueQuantity"]["value"] = "lots"
    resources[4]["shoeSize"] = 42
    bad = write(
        tmp_path,
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": r} for r in resources],
        },
        "bad.json",
    )
    capsys.readouterr()
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "entry[3].resource.valueQuantity.value" in out
    assert "entry[4].resource.shoeSize" in out
    assert "lots" not in out


def test_validate_unreadable_file(tmp_path: Path) -> None:
    assert main(["validate", str(tmp_path / "missing.json")]) == 2


def test_evaluate_cards_shows_what_the_clinician_sees(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, hook_request(colorectal_right()))
    assert main(["evaluate", str(path), "--at", iso(AT), "--cards"]) == 0
    out = capsys.readouterr().out
    assert "Card 1 of 1 | INFO | Resectable" in out
    assert "Liver MDT review" in out


def test_evaluate_cards_json_is_the_response_body(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cds_schema import assert_valid_response

    path = write(tmp_path, hook_request(colorectal_right()))
    assert main(["evaluate", str(path), "--at", iso(AT), "--cards", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert_valid_response(body)
    (card,) = body["cards"]
    assert card["source"]["topic"]["code"] == "resectable"
    assert [s["isRecommended"] for s in card["suggestions"]][:2] == [True, True]
