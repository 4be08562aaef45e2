"""One pipeline: the hook endpoint, the CLI and a direct call give the same answer.

Issue-level checks of ``service/pipeline.py``: every setting the engine reads changes the
answer over HTTP and from ``liver-cds evaluate`` alike, and the Bundle rules (nested
Bundles, OperationOutcome entries, other patients' entries) are applied once, the same
way, on every path.
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from app_harness import FakeStore, make_settings, running_app
from pipeline_harness import evaluate_request, evaluated_at, load

from service.cli import main
from service.settings import Settings

FIXTURE = "patients/r21-colon-right-icd10.json"
"""A resectable colorectal patient whose labs and imaging are a few weeks old."""


def answer_over_http(request: dict[str, Any], **settings: Any) -> tuple[Any, ...]:
    """(verdict, rule, offered) as the hook endpoint decided it (its audit record)."""

    async def post() -> tuple[Any, ...]:
        store = FakeStore()
        at = evaluated_at()
        async with running_app(make_settings(**settings), store=store, clock=lambda: at) as app:
            response = await app.client.post(
                "/cds-services/liver-metastasis-resectability", json=request
            )
        assert response.status_code == 200, response.text
        [record] = store.audits
        return (record.verdict, record.rule, tuple(record.offered))

    return asyncio.run(post())


def answer_from_cli(
    request: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    **settings: Any,
) -> tuple[Any, ...]:
    for name, value in settings.items():
        monkeypatch.setenv(f"LIVER_CDS_{name.upper()}", str(value))
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request), encoding="utf-8")
    at = evaluated_at().isoformat()
    assert main(["evaluate", str(path), "--at", at, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    return (data["verdict"], data["rule"], tuple(data["offered"]))


def answer_direct(request: dict[str, Any], **settings: Any) -> tuple[Any, ...]:
    a = evaluate_request(request, at=evaluated_at(), settings=Settings(**settings)).assessment
    return (a.verdict, a.rule, a.offered)


ENGINE_SETTINGS = [
    pytest.param("lookback_days", 1, id="lookback-days"),
    pytest.param("imaging_lookback_days", 1, id="imaging-lookback-days"),
]


@pytest.mark.parametrize(("name", "value"), ENGINE_SETTINGS)
def test_each_engine_setting_changes_the_answer_over_http_and_from_the_cli(
    name: str,
    value: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert hasattr(Settings(), name), f"no setting {name}"
    request = load(FIXTURE)
    default = answer_over_http(request)
    assert default[:2] == ("resectable", "21")
    changed = answer_over_http(request, **{name: value})
    assert changed[:2] == ("indeterminate", "5"), "a 1-day window makes the data stale"
    assert answer_from_cli(request, tmp_path, capsys, monkeypatch, **{name: value}) == changed
    assert answer_direct(request, **{name: value}) == changed


def test_a_long_lookback_is_applied_over_http_as_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 18: r05's labs are four months old; with a lookback of 100,000 days the CLI said
    # "resectable" while the hook endpoint said "cannot be assessed".
    request = load("patients/r05-colon-stale-labs.json")
    over_http = answer_over_http(request, lookback_days=100_000)
    from_cli = answer_from_cli(request, tmp_path, capsys, monkeypatch, lookback_days=100_000)
    assert over_http == from_cli == answer_direct(request, lookback_days=100_000)
    assert over_http != answer_over_http(request)


def _with_bundle_quirks(request: dict[str, Any]) -> dict[str, Any]:
    """The fixture with its Conditions nested one Bundle deeper, an OperationOutcome entry
    in its Observations, and another patient's hcc Condition beside its own."""
    request = copy.deepcopy(request)
    prefetch = request["prefetch"]
    conditions = prefetch["conditions"]
    theirs = {
        "resourceType": "Condition",
        "id": "someone-elses-hcc",
        "subject": {"reference": "Patient/someone-else"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C22.0"}]},
    }
    prefetch["conditions"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": conditions}, {"resource": theirs}],
    }
    prefetch["observations"]["entry"].append(
        {
            "search": {"mode": "outcome"},
            "resource": {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "warning", "code": "incomplete"}],
            },
        }
    )
    return request


def test_nested_bundles_outcomes_and_other_patients_get_the_same_answer_on_every_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = load(FIXTURE)
    quirky = _with_bundle_quirks(plain)
    expected = answer_over_http(plain)
    assert expected[:2] == ("resectable", "21")
    assert answer_over_http(quirky) == expected
    assert answer_from_cli(quirky, tmp_path, capsys, monkeypatch) == expected
    assert answer_direct(quirky) == expected
    notes = evaluate_request(quirky, at=evaluated_at()).assessment.data_quality
    problems = " | ".join(n.problem for n in notes)
    assert "a Bundle nested in a Bundle: its entries were read" in problems
    assert "the EHR reported a problem" in problems
