"""A CDS Hooks 2.0 client and a 3.0-style client get the same cards, through the HTTP app.

The 2.0 client fills the declared prefetch templates itself and sends a flat context. The
3.0-style client sends what the ballot allows: a context with nested objects (order-sign's
``draftOrders``, an ``extension``), a ``PractitionerRole`` user, SMART v2 scopes, and no
prefetch, so the service renders its own templates (service/fhir/template.py, which now
also reads 3.0 nested tokens) and reads the FHIR server. Same patient, same cards.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from app_harness import make_settings, running_app

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
FHIR = "https://ehr.example.org/fhir/r4"
TOKEN = "token-for-the-3-0-client"
AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # the fixtures' evaluation time

CASES = [
    ("liver-metastasis-resectability", "patients/r21-colon-right-icd10.json"),
    ("liver-metastasis-resectability", "patients/r12-hcc-caudate-up-to-seven.json"),
    ("liver-directed-order-check", "orders/o-critical-jaundice-tace.json"),
    ("liver-directed-order-check", "orders/o-warning-not-offered.json"),
]


class FhirServer(httpx.AsyncBaseTransport):
    """Serves one patient's data as the prefetch holds it; records every request."""

    def __init__(self, patient_id: str, data: dict[str, Any]) -> None:
        self.patient_id = patient_id
        self.data = data
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = urlsplit(str(request.url))
        path = url.path.removeprefix(urlsplit(FHIR).path + "/")
        self.paths.append(path)
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return httpx.Response(401)
        if path == f"Patient/{self.patient_id}":
            return httpx.Response(200, json=self.data["patient"])
        if parse_qs(url.query).get("patient") != [self.patient_id]:
            return httpx.Response(403)
        key = {"Condition": "conditions", "Observation": "observations", "Procedure": "procedures"}
        found = self.data.get(key.get(path, ""))
        if found is None:
            return httpx.Response(404)
        return httpx.Response(200, json=found)


def as_3_0_client(request: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(request)
    out.pop("prefetch")
    out["context"]["userId"] = "PractitionerRole/role-7"
    out["context"]["extension"] = {"org.example.ehr": {"workflow": "chart-open"}}
    out["extension"] = {"org.example.ehr.client": {"cdsHooksVersion": "3.0.0-ballot"}}
    out["fhirServer"] = FHIR
    out["fhirAuthorization"] = {
        "access_token": TOKEN,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "launch patient/Patient.r patient/Condition.rs patient/Observation.rs "
        "patient/Procedure.rs",
        "subject": "liver-cds",
        "patient": request["context"]["patientId"],
    }
    return out


def comparable(cards: list[dict[str, Any]]) -> Any:
    """Cards without their per-call uuids and without the data-quality lines, which name
    where a problem was found ("prefetch" or "FHIR server ... page 1")."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ("-" if k == "uuid" else strip(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    out = strip(cards)
    for card in out:
        card["detail"] = [
            line for line in card.get("detail", "").splitlines() if "Data quality:" not in line
        ]
    return out


@pytest.mark.parametrize(("service_id", "fixture"), CASES)
async def test_a_2_0_client_and_a_3_0_style_client_get_the_same_cards(
    service_id: str, fixture: str
) -> None:
    request = json.loads((FIXTURES / fixture).read_text())
    patient_id = request["context"]["patientId"]
    server = FhirServer(patient_id, request["prefetch"])
    async with running_app(make_settings(), clock=lambda: AT, http_transport=server) as app:
        url = f"/cds-services/{service_id}"
        two = await app.client.post(url, json=request)
        three = await app.client.post(url, json=as_3_0_client(request))
    assert two.status_code == three.status_code == 200, three.text
    assert server.paths, "the 3.0-style client's data came from the FHIR server"
    assert f"Patient/{patient_id}" in server.paths
    assert comparable(two.json()["cards"]) == comparable(three.json()["cards"])
    if "orders/" in fixture:
        assert two.json()["cards"], "the order fixtures chosen here each raise a card"
