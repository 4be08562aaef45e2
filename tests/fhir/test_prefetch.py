"""Obtaining the data of a hook call: prefetch unpacking, fetching missing keys, paging,
limits (fhir-mapping.md §1 and §7, CDS Hooks 2.0 "Prefetch"). The FHIR server is an
``httpx.MockTransport``; tests/fhir/test_faults.py drives a real socket server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest

from service.fhir.client import FhirClients
from service.fhir.prefetch import (
    DataUnavailable,
    PrefetchResult,
    PrefetchShapeError,
    resolve,
)
from service.settings import Settings

BASE = "https://ehr.example/fhir/R4"
TOKEN = "tok-Zx81-secret"
PATIENT_ID = "pat-123"
CONTEXT: dict[str, Any] = {"userId": "Practitioner/dr-1", "patientId": PATIENT_ID}
TEMPLATES = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}&code=http://loinc.org|1975-2",
}
SETTINGS = Settings(auth="required")  # failures are told in detail (see caller_detail)

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def patient() -> dict[str, Any]:
    return {"resourceType": "Patient", "id": PATIENT_ID}


def condition(i: int) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": f"c{i}",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
    }


def observation(i: int) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": f"o{i}", "status": "final"}


def bundle(
    *resources: Any, next_url: str | None = None, entries: list[Any] | None = None
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": entries if entries is not None else [{"resource": r} for r in resources],
    }
    if next_url is not None:
        value["link"] = [
            {"relation": "self", "url": "ignored"},
            {"relation": "next", "url": next_url},
        ]
    return value


class FakeFhir:
    """A FHIR server behind MockTransport: answers by resource type, records requests."""

    def __init__(self, routes: dict[str, Any] | None = None) -> None:
        self.routes = routes or {}
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/fhir/R4/")
        kind = path.split("/")[0]
        answer = self.routes.get(str(request.url), self.routes.get(kind))
        if callable(answer):
            answer = await answer(request)
        if isinstance(answer, httpx.Response):
            return answer
        if answer is None:
            return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": []})
        return httpx.Response(200, json=answer)

    def urls(self) -> list[str]:
        return [str(r.url) for r in self.requests]


async def call(
    prefetch: dict[str, Any] | None,
    server: FakeFhir | None = None,
    *,
    fhir_server: str | None = BASE,
    token: str | None = TOKEN,
    settings: Settings = SETTINGS,
    context: dict[str, Any] | None = None,
    templates: dict[str, str] | None = None,
    budget_s: float = 3.0,
) -> PrefetchResult:
    fake = server if server is not None else FakeFhir()
    clients = FhirClients(settings, transport=httpx.MockTransport(fake))
    ctx = CONTEXT if context is None else context
    try:
        return await resolve(
            templates=TEMPLATES if templates is None else templates,
            prefetch=prefetch,
            context=ctx,
            fhir_server=fhir_server,
            access_token=token,
            user_id=ctx.get("userId"),
            clients=clients,
            settings=settings,
            deadline=time.monotonic() + budget_s,
        )
    finally:
        await clients.aclose()


def full_prefetch(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "patient": patient(),
        "conditions": bundle(condition(1)),
        "observations": bundle(observation(1)),
    }
    value.update(overrides)
    return value


def ids(result: PrefetchResult) -> list[str]:
    return [f"{r['resourceType']}/{r.get('id')}" for r in result.resources]


# --- prefetch shapes -----------------------------------------------------------------------


async def test_a_complete_prefetch_is_used_as_given_without_any_request() -> None:
    server = FakeFhir()
    result = await call(full_prefetch(), server)
    assert ids(result) == ["Patient/pat-123", "Condition/c1", "Observation/o1"]
    assert result.notes == []
    assert result.fetched_keys == ()
    assert server.requests == []


async def test_resources_come_in_template_order_whatever_the_prefetch_order() -> None:
    prefetch = {
        "observations": bundle(observation(1), observation(2)),
        "conditions": condition(1),
        "patient": patient(),
    }
    result = await call(prefetch)
    assert ids(result) == ["Patient/pat-123", "Condition/c1", "Observation/o1", "Observation/o2"]


async def test_null_means_no_data_not_missing() -> None:
    server = FakeFhir()
    result = await call(full_prefetch(conditions=None, observations=None, patient=None), server)
    assert result.resources == []
    assert result.notes == []
    assert server.requests == []


@pytest.mark.parametrize(
    "empty",
    [
        {"resourceType": "Bundle", "type": "searchset"},
        {"resourceType": "Bundle", "type": "searchset", "entry": []},
        {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": None},
    ],
)
async def test_an_empty_bundle_is_no_data(empty: dict[str, Any]) -> None:
    result = await call(full_prefetch(conditions=empty))
    assert ids(result) == ["Patient/pat-123", "Observation/o1"]
    assert result.notes == []


async def test_keys_the_service_did_not_ask_for_are_ignored() -> None:
    result = await call(full_prefetch(medications=[1, 2], user={"resourceType": "Practitioner"}))
    assert ids(result) == ["Patient/pat-123", "Condition/c1", "Observation/o1"]


async def test_outcome_entries_and_operation_outcomes_are_skipped_with_a_note(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "warning",
                "code": "too-costly",
                "details": {"text": "Results limited to 1000"},
                "diagnostics": "SELECT * FROM obs WHERE patient='pat-123'",
            }
        ],
    }
    observations = bundle(
        entries=[
            {"resource": observation(1), "search": {"mode": "match"}},
            {"resource": outcome, "search": {"mode": "outcome"}},
            {"resource": outcome},
            {"resource": observation(2), "search": {"mode": "outcome"}},
            {"resource": observation(3), "search": {"mode": "include"}},
        ]
    )
    with caplog.at_level(logging.DEBUG, logger="liver_cds"):
        result = await call(full_prefetch(observations=observations))
    assert ids(result)[2:] == ["Observation/o1", "Observation/o3"]
    places = [n.resource for n in result.notes]
    assert places == [
        "prefetch 'observations' Bundle entry 1",
        "prefetch 'observations' Bundle entry 2",
        "prefetch 'observations' Bundle entry 3",
    ]
    assert "warning too-costly: Results limited to 1000" in result.notes[0].problem
    logged = " ".join(str(vars(r)) for r in caplog.records)
    # The log gets the severity and code only: details.text can name the patient.
    assert "warning too-costly" in logged
    assert "Results limited to 1000" not in logged
    assert "SELECT" not in logged and "SELECT" not in str(result.notes)


OUTCOME = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}


async def test_an_operation_outcome_for_an_essential_key_without_fhir_server_is_a_412() -> None:
    # The EHR says it could not prefetch the Conditions: that is not "no Conditions".
    with pytest.raises(DataUnavailable) as caught:
        await call(full_prefetch(conditions=OUTCOME), fhir_server=None)
    assert "'conditions' is an OperationOutcome" in caught.value.message
    assert "error timeout" in caught.value.message


async def test_an_operation_outcome_for_an_essential_key_is_fetched_from_the_fhir_server() -> None:
    server = FakeFhir({"Condition": bundle(condition(7))})
    result = await call(full_prefetch(conditions=OUTCOME), server)
    assert ids(result) == ["Patient/pat-123", "Condition/c7", "Observation/o1"]
    assert result.fetched_keys == ("conditions",)
    assert [r.url.path for r in server.requests] == ["/fhir/R4/Condition"]


async def test_an_operation_outcome_for_the_patient_is_only_a_note() -> None:
    result = await call(full_prefetch(patient=OUTCOME), fhir_server=None)
    assert ids(result) == ["Condition/c1", "Observation/o1"]
    assert result.notes[0].resource == "prefetch 'patient'"
    assert "error timeout" in result.notes[0].problem


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("conditions", patient(), "must be a searchset Bundle of Condition"),
        ("observations", condition(1), "must be a searchset Bundle of Observation"),
        ("patient", observation(1), "must be a Patient resource"),
        ("conditions", {"resourceType": "Bundle", "type": "transaction"}, "'transaction'"),
        ("observations", {"resourceType": "Bundle", "type": "batch", "entry": []}, "'batch'"),
    ],
)
async def test_a_value_that_cannot_answer_its_query_is_a_400(
    key: str, value: dict[str, Any], problem: str
) -> None:
    server = FakeFhir()
    with pytest.raises(PrefetchShapeError) as caught:
        await call(full_prefetch(**{key: value}), server)
    assert f"'{key}'" in caught.value.message
    assert problem in caught.value.message
    assert server.requests == []


async def test_a_single_resource_of_the_searched_type_is_accepted() -> None:
    result = await call(full_prefetch(conditions=condition(2)), fhir_server=None)
    assert ids(result) == ["Patient/pat-123", "Condition/c2", "Observation/o1"]


@pytest.mark.parametrize(
    ("junk", "problem"),
    [
        (7, "a number"),
        ("Observation/o9", "a string"),
        (None, "NoneType"),
        ([], "a list"),
        ({}, "no resource"),
        ({"fullUrl": "urn:uuid:1", "resource": None}, "no resource"),
        ({"resource": "Observation"}, "a string"),
        ({"resource": {"id": "o9"}}, "no resourceType"),
        ({"resource": {"resourceType": 5}}, "no resourceType"),
        ({"resource": {"resourceType": ""}}, "no resourceType"),
        ({"resource": {"resourceType": "Bundle", "entry": []}}, "nested"),
    ],
)
async def test_junk_entries_are_skipped_and_named_by_index(junk: Any, problem: str) -> None:
    observations = bundle(
        entries=[{"resource": observation(1)}, junk, {"resource": observation(2)}]
    )
    result = await call(full_prefetch(observations=observations))
    assert ids(result)[2:] == ["Observation/o1", "Observation/o2"]
    assert len(result.notes) == 1
    assert result.notes[0].resource == "prefetch 'observations' Bundle entry 1"
    assert problem in result.notes[0].problem


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ([observation(1)], "not a list"),
        ("Observation/o1", "not a string"),
        (3, "not a number"),
        (True, "not a boolean"),
        ({"id": "o1"}, "without a resourceType"),
        ({"resourceType": ""}, "without a resourceType"),
        ({"resourceType": 7}, "without a resourceType"),
        ({"resourceType": "Bundle", "entry": {"resource": observation(1)}}, "entry is dict"),
        ({"resourceType": "Bundle", "entry": "none"}, "entry is a string"),
    ],
)
async def test_a_value_of_the_wrong_shape_is_a_400_naming_the_key(value: Any, problem: str) -> None:
    server = FakeFhir()
    with pytest.raises(PrefetchShapeError) as caught:
        await call(full_prefetch(observations=value), server)
    assert "'observations'" in caught.value.message
    assert problem in caught.value.message
    assert server.requests == []


async def test_prefetch_that_is_not_an_object_is_a_400() -> None:
    with pytest.raises(PrefetchShapeError, match="prefetch must be an object"):
        await call([patient()])  # type: ignore[arg-type]


async def test_more_prefetched_resources_than_the_limit_is_a_400() -> None:
    settings = replace(SETTINGS, max_resources=3)
    with pytest.raises(PrefetchShapeError, match="more than the limit of 3"):
        await call(
            full_prefetch(observations=bundle(*(observation(i) for i in range(3)))),
            settings=settings,
        )


# --- missing keys ------------------------------------------------------------------------------


async def test_missing_essential_keys_without_fhir_server_are_a_412_naming_them() -> None:
    server = FakeFhir()
    with pytest.raises(DataUnavailable) as caught:
        await call({"patient": patient()}, server, fhir_server=None)
    message = caught.value.message
    assert "'conditions'" in message and "'observations'" in message
    assert "fhirServer" in message
    assert server.requests == []


async def test_no_prefetch_at_all_and_no_fhir_server_is_a_412() -> None:
    with pytest.raises(DataUnavailable):
        await call(None, fhir_server=None)


async def test_a_missing_patient_without_fhir_server_is_only_a_note() -> None:
    prefetch = full_prefetch()
    del prefetch["patient"]
    result = await call(prefetch, fhir_server=None)
    assert ids(result) == ["Condition/c1", "Observation/o1"]
    assert [n.resource for n in result.notes] == ["prefetch 'patient'"]


async def test_missing_keys_are_fetched_with_the_rendered_template_and_bearer_token() -> None:
    server = FakeFhir(
        {
            "Patient": patient(),
            "Condition": bundle(condition(1)),
            "Observation": bundle(observation(1)),
        }
    )
    result = await call({}, server)
    assert ids(result) == ["Patient/pat-123", "Condition/c1", "Observation/o1"]
    assert result.fetched_keys == ("patient", "conditions", "observations")
    assert sorted(server.urls()) == sorted(
        [
            f"{BASE}/Patient/{PATIENT_ID}",
            f"{BASE}/Condition?patient={PATIENT_ID}",
            f"{BASE}/Observation?patient={PATIENT_ID}&code=http://loinc.org|1975-2",
        ]
    )
    for request in server.requests:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["accept"] == "application/fhir+json"
        assert request.method == "GET"


async def test_only_the_missing_keys_are_fetched() -> None:
    server = FakeFhir({"Observation": bundle(observation(7))})
    result = await call({"patient": patient(), "conditions": None}, server)
    assert ids(result) == ["Patient/pat-123", "Observation/o7"]
    assert result.fetched_keys == ("observations",)
    assert len(server.requests) == 1


async def test_without_an_access_token_no_authorization_header_is_sent() -> None:
    server = FakeFhir({"Condition": bundle(), "Observation": bundle(), "Patient": patient()})
    await call({}, server, token=None)
    assert server.requests
    assert all("authorization" not in r.headers for r in server.requests)


async def test_token_values_are_url_encoded_in_the_fetched_url() -> None:
    server = FakeFhir({"Condition": bundle(), "Observation": bundle(), "Patient": patient()})
    await call({}, server, context={**CONTEXT, "patientId": "1&_include=*"})
    assert f"{BASE}/Condition?patient=1%26_include%3D%2A" in server.urls()
    assert all("_include=" not in u for u in server.urls())


async def test_a_trailing_slash_on_fhir_server_does_not_double_the_slash() -> None:
    server = FakeFhir({"Condition": bundle(), "Observation": bundle()})
    await call({"patient": None}, server, fhir_server=BASE + "/")
    assert all(u.startswith(BASE + "/") and "R4//" not in u for u in server.urls())


async def test_an_essential_template_that_cannot_be_filled_is_a_412_without_a_request() -> None:
    server = FakeFhir()
    with pytest.raises(DataUnavailable, match=r"'conditions'.*context.patientId is missing"):
        await call({"patient": None}, server, context={"userId": "Practitioner/1"})
    assert server.requests == []


async def test_an_optional_template_that_cannot_be_filled_is_a_note() -> None:
    templates = {**TEMPLATES, "patient": "Patient/{{userPatientId}}"}
    server = FakeFhir({"Condition": bundle(condition(1)), "Observation": bundle()})
    result = await call({}, server, templates=templates)
    assert ids(result) == ["Condition/c1"]
    assert result.notes[0].resource == "prefetch 'patient'"
    assert "userPatientId" in result.notes[0].problem
    assert not any("Patient" in u for u in server.urls())


async def test_missing_keys_are_fetched_concurrently() -> None:
    both_arrived = asyncio.Event()
    arrived: list[str] = []

    async def wait_for_both(request: httpx.Request) -> httpx.Response:
        arrived.append(request.url.path)
        if len(arrived) == 2:
            both_arrived.set()
        # Sequential fetching would never see the second request while the first waits.
        await asyncio.wait_for(both_arrived.wait(), timeout=2)
        return httpx.Response(200, json=bundle())

    server = FakeFhir({"Condition": wait_for_both, "Observation": wait_for_both})
    result = await call({"patient": None}, server)
    assert result.fetched_keys == ("conditions", "observations")


async def test_an_essential_failure_is_a_412_and_cancels_the_other_fetches() -> None:
    cancelled = asyncio.Event()

    async def never(request: httpx.Request) -> httpx.Response:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("not reached")

    server = FakeFhir(
        {
            "Condition": httpx.Response(500, json={"resourceType": "OperationOutcome"}),
            "Observation": never,
        }
    )
    with pytest.raises(DataUnavailable) as caught:
        await call({"patient": None}, server, budget_s=20)
    assert "'conditions'" in caught.value.message and "HTTP 500" in caught.value.message
    assert cancelled.is_set()


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (httpx.Response(404, json={"resourceType": "OperationOutcome"}), "HTTP 404"),
        (httpx.Response(401, json={"resourceType": "OperationOutcome"}), "HTTP 401"),
        (httpx.Response(200, json={"resourceType": "Basic", "id": "b"}), "answered with a Basic"),
        (httpx.Response(200, content=b"<html>"), "not JSON"),
    ],
)
async def test_a_failed_patient_fetch_is_a_note_and_the_call_goes_on(
    answer: httpx.Response, problem: str
) -> None:
    server = FakeFhir(
        {
            "Patient": answer,
            "Condition": bundle(condition(1)),
            "Observation": bundle(observation(1)),
        }
    )
    result = await call({}, server)
    assert ids(result) == ["Condition/c1", "Observation/o1"]
    assert result.fetched_keys == ("conditions", "observations")
    assert result.notes[-1].resource == "FHIR server 'patient'"
    assert problem in result.notes[-1].problem


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({"resourceType": "Observation", "id": "o1"}, "a search answered with a Observation"),
        (
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "too-costly"}],
            },
            "OperationOutcome (error too-costly)",
        ),
        ([bundle()], "not a FHIR resource"),
        ({"resourceType": "Bundle", "entry": {}}, "entry is dict"),
    ],
)
async def test_a_search_that_does_not_answer_with_a_bundle_is_a_412(
    answer: Any, problem: str
) -> None:
    server = FakeFhir({"Observation": answer, "Condition": bundle()})
    with pytest.raises(DataUnavailable) as caught:
        await call({"patient": None}, server)
    assert "'observations'" in caught.value.message and problem in caught.value.message


async def test_junk_entries_in_fetched_pages_become_notes() -> None:
    server = FakeFhir(
        {
            "Condition": bundle(entries=[{"resource": condition(1)}, {"resource": {"id": 2}}]),
            "Observation": bundle(),
        }
    )
    result = await call({"patient": None}, server)
    assert ids(result) == ["Condition/c1"]
    assert result.notes[0].resource == "FHIR server 'conditions' page 1 Bundle entry 1"


# --- paging --------------------------------------------------------------------------------------


FIRST_PAGE = {
    "Condition": f"{BASE}/Condition?patient={PATIENT_ID}",
    "Observation": f"{BASE}/Observation?patient={PATIENT_ID}&code=http://loinc.org|1975-2",
}


def paged(kind: str, pages: int, make: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
    """Routes for ``pages`` pages of ``kind``: page n links to page n+1 (absolute URLs)."""
    routes: dict[str, Any] = {}
    first = FIRST_PAGE[kind]
    for n in range(1, pages + 1):
        url = first if n == 1 else f"{BASE}/{kind}?patient={PATIENT_ID}&page={n}"
        nxt = f"{BASE}/{kind}?patient={PATIENT_ID}&page={n + 1}" if n < pages else None
        routes[url] = bundle(make(n), next_url=nxt)
    return routes


async def test_next_links_are_followed_to_the_last_page() -> None:
    server = FakeFhir({**paged("Condition", 4, condition), "Observation": bundle()})
    result = await call({"patient": None}, server)
    assert ids(result) == ["Condition/c1", "Condition/c2", "Condition/c3", "Condition/c4"]
    assert len(server.requests) == 5
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in server.requests)


async def test_relative_next_links_are_resolved_against_the_page() -> None:
    routes = {
        f"{BASE}/Condition?patient={PATIENT_ID}": bundle(condition(1), next_url="Condition?page=2"),
        f"{BASE}/Condition?page=2": bundle(condition(2)),
        "Observation": bundle(),
    }
    result = await call({"patient": None}, FakeFhir(routes))
    assert ids(result) == ["Condition/c1", "Condition/c2"]


async def test_exactly_max_pages_is_complete() -> None:
    settings = replace(SETTINGS, fhir_max_pages=3)
    server = FakeFhir({**paged("Observation", 3, observation), "Condition": bundle()})
    result = await call({"patient": None}, server, settings=settings)
    assert result.fetched_keys == ("conditions", "observations")


async def test_more_pages_than_the_limit_is_a_412() -> None:
    settings = replace(SETTINGS, fhir_max_pages=3)
    server = FakeFhir({**paged("Observation", 4, observation), "Condition": bundle()})
    with pytest.raises(DataUnavailable, match=r"'observations'.*more than 3 pages"):
        await call({"patient": None}, server, settings=settings)
    observation_requests = [u for u in server.urls() if "Observation" in u]
    assert len(observation_requests) == 3


async def test_next_links_that_loop_are_detected() -> None:
    first = f"{BASE}/Condition?patient={PATIENT_ID}"
    second = f"{BASE}/Condition?patient={PATIENT_ID}&page=2"
    server = FakeFhir(
        {
            first: bundle(condition(1), next_url=second),
            second: bundle(condition(2), next_url=first),
            "Observation": bundle(),
        }
    )
    with pytest.raises(DataUnavailable, match=r"'conditions'.*next links repeat"):
        await call({"patient": None}, server)
    assert server.urls().count(first) == 1


@pytest.mark.parametrize(
    "elsewhere",
    [
        "https://attacker.example/fhir/R4/Condition?page=2",
        "http://ehr.example/fhir/R4/Condition?page=2",
        "https://ehr.example:8443/fhir/R4/Condition?page=2",
        "https://ehr.example/other/Condition?page=2",
        "https://ehr.example/fhir/R4x/Condition?page=2",
    ],
)
async def test_next_links_off_the_fhir_server_are_not_followed(elsewhere: str) -> None:
    server = FakeFhir(
        {
            f"{BASE}/Condition?patient={PATIENT_ID}": bundle(condition(1), next_url=elsewhere),
            "Observation": bundle(),
        }
    )
    with pytest.raises(DataUnavailable, match="outside fhirServer"):
        await call({"patient": None}, server)
    assert elsewhere not in server.urls()


async def test_the_resource_limit_counts_prefetch_and_every_fetched_page() -> None:
    settings = replace(SETTINGS, max_resources=4)
    server = FakeFhir({**paged("Observation", 3, observation), "Condition": bundle()})
    with pytest.raises(DataUnavailable, match="more than 4 resources"):
        await call(
            {"patient": patient(), "conditions": bundle(condition(1), condition(2))},
            server,
            settings=settings,
        )


async def test_an_id_with_encoded_dot_segments_cannot_leave_the_fhir_server() -> None:
    server = FakeFhir({"Observation": bundle()})
    with pytest.raises(DataUnavailable, match="would leave fhirServer"):
        await call(
            {"patient": None},
            server,
            context={**CONTEXT, "patientId": "../../x"},
            templates={**TEMPLATES, "conditions": "Condition/{{context.patientId}}/_history"},
        )
    assert not any("Condition" in u for u in server.urls())


async def test_a_prefetched_first_page_is_completed_from_the_fhir_server() -> None:
    routes = {f"{BASE}/Observation?page=2": bundle(observation(2))}
    server = FakeFhir(routes)
    prefetch = full_prefetch(
        observations=bundle(observation(1), next_url=f"{BASE}/Observation?page=2")
    )
    result = await call(prefetch, server)
    assert ids(result)[2:] == ["Observation/o1", "Observation/o2"]
    assert result.fetched_keys == ("observations",)
    assert server.urls() == [f"{BASE}/Observation?page=2"]


async def test_a_prefetched_first_page_without_fhir_server_is_a_412() -> None:
    prefetch = full_prefetch(
        observations=bundle(observation(1), next_url=f"{BASE}/Observation?page=2")
    )
    with pytest.raises(DataUnavailable, match="'observations' is only the first page"):
        await call(prefetch, fhir_server=None)


# --- rule set v2: the optional procedures key and which keys are complete -------------------------

V2_TEMPLATES = {**TEMPLATES, "procedures": "Procedure?patient={{context.patientId}}"}


def procedure(i: int) -> dict[str, Any]:
    return {"resourceType": "Procedure", "id": f"p{i}", "status": "completed"}


async def test_procedures_sent_are_complete() -> None:
    result = await call(full_prefetch(procedures=bundle(procedure(1))), templates=V2_TEMPLATES)
    assert ids(result)[-1] == "Procedure/p1"
    assert result.complete("procedures") and result.complete("conditions")
    nothing = await call(full_prefetch(procedures=None), templates=V2_TEMPLATES)
    assert nothing.complete("procedures")  # null: "this patient has no Procedures"


async def test_procedures_missing_without_fhir_server_are_only_a_note_and_incomplete() -> None:
    result = await call(full_prefetch(), fhir_server=None, templates=V2_TEMPLATES)
    assert ids(result) == ["Patient/pat-123", "Condition/c1", "Observation/o1"]
    assert [n.resource for n in result.notes] == ["prefetch 'procedures'"]
    assert not result.complete("procedures") and result.complete("observations")


async def test_procedures_missing_are_fetched_from_the_fhir_server() -> None:
    server = FakeFhir({"Procedure": bundle(procedure(3))})
    result = await call(full_prefetch(), server, templates=V2_TEMPLATES)
    assert ids(result)[-1] == "Procedure/p3"
    assert server.urls() == [f"{BASE}/Procedure?patient={PATIENT_ID}"]
    assert result.fetched_keys == ("procedures",) and result.complete("procedures")


async def test_a_failed_procedures_fetch_is_a_note_and_the_call_goes_on_unchecked() -> None:
    server = FakeFhir({"Procedure": httpx.Response(500)})
    result = await call(full_prefetch(), server, templates=V2_TEMPLATES)
    assert ids(result) == ["Patient/pat-123", "Condition/c1", "Observation/o1"]
    assert result.notes[-1].resource == "FHIR server 'procedures'"
    assert not result.complete("procedures")


async def test_a_first_page_only_is_not_complete() -> None:
    first_page = bundle(procedure(1), next_url=f"{BASE}/Procedure?page=2")
    result = await call(
        full_prefetch(procedures=first_page), fhir_server=None, templates=V2_TEMPLATES
    )
    assert not result.complete("procedures")


# --- URLs httpx cannot request: the caller's mistake, a 400 (never an unexpected 500) ----------


@pytest.mark.parametrize("link", ["http://[::1", "//[zz]/Observation", "\x00://x"])
async def test_a_prefetched_next_link_that_is_not_a_url_is_a_400_naming_the_key(link: str) -> None:
    server = FakeFhir()
    prefetch = full_prefetch(observations=bundle(observation(1), next_url=link))
    with pytest.raises(PrefetchShapeError, match="prefetch 'observations' has a next link"):
        await call(prefetch, server)
    assert server.urls() == []


@pytest.mark.parametrize("fhir_server", ["https://xn--a.com/fhir", "https://\u3002.org/fhir"])
async def test_a_fhir_server_httpx_cannot_request_is_a_400_naming_it(fhir_server: str) -> None:
    server = FakeFhir()
    with pytest.raises(PrefetchShapeError, match="fhirServer is not a URL"):
        await call({"patient": None}, server, fhir_server=fhir_server)
    assert server.urls() == []


async def test_a_fhir_server_httpx_cannot_request_is_not_judged_when_nothing_is_fetched() -> None:
    result = await call(full_prefetch(), fhir_server="https://xn--a.com/fhir")
    assert result.fetched_keys == ()


# --- which essential keys the prefetch does not hold in full (read as resolve reads it) ----------

OUTCOME = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}


@pytest.mark.parametrize(
    ("prefetch", "expected"),
    [
        (full_prefetch(), []),
        (full_prefetch(patient=OUTCOME), []),  # optional: a note, never a 412
        ({"patient": None}, ["conditions", "observations"]),
        (None, ["conditions", "observations"]),
        (full_prefetch(observations=OUTCOME), ["observations"]),
        (full_prefetch(conditions=bundle(condition(1), next_url=f"{BASE}/x")), ["conditions"]),
    ],
)
async def test_unresolved_keys_are_those_resolve_needs_a_fhir_server_for(
    prefetch: dict[str, Any] | None, expected: list[str]
) -> None:
    from service.fhir.prefetch import unresolved_keys

    assert unresolved_keys(TEMPLATES, prefetch) == expected
    if expected:
        with pytest.raises(DataUnavailable):
            await call(prefetch, fhir_server=None)
    else:
        await call(prefetch, fhir_server=None)


async def test_a_server_s_resource_type_is_quoted_shortened_in_the_412_and_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The server's resourceType is any string it likes: the 412 and the log line quote at
    # most a short piece of it.
    long_type = "Junk" + "x" * 100_000
    server = FakeFhir({"Condition": {"resourceType": long_type}, "Observation": bundle()})
    with caplog.at_level(logging.WARNING), pytest.raises(DataUnavailable) as caught:
        await call({"patient": None}, server)
    assert "a search answered with a Junk" in caught.value.message
    assert len(caught.value.message) < 300
    assert all(
        len(r.getMessage()) + len(str(r.__dict__.get("detail", ""))) < 300 for r in caplog.records
    )
