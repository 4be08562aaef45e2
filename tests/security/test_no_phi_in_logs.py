"""OperationOutcome texts never reach the logs (issue 15, item 3).

EHRs and FHIR servers write people into ``details.text`` and ``diagnostics``
("Break-the-glass required for <name>, MRN ..."). Three places carry such an outcome into
a hook call: a prefetch value that *is* an OperationOutcome, an outcome entry in a
prefetched Bundle, and a FHIR server answering a fetch with one (as the whole answer, or
as an outcome entry in a search page). Each hook call runs through the real application;
every log record (caplog at DEBUG, extras included) and the service's formatted log
output are scanned for the planted name and MRN. The issue's severity and code are what
the log may say, and do say.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.observability import make_formatter

from .app_helpers import HOOK_PATH, hook_request, running, settings_for

FHIR_BASE = "https://ehr.example.org/fhir/r4"


class Planted:
    """A patient's name and MRN, unique per run, as an EHR writes them into an outcome."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.name = f"Janeplanted Doe{tag}"
        self.mrn = f"MRN-{tag}-0481516"

    def outcome(self, code: str) -> dict[str, Any]:
        return {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": code,
                    "details": {"text": f"Break-the-glass required for {self.name}, {self.mrn}"},
                    "diagnostics": f"patient {self.mrn} restricted",
                }
            ],
        }

    def found_in(self, text: str) -> list[str]:
        return [value for value in (self.name, self.mrn, self.mrn[4:12]) if value in text]


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every record as its attributes (extras included) and as the service formats it."""
    formatter = make_formatter(settings_for(Path("."), log_format="json"))
    return "\n".join(str(vars(r)) + "\n" + formatter.format(r) for r in caplog.records)


def _with_outcomes(p: Planted) -> dict[str, Any]:
    request = hook_request()
    prefetch = request["prefetch"]
    prefetch["patient"] = p.outcome("forbidden")  # the EHR could not prefetch it
    prefetch["conditions"]["entry"].append(
        {"resource": p.outcome("suppressed"), "search": {"mode": "outcome"}}
    )
    return request


async def test_prefetched_outcomes_are_logged_by_code_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = Planted()
    caplog.set_level(logging.DEBUG)
    async with running(settings_for(tmp_path, log_level="debug")) as client:
        answer = await client.post(HOOK_PATH, json=_with_outcomes(p))
    assert answer.status_code == 200, answer.text
    logged = _logged(caplog)
    assert p.found_in(logged) == []
    assert "error forbidden" in logged and "error suppressed" in logged


def _outcome_server(p: Planted, prefetch: dict[str, Any]) -> httpx.MockTransport:
    """Answers the Patient read with an OperationOutcome (200, as some servers do) and the
    Observation search with a page holding an outcome entry."""

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if "/Patient/" in path:
            return httpx.Response(200, json=p.outcome("security"))
        if path.endswith("/Observation"):
            page = dict(prefetch["observations"])
            page["entry"] = [
                *page.get("entry", []),
                {"resource": p.outcome("too-costly"), "search": {"mode": "outcome"}},
            ]
            return httpx.Response(200, json=page)
        return httpx.Response(200, json=prefetch["conditions"])

    return httpx.MockTransport(handler)


async def test_outcomes_from_the_fhir_server_are_logged_by_code_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = Planted()
    request = hook_request()
    prefetch = request.pop("prefetch")
    request["prefetch"] = {"conditions": prefetch["conditions"]}  # the rest is fetched
    request["fhirServer"] = FHIR_BASE
    request["fhirAuthorization"] = {
        "access_token": "at-test",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "liver-cds",
    }
    caplog.set_level(logging.DEBUG)
    settings = settings_for(tmp_path, log_level="debug")
    async with running(settings, http_transport=_outcome_server(p, prefetch)) as client:
        answer = await client.post(HOOK_PATH, json=request)
    assert answer.status_code == 200, answer.text
    logged = _logged(caplog)
    assert p.found_in(logged) == []
    assert "error security" in logged  # the Patient read stopped: "FHIR fetch stopped"
    assert "error too-costly" in logged  # the page's outcome entry: "skipped"
