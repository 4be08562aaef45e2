"""The FHIR fetch path against a real FHIR R4 server (Medplum's router and in-memory
repository, tests/fhir_server/): the service's own prefetch templates, a bearer token,
paging with a small _count, and the CDS Hooks 2.0 rule that fetched data must equal what
the EHR would have prefetched (checked for every fixture patient)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from service import SERVICE_ID
from service.fhir.client import FhirClients
from service.fhir.prefetch import DataUnavailable, PrefetchResult, resolve
from service.protocol.declaration import find_service
from service.settings import Settings

if TYPE_CHECKING:  # the fixture provides it; tests/ layout decides the import name
    from fhir_server.fixture import MedplumServer

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "patients"
# auth="required" as deployed: the caller is told why a fetch failed ("HTTP 401"); with auth
# off every network-level failure reads the same (tests/fhir/test_fetch_oracle.py).
SETTINGS = replace(Settings(), auth="required", fhir_timeout_s=10.0, call_budget_s=10.0)
"""Generous: a shared CI machine must not turn a slow test server into a failure."""
PATIENT = "it-liver-1"
OTHER = "it-other-2"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"


def declared_templates() -> dict[str, str]:
    service = find_service(SERVICE_ID)
    assert service is not None
    return dict(service.prefetch)


def observation(ident: str, patient: str, code: str, value: float, unit: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": ident,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": "2026-05-20T09:00:00Z",
        "valueQuantity": {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
    }


def condition(ident: str, patient: str, code: str, body_site: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": ident,
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed",
                }
            ]
        },
        "code": {"coding": [{"system": SNOMED, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
    }
    if body_site is not None:
        resource["bodySite"] = [{"coding": [{"system": SNOMED, "code": body_site}]}]
    return resource


def synthetic_patients() -> list[dict[str, Any]]:
    """A colorectal liver-metastasis patient, and a second patient whose data must not leak."""
    return [
        {"resourceType": "Patient", "id": PATIENT, "gender": "female", "birthDate": "1958-03-14"},
        {"resourceType": "Patient", "id": OTHER, "gender": "male", "birthDate": "1949-11-02"},
        # secondary malignant neoplasm of liver, right lobe; colon primary
        condition("it-c1", PATIENT, "94381002", body_site="48521005"),
        condition("it-c2", PATIENT, "363406005"),
        condition("it-c3", OTHER, "109841003"),
        observation("it-o1", PATIENT, "1975-2", 0.8, "mg/dL"),  # bilirubin
        observation("it-o2", PATIENT, "1751-7", 4.1, "g/dL"),  # albumin
        observation("it-o3", PATIENT, "6301-6", 1.0, "{INR}"),  # INR
        observation("it-o4", PATIENT, "777-3", 210, "10*9/L"),  # platelets
        observation("it-o5", PATIENT, "2160-0", 0.9, "mg/dL"),  # creatinine
        observation("it-o6", PATIENT, "2039-6", 12.5, "ng/mL"),  # CEA
        observation("it-o7", PATIENT, "1834-1", 3.0, "ng/mL"),  # AFP
        observation("it-o8", PATIENT, "8867-4", 72, "/min"),  # heart rate: not asked for
        observation("it-o9", OTHER, "1975-2", 3.2, "mg/dL"),
    ]


@pytest.fixture(scope="module")
def fhir(medplum_fhir: MedplumServer) -> MedplumServer:
    medplum_fhir.load(synthetic_patients())
    return medplum_fhir


class CountingTransport(httpx.AsyncHTTPTransport):
    """The real network transport, counting the requests it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        return await super().handle_async_request(request)


async def fetch(
    fhir: MedplumServer,
    *,
    patient: str = PATIENT,
    token: str | None = None,
    templates: dict[str, str] | None = None,
    settings: Settings = SETTINGS,
    transport: httpx.AsyncBaseTransport | None = None,
) -> PrefetchResult:
    clients = FhirClients(settings, transport=transport)
    try:
        return await resolve(
            templates=templates or declared_templates(),
            prefetch=None,
            context={"userId": "Practitioner/it-dr", "patientId": patient},
            fhir_server=fhir.base,
            access_token=fhir.token if token is None else token,
            user_id="Practitioner/it-dr",
            clients=clients,
            settings=settings,
            deadline=time.monotonic() + 10,
        )
    finally:
        await clients.aclose()


def ids(result: PrefetchResult) -> list[str]:
    return [f"{r['resourceType']}/{r['id']}" for r in result.resources]


async def test_patient_conditions_and_observations_are_fetched_with_the_bearer_token(
    fhir: MedplumServer,
) -> None:
    result = await fetch(fhir)
    assert result.fetched_keys == ("patient", "conditions", "observations", "procedures")
    assert result.notes == []
    got = ids(result)
    assert got[0] == f"Patient/{PATIENT}"
    assert sorted(got[1:3]) == ["Condition/it-c1", "Condition/it-c2"]
    assert sorted(got[3:]) == [f"Observation/it-o{i}" for i in range(1, 8)]


async def test_paging_with_a_small_count_collects_every_page(fhir: MedplumServer) -> None:
    templates = {key: t + "&_count=2" if "?" in t else t for key, t in declared_templates().items()}
    transport = CountingTransport()
    result = await fetch(fhir, templates=templates, transport=transport)
    assert sorted(ids(result)) == sorted(ids(await fetch(fhir)))
    observation_pages = [u for u in transport.urls if "/Observation?" in u]
    assert len(observation_pages) == 4  # 7 Observations, 2 per page
    assert any("_offset=" in u for u in observation_pages)


async def test_more_pages_than_the_limit_is_a_412(fhir: MedplumServer) -> None:
    templates = {key: t + "&_count=2" if "?" in t else t for key, t in declared_templates().items()}
    with pytest.raises(DataUnavailable, match=r"'observations'.*more than 3 pages"):
        await fetch(fhir, templates=templates, settings=replace(SETTINGS, fhir_max_pages=3))


async def test_a_wrong_token_is_a_412(fhir: MedplumServer) -> None:
    with pytest.raises(DataUnavailable) as caught:
        await fetch(fhir, token="not-the-token")
    assert "HTTP 401" in caught.value.message
    assert "not-the-token" not in caught.value.message


async def test_an_unknown_patient_gives_no_data_and_a_note_on_the_patient_read(
    fhir: MedplumServer,
) -> None:
    result = await fetch(fhir, patient="it-nobody")
    assert result.resources == []
    assert result.fetched_keys == ("conditions", "observations", "procedures")
    assert [n.resource for n in result.notes] == ["FHIR server 'patient'"]
    assert "HTTP 404" in result.notes[0].problem


def _matches_template(resource: dict[str, Any], patient: str, observation_codes: set[str]) -> bool:
    kind = resource.get("resourceType")
    if kind == "Patient":
        return resource.get("id") == patient
    subject = resource.get("subject")
    if not isinstance(subject, dict) or subject.get("reference") != f"Patient/{patient}":
        return False
    if kind in ("Condition", "Procedure"):
        return True
    if kind != "Observation":
        return False
    codings = (resource.get("code") or {}).get("coding") or []
    return any(f"{c.get('system')}|{c.get('code')}" in observation_codes for c in codings)


async def test_every_fixture_patient_fetches_what_its_prefetch_holds(
    medplum_fhir: MedplumServer,
) -> None:
    """CDS Hooks 2.0: prefetched data MUST equal what the service would fetch itself. For
    every fixture patient, the resources its prefetch holds for it (those a FHIR server
    accepts as valid R4) are exactly the ones the declared templates fetch."""
    files = sorted(FIXTURES.glob("*.json"))
    if not files:
        pytest.skip("no fixture patients in fixtures/patients yet")
    rejected = medplum_fhir.load_files(files, strict=False)
    rejected_keys = {(r["resourceType"], r.get("id")) for r, _ in rejected}
    templates = declared_templates()
    observation_codes = set(templates["observations"].split("code=", 1)[1].split(","))
    checked = 0
    for path in files:
        request = json.loads(path.read_text())
        patient = request["context"]["patientId"]
        expected = {
            f"{r['resourceType']}/{r['id']}"
            for r in medplum_fhir.resources_of(request)
            if (r["resourceType"], r.get("id")) not in rejected_keys
            and _matches_template(dict(r), patient, observation_codes)
        }
        result = await fetch(medplum_fhir, patient=patient)
        assert set(ids(result)) == expected, path.name
        checked += 1
    assert checked == len(files)
