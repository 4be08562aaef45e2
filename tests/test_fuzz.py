"""Property-based fuzzing of the HTTP layer: no input ever gets a 5xx.

Hypothesis generates hook requests (valid envelopes with wrong types, junk and FHIR-shaped
resources with the codes the rules read, broken dates, absurd numbers and units), raw
JSON values, raw bytes, and feedback bodies, and posts them to the real application
(engine and renderer included). Every answer must be one of the statuses cards.md
allows for bad input (or a 200), with a JSON error body when it is an error. Outbound
HTTP goes to a transport that refuses everything, so a generated fhirServer is never
contacted. A few thousand cases run in total; the app is started once per test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from app_harness import FEEDBACK_URL, HOOK_URL, FakeStore, lifespan, make_settings
from cds_schema import schema_errors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.app import create_app

pytestmark = pytest.mark.slow

FUZZ = settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

HOOK_STATUSES = {200, 400, 412, 413, 415}
FEEDBACK_STATUSES = {200, 400, 413, 415}


class RefusingTransport(httpx.AsyncBaseTransport):
    """Every FHIR server is down: fuzzed fhirServer values are never contacted for real."""

    def __init__(self) -> None:
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        raise httpx.ConnectError("refused by the test transport", request=request)


class App:
    """The application started once, on a loop of its own, driven synchronously per example."""

    def __init__(self) -> None:
        self.runner = asyncio.Runner()
        self.stack = contextlib.AsyncExitStack()
        self.app = create_app(
            make_settings(max_body_bytes=256 * 1024, fhir_timeout_s=0.5, call_budget_s=1.0),
            store=FakeStore(),
            http_transport=RefusingTransport(),
        )

    def start(self) -> None:
        with_state = self.runner.run(self.stack.enter_async_context(lifespan(self.app)))
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=with_state), base_url="http://testserver"
        )

    def stop(self) -> None:
        self.runner.run(self.client.aclose())
        self.runner.run(self.stack.aclose())
        self.runner.close()

    def post(
        self, url: str, content: bytes, content_type: str = "application/json"
    ) -> httpx.Response:
        return self.runner.run(
            self.client.post(url, content=content, headers={"content-type": content_type})
        )


@pytest.fixture(scope="module")
def app() -> Iterator[App]:
    running = App()
    running.start()
    yield running
    running.stop()


def check(response: httpx.Response, allowed: set[int]) -> None:
    assert response.status_code < 500, response.text
    assert response.status_code in allowed, (response.status_code, response.text)
    if response.status_code == 200:
        return
    body = response.json()
    assert set(body) == {"error", "outcome"} and isinstance(body["error"], str) and body["error"]
    assert body["outcome"]["resourceType"] == "OperationOutcome"
    assert "Traceback" not in body["error"]


# --- strategies -----------------------------------------------------------------------------

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
UCUM = "http://unitsofmeasure.org"
FINDINGS = "https://liver-cds.org/fhir/CodeSystem/liver-findings"
# Codes of fhir-mapping.md, so generated resources reach the rules, not only the filters.
LOINC_CODES = [
    "1975-2",
    "14631-6",
    "1751-7",
    "6301-6",
    "34714-6",
    "777-3",
    "2160-0",
    "14682-9",
    "2951-2",
    "1834-1",
    "2039-6",
    "89247-1",
    "89243-0",
    "21889-1",
    "21906-3",
    "33728-7",
]
SNOMED_CODES = [
    "109841003",
    "94381002",
    "128462008",
    "71133005",
    "277956007",
    "277959000",
    "48521005",
    "69842003",
    "10200004",
    "363406005",
    "19943007",
    "34742003",
    "17920008",
    "389026000",
    "13920009",
    "18165001",
    "26283006",
    "255604002",
]
ICD10_CODES = [
    "C22.0",
    "C22.9",
    "C78.7",
    "C7B.02",
    "C79.9",
    "C18.7",
    "C20",
    "C25.4",
    "C50.9",
    "K74.60",
    "K76.6",
    "I81",
    "R18.8",
    "R17",
    "C77.2",
]
UNITS = [
    "mg/dL",
    "umol/L",
    "g/L",
    "g/dL",
    "{INR}",
    "1",
    "10*9/L",
    "10*3/uL",
    "/uL",
    "mmol/L",
    "meq/L",
    "ng/mL",
    "ug/L",
    "cm",
    "mm",
    "%",
    "s",
    "furlong",
    "",
]
DATES = [
    "2025-05-20",
    "2025-05-20T08:00:00Z",
    "2025-05-20T08:00:00",
    "2025-05-20T08:00:00+14:00",
    "2019-01-01",
    "2025-13-45",
    "yesterday",
    "",
    "2025",
    "2025-05",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "2025-05-20T25:61:00Z",
]
PATIENT_IDS = ["pat-1", "other", "pat-1.x", "a" * 64]

text = st.text(max_size=20)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 1e308, -1e308, 1e-300, 0.5, 34.2, 2.0, 3.5, 1.7, 20, 100]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, text)
junk = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually the strategy, sometimes junk of any type in its place."""
    return st.one_of(strategy, strategy, strategy, junk)


coding = st.fixed_dictionaries(
    {},
    optional={
        "system": maybe(st.sampled_from([LOINC, SNOMED, ICD10, FINDINGS, UCUM])),
        "code": maybe(
            st.sampled_from(LOINC_CODES + SNOMED_CODES + ICD10_CODES + ["lesion-count", "diffuse"])
        ),
        "display": text,
    },
)
codeable = maybe(
    st.fixed_dictionaries(
        {}, optional={"coding": maybe(st.lists(maybe(coding), max_size=3)), "text": text}
    )
)
reference = maybe(
    st.fixed_dictionaries(
        {},
        optional={
            "reference": maybe(
                st.sampled_from([f"Patient/{p}" for p in PATIENT_IDS] + ["", "Patient/"])
            )
        },
    )
)
quantity = maybe(
    st.fixed_dictionaries(
        {},
        optional={
            "value": maybe(numbers),
            "unit": text,
            "code": maybe(st.sampled_from(UNITS)),
            "system": maybe(st.just(UCUM)),
            "comparator": st.sampled_from(["<", ">", "<=", ">="]),
        },
    )
)
date = maybe(st.sampled_from(DATES))
status_concept = maybe(
    st.fixed_dictionaries(
        {
            "coding": st.lists(
                st.fixed_dictionaries(
                    {
                        "code": st.sampled_from(
                            [
                                "active",
                                "recurrence",
                                "relapse",
                                "inactive",
                                "resolved",
                                "confirmed",
                                "provisional",
                                "refuted",
                                "entered-in-error",
                            ]
                        )
                    }
                ),
                max_size=2,
            )
        }
    )
)
qualifier_extension = st.fixed_dictionaries(
    {
        "url": st.sampled_from(
            [
                "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-body-location-qualifier",
                "http://hl7.org/fhir/StructureDefinition/condition-related",
            ]
        ),
    },
    optional={"valueCodeableConcept": codeable, "valueReference": reference},
)
body_site = maybe(
    st.fixed_dictionaries(
        {},
        optional={
            "coding": st.lists(coding, max_size=2),
            "extension": maybe(st.lists(qualifier_extension, max_size=2)),
        },
    )
)
observation = st.fixed_dictionaries(
    {"resourceType": st.just("Observation")},
    optional={
        "id": maybe(text),
        "status": maybe(
            st.sampled_from(["final", "amended", "corrected", "preliminary", "entered-in-error"])
        ),
        "code": codeable,
        "subject": reference,
        "effectiveDateTime": date,
        "effectivePeriod": maybe(st.fixed_dictionaries({}, optional={"start": date, "end": date})),
        "issued": date,
        "valueQuantity": quantity,
        "valueInteger": maybe(st.integers(min_value=-10, max_value=200)),
        "valueCodeableConcept": codeable,
        "bodySite": body_site,
        "focus": maybe(st.lists(reference, max_size=2)),
        "component": maybe(
            st.lists(
                st.fixed_dictionaries({}, optional={"code": codeable, "valueQuantity": quantity}),
                max_size=2,
            )
        ),
    },
)
condition = st.fixed_dictionaries(
    {"resourceType": st.just("Condition")},
    optional={
        "id": maybe(text),
        "clinicalStatus": status_concept,
        "verificationStatus": status_concept,
        "code": codeable,
        "bodySite": maybe(st.lists(body_site, max_size=3)),
        "subject": reference,
        "severity": codeable,
        "onsetDateTime": date,
        "recordedDate": date,
        "extension": maybe(st.lists(qualifier_extension, max_size=2)),
    },
)
patient_resource = st.fixed_dictionaries(
    {"resourceType": st.just("Patient")},
    optional={"id": maybe(st.sampled_from(PATIENT_IDS)), "birthDate": date, "gender": text},
)
outcome = st.fixed_dictionaries(
    {"resourceType": st.just("OperationOutcome")},
    optional={
        "issue": maybe(
            st.lists(
                st.fixed_dictionaries({}, optional={"severity": text, "diagnostics": text}),
                max_size=2,
            )
        )
    },
)
resource = st.one_of(
    observation,
    condition,
    patient_resource,
    outcome,
    st.dictionaries(st.sampled_from(["resourceType", "id", "subject"]), junk, max_size=3),
)
entry = maybe(
    st.fixed_dictionaries(
        {},
        optional={
            "resource": maybe(resource),
            "search": maybe(
                st.fixed_dictionaries({"mode": st.sampled_from(["match", "include", "outcome"])})
            ),
            "fullUrl": text,
        },
    )
)
bundle = st.fixed_dictionaries(
    {"resourceType": st.just("Bundle")},
    optional={
        "type": maybe(st.sampled_from(["searchset", "collection"])),
        "entry": maybe(st.lists(entry, max_size=12)),
        "total": maybe(st.integers(min_value=0, max_value=50)),
        "link": maybe(
            st.lists(
                st.fixed_dictionaries({"relation": st.sampled_from(["self", "next"]), "url": text}),
                max_size=2,
            )
        ),
    },
)
prefetch_value = st.one_of(st.none(), resource, bundle, bundle)
prefetch = maybe(
    st.dictionaries(
        st.sampled_from(["patient", "conditions", "observations", "other"]),
        maybe(prefetch_value),
        max_size=4,
    )
)
context = maybe(
    st.fixed_dictionaries(
        {},
        optional={
            "userId": maybe(
                st.sampled_from(
                    ["Practitioner/example", "PractitionerRole/1", "Patient/pat-1", "x"]
                )
            ),
            "patientId": maybe(st.sampled_from([*PATIENT_IDS, "", "a/b", "1&x=2", "é"])),
            "encounterId": maybe(text),
        },
    )
)
authorization = maybe(
    st.fixed_dictionaries(
        {},
        optional={
            "access_token": maybe(text),
            "token_type": maybe(st.sampled_from(["Bearer", "bearer", "MAC"])),
            "expires_in": maybe(numbers),
            "scope": maybe(text),
            "subject": maybe(text),
        },
    )
)
hook_request = st.fixed_dictionaries(
    {},
    optional={
        "hook": maybe(st.sampled_from(["patient-view", "order-sign", ""])),
        "hookInstance": maybe(st.uuids().map(str)),
        "context": context,
        "prefetch": prefetch,
        "fhirServer": maybe(
            st.sampled_from(
                [
                    "https://ehr.example/fhir",
                    "http://127.0.0.1:9/fhir",
                    "http://ehr.example",
                    "ftp://x",
                    "not a url",
                ]
            )
        ),
        "fhirAuthorization": authorization,
        "extension": junk,
    },
)
well_formed_request = st.fixed_dictionaries(
    {
        "hook": st.just("patient-view"),
        "hookInstance": st.uuids().map(str),
        "context": st.fixed_dictionaries(
            {"userId": st.just("Practitioner/example"), "patientId": st.just("pat-1")}
        ),
        "prefetch": st.fixed_dictionaries(
            {
                "patient": st.one_of(st.none(), patient_resource),
                "conditions": st.one_of(st.none(), bundle, condition),
                "observations": st.one_of(st.none(), bundle, observation),
            }
        ),
    }
)


def dumps(value: Any) -> bytes:
    """Standard-library JSON: unlike orjson it writes integers beyond 64 bits (valid JSON)."""
    return json.dumps(value).encode()


# --- properties -------------------------------------------------------------------------------


@FUZZ
@given(hook_request)
def test_generated_hook_requests_never_get_a_5xx(app: App, body: dict[str, Any]) -> None:
    check(app.post(HOOK_URL, dumps(body)), HOOK_STATUSES)


@FUZZ
@given(well_formed_request)
def test_well_formed_requests_with_generated_resources_answer_valid_cards_or_4xx(
    app: App, body: dict[str, Any]
) -> None:
    response = app.post(HOOK_URL, dumps(body))
    check(response, HOOK_STATUSES)
    if response.status_code == 200:
        assert schema_errors(response.json()) == []


@settings(max_examples=300, deadline=None)
@given(junk)
def test_any_json_value_as_body_never_gets_a_5xx(app: App, value: Any) -> None:
    check(app.post(HOOK_URL, dumps(value)), HOOK_STATUSES)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=200),
    st.sampled_from(["application/json", "text/plain", "application/json; charset=utf-16"]),
)
def test_arbitrary_bytes_never_get_a_5xx(app: App, raw: bytes, content_type: str) -> None:
    check(app.post(HOOK_URL, raw, content_type), HOOK_STATUSES)


feedback_entry = maybe(
    st.fixed_dictionaries(
        {},
        optional={
            "card": maybe(st.uuids().map(str)),
            "outcome": maybe(st.sampled_from(["accepted", "overridden", "ignored"])),
            "outcomeTimestamp": date,
            "acceptedSuggestions": maybe(
                st.lists(
                    maybe(st.fixed_dictionaries({"id": maybe(st.uuids().map(str))})), max_size=3
                )
            ),
            "overrideReason": maybe(
                st.fixed_dictionaries(
                    {}, optional={"reason": maybe(coding), "userComment": maybe(text)}
                )
            ),
            "overrideReasons": maybe(st.lists(maybe(coding), max_size=2)),
        },
    )
)


@settings(max_examples=400, deadline=None)
@given(maybe(st.fixed_dictionaries({"feedback": maybe(st.lists(feedback_entry, max_size=4))})))
def test_generated_feedback_never_gets_a_5xx(app: App, body: Any) -> None:
    check(app.post(FEEDBACK_URL, dumps(body)), FEEDBACK_STATUSES)
