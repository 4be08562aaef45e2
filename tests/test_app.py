"""The HTTP layer end to end (httpx against the ASGI app): discovery, hook calls, feedback,
errors exactly as cards.md "Errors" says, CORS, health, metrics, audit and shutdown.

The clinical engine and the card renderer are called for real; these tests depend only on
the shape of what they produce (a valid 2.0 response), never on its clinical content.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from app_harness import (
    FEEDBACK_URL,
    HOOK_URL,
    PATIENT_ID,
    FakeStore,
    feedback_item,
    hook_request,
    lifespan,
    make_settings,
    patient,
    running_app,
    searchset,
)
from cds_schema import assert_valid_response

import service.app
import service.pipeline
from service.app import create_app
from service.observability import FEEDBACK_ITEMS, HOOK_CALLS, REGISTRY
from service.render.content import ContentError, load_content
from service.security import AuthenticationError, ClientIdentity

SANDBOX_ORIGIN = "https://sandbox.cds-hooks.org"
FHIR_BASE = "https://ehr.example/fhir"
JSON_HEADERS = {"content-type": "application/json"}


def condition(cid: str, patient_id: str = PATIENT_ID) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "subject": {"reference": f"Patient/{patient_id}"},
        "code": {"text": "something unrelated"},
    }


def observation(oid: str, patient_id: str = PATIENT_ID) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "subject": {"reference": f"Patient/{patient_id}"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "777-3"}]},
        "effectiveDateTime": "2025-05-20T08:00:00Z",
        "valueQuantity": {
            "value": 210,
            "unit": "10*9/L",
            "system": "http://unitsofmeasure.org",
            "code": "10*9/L",
        },
    }


async def post_hook(client: httpx.AsyncClient, body: Any, **kwargs: Any) -> httpx.Response:
    if isinstance(body, bytes | str):
        return await client.post(
            HOOK_URL, content=body, headers=kwargs.pop("headers", JSON_HEADERS), **kwargs
        )
    return await client.post(HOOK_URL, json=body, **kwargs)


def error_of(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "outcome"}  # 2.0 shape, OperationOutcome beside it
    assert isinstance(body["error"], str) and body["error"]
    assert body["outcome"]["issue"][0]["diagnostics"] == body["error"]
    return str(body["error"])


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class RecordingTransport(httpx.AsyncBaseTransport):
    """Stands in for every FHIR server (and JWKS endpoint): records requests, never sends."""

    def __init__(self, handler: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.handler = handler or (lambda request: httpx.Response(503))
        self.closed = 0
        self.events: list[str] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    async def aclose(self) -> None:
        self.closed += 1
        if self.events is not None:
            self.events.append("http-client-closed")


def fhir_server(request: httpx.Request) -> httpx.Response:
    """A tiny FHIR server for patient pat-1: Patient read, Condition and Observation search."""
    path = request.url.path.removeprefix("/fhir/")
    if path == f"Patient/{PATIENT_ID}":
        body: dict[str, Any] = patient()
    elif path == "Condition":
        body = searchset(condition("c1"))
    elif path == "Observation":
        body = searchset(observation("o1"))
    else:
        return httpx.Response(404)
    return httpx.Response(200, json=body, headers={"content-type": "application/fhir+json"})


# --- discovery ----------------------------------------------------------------------------------


async def test_discovery_lists_the_service_with_its_prefetch() -> None:
    async with running_app() as app:
        response = await app.client.get("/cds-services")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    service, order_check = response.json()["services"]
    assert service["id"] == "liver-metastasis-resectability"
    assert service["hook"] == "patient-view"
    assert set(service["prefetch"]) == {"patient", "conditions", "observations", "procedures"}
    assert (order_check["hook"], order_check["prefetch"]) == ("order-sign", service["prefetch"])
    assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"


# --- a good hook call ------------------------------------------------------------------------


async def test_a_valid_call_answers_a_valid_2_0_response_and_is_audited() -> None:
    body = hook_request()
    async with running_app() as app:
        response = await post_hook(app.client, body)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert_valid_response(response.json())
        assert app.store.pending_audits, "the audit record is queued during the call"
    (record,) = app.store.audits
    assert record.hook_instance == body["hookInstance"]
    assert record.service_id == "liver-metastasis-resectability"
    assert record.patient_id == PATIENT_ID
    assert record.status == 200
    assert record.latency_ms >= 0
    assert record.rule is not None
    assert record.ruleset_version == load_content("").version
    cards = response.json()["cards"]
    assert record.card_uuids == tuple(c["uuid"] for c in cards if "uuid" in c)


async def test_the_log_line_and_the_audit_record_are_made_after_the_response_is_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The EHR does not wait for them: they follow the last ``send`` of the response, in
    the same request, so they are still made for every call (and before it is done)."""
    body = json.dumps(hook_request()).encode()
    store = FakeStore()
    app = create_app(make_settings(), store=store, clock=lambda: datetime(2025, 6, 1))
    sent: list[tuple[str, bool, bool]] = []

    def hook_logged() -> bool:
        return any(r.getMessage() == "hook call" for r in caplog.records)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append((message["type"], "audit" in store.events, hook_logged()))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": HOOK_URL,
        "raw_path": HOOK_URL.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"testserver")],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    with caplog.at_level(logging.INFO, logger="liver_cds"):
        async with lifespan(app) as with_state:
            await with_state(scope, receive, send)  # type: ignore[arg-type]
            assert "audit" in store.events and hook_logged(), "made before the call ends"
    assert sent == [
        ("http.response.start", False, False),
        ("http.response.body", False, False),
    ]


async def test_the_engine_receives_the_prefetched_resources_and_the_injected_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}
    real_assess = service.pipeline.assess

    def spy(resources: Any, **kwargs: Any) -> Any:
        resources = list(resources)
        seen["resources"] = resources
        seen.update(kwargs)
        return real_assess(resources, **kwargs)

    monkeypatch.setattr(service.pipeline, "assess", spy)
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "warning", "code": "incomplete", "diagnostics": "partial"}],
    }
    prefetch = {
        "patient": patient(),
        "conditions": searchset(condition("c1"), condition("c2")),
        "observations": {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [
                {"resource": observation("o1")},
                {"resource": outcome, "search": {"mode": "outcome"}},
            ],
        },
    }
    async with running_app() as app:
        response = await post_hook(app.client, hook_request(prefetch=prefetch))
    assert response.status_code == 200
    ids = sorted(f"{r['resourceType']}/{r.get('id')}" for r in seen["resources"])
    assert ids == ["Condition/c1", "Condition/c2", "Observation/o1", f"Patient/{PATIENT_ID}"]
    assert seen["patient_id"] == PATIENT_ID
    assert seen["at"] == app_harness_now()
    assert seen["strict"] is False


def app_harness_now() -> Any:
    from app_harness import FIXED_NOW

    return FIXED_NOW


@pytest.mark.parametrize(
    "prefetch",
    [
        pytest.param(
            {"patient": patient(), "conditions": searchset(), "observations": searchset()},
            id="resource-and-empty-bundles",
        ),
        pytest.param({"patient": None, "conditions": None, "observations": None}, id="all-null"),
        pytest.param(
            {
                "patient": patient(),
                "conditions": condition("c1"),
                "observations": observation("o1"),
            },
            id="single-resources",
        ),
        pytest.param(
            {
                "patient": patient(),
                "conditions": searchset(condition("c1")),
                "observations": searchset(*(observation(f"o{i}") for i in range(50))),
            },
            id="bundles-with-entries",
        ),
        pytest.param(
            {
                "patient": {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "code": "exception"}],
                },
                "conditions": searchset(),
                "observations": searchset(),
            },
            id="operation-outcome-as-the-optional-patient",
        ),
        pytest.param(
            {
                "conditions": searchset(),
                "observations": searchset(),
                "unrequested": {"resourceType": "Practitioner", "id": "x"},
            },
            id="optional-patient-missing-and-extra-key",
        ),
    ],
)
async def test_each_prefetch_shape_is_answered_with_200(prefetch: dict[str, Any]) -> None:
    async with running_app() as app:
        response = await post_hook(app.client, hook_request(prefetch=prefetch))
    assert response.status_code == 200, response.text
    assert_valid_response(response.json())


async def test_unknown_fields_and_extension_are_tolerated() -> None:
    body = hook_request(
        extension={"com.example.timestamp": "2017-11-27T22:13:25Z"}, futureField=[1]
    )
    body["context"]["encounterId"] = "89284"
    body["context"]["extension"] = {"com.example.x": True}
    async with running_app() as app:
        response = await post_hook(app.client, body)
    assert response.status_code == 200


async def test_missing_keys_are_fetched_from_fhir_server_with_the_bearer_token() -> None:
    transport = RecordingTransport(fhir_server)
    body = hook_request(
        fhirServer=FHIR_BASE,
        fhirAuthorization={
            "access_token": "opaque-token",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/Patient.read user/Condition.read user/Observation.read",
            "subject": "liver-cds",
        },
    )
    del body["prefetch"]
    async with running_app(http_transport=transport) as app:
        response = await post_hook(app.client, body)
    assert response.status_code == 200, response.text
    paths = sorted(r.url.path for r in transport.requests)
    assert paths == [
        "/fhir/Condition",
        "/fhir/Observation",
        f"/fhir/Patient/{PATIENT_ID}",
        "/fhir/Procedure",
    ]
    assert {r.headers["authorization"] for r in transport.requests} == {"Bearer opaque-token"}
    assert {r.url.host for r in transport.requests} == {"ehr.example"}


# --- 412: the data cannot be obtained ---------------------------------------------------------


async def test_no_prefetch_and_no_fhir_access_is_412_with_a_clear_message() -> None:
    body = hook_request()
    del body["prefetch"]
    async with running_app() as app:
        response = await post_hook(app.client, body)
        assert response.status_code == 412
        message = error_of(response)
    assert "conditions" in message or "observations" in message
    (record,) = app.store.audits
    assert record.status == 412 and record.hook_instance == body["hookInstance"]


async def test_an_ehr_that_could_not_prefetch_the_conditions_gets_412_not_an_empty_answer() -> None:
    # CDS Hooks 2.0 "Prefetch Template": an OperationOutcome in place of required data means
    # the data could not be obtained; "no cards" would read as "no liver malignancy".
    issue = {"severity": "error", "code": "exception"}
    outcome = {"resourceType": "OperationOutcome", "issue": [issue]}
    body = hook_request()
    body["prefetch"]["conditions"] = outcome
    async with running_app() as app:
        response = await post_hook(app.client, body)
    assert response.status_code == 412
    assert "'conditions' is an OperationOutcome" in error_of(response)


async def test_a_prefetch_value_of_the_wrong_resource_type_is_400() -> None:
    body = hook_request()
    body["prefetch"]["conditions"] = patient()
    async with running_app() as app:
        response = await post_hook(app.client, body)
    assert response.status_code == 400
    assert "prefetch 'conditions' must be a searchset Bundle of Condition" in error_of(response)


async def test_a_fhir_server_the_policy_refuses_is_never_contacted() -> None:
    transport = RecordingTransport(fhir_server)
    body = hook_request(fhirServer="http://ehr.example/fhir")  # plain http, not loopback
    del body["prefetch"]["observations"]
    async with running_app(http_transport=transport) as app:
        response = await post_hook(app.client, body)
    assert response.status_code == 412
    assert "https" in error_of(response)
    assert transport.requests == []


async def test_a_refused_fhir_server_does_not_matter_when_the_prefetch_is_complete() -> None:
    transport = RecordingTransport(fhir_server)
    async with running_app(http_transport=transport) as app:
        response = await post_hook(app.client, hook_request(fhirServer="http://ehr.example/fhir"))
    assert response.status_code == 200
    assert transport.requests == []


async def test_a_refused_fhir_server_and_no_patient_prefetch_is_a_200_as_without_fhir_server() -> (
    None
):
    # The Patient only refines (age): its absence is a note whether or not a fhirServer
    # that the policy refuses is named.
    transport = RecordingTransport(fhir_server)
    body = hook_request(fhirServer="http://ehr.example/fhir")
    del body["prefetch"]["patient"]
    async with running_app(http_transport=transport) as app:
        response = await post_hook(app.client, body)
    assert response.status_code == 200
    assert transport.requests == []


# --- 400 / 404 / 413 / 415 ----------------------------------------------------------------------


def _without(key: str) -> dict[str, Any]:
    body = hook_request()
    del body[key]
    return body


def _context(**context: Any) -> dict[str, Any]:
    return hook_request(context=context)


BAD_REQUESTS = [
    pytest.param(b"", "empty", id="empty-body"),
    pytest.param(b"hook=patient-view", "not valid JSON", id="not-json"),
    pytest.param(b"[]", "must be a JSON object, not array", id="json-array"),
    pytest.param(b'"patient-view"', "must be a JSON object, not string", id="json-string"),
    pytest.param(b"null", "must be a JSON object, not null", id="json-null"),
    pytest.param(b'{"hook": NaN}', "not valid JSON", id="nan"),
    pytest.param(b"[" * 100 + b"]" * 100, "nested more than 64", id="deep-nesting"),
    pytest.param(_without("hookInstance"), "hookInstance is required", id="missing-hookInstance"),
    pytest.param(
        _context(userId="Practitioner/1"), "context.patientId is required", id="missing-patientId"
    ),
    pytest.param(_without("context"), "context is required", id="missing-context"),
    pytest.param(hook_request(hook="order-sign"), "hook must be 'patient-view'", id="wrong-hook"),
    pytest.param(
        hook_request(context=["pat-1"]), "context must be a JSON object", id="context-array"
    ),
    pytest.param(
        _context(userId="Practitioner/1", patientId=12),
        "context.patientId must be a string",
        id="patientId-number",
    ),
    pytest.param(
        _context(userId=None, patientId="p"), "context.userId is required", id="userId-null"
    ),
    pytest.param(
        hook_request(prefetch=["x"]), "prefetch must be a JSON object", id="prefetch-array"
    ),
    pytest.param(
        hook_request(prefetch={"conditions": "Condition?patient=1"}),
        "prefetch.conditions must be a FHIR resource",
        id="prefetch-value-string",
    ),
    pytest.param(
        hook_request(prefetch={"observations": [observation("o1")]}),
        "prefetch.observations must be a FHIR resource",
        id="prefetch-value-array",
    ),
    pytest.param(
        hook_request(
            fhirAuthorization={
                "access_token": "t",
                "token_type": "Bearer",
                "expires_in": 60,
                "scope": "s",
                "subject": "c",
            }
        ),
        "fhirServer is required when fhirAuthorization",
        id="fhirAuthorization-without-fhirServer",
    ),
    pytest.param(
        hook_request(fhirServer="not a url"),
        "fhirServer must be an absolute http(s) URL",
        id="fhirServer-not-url",
    ),
]


@pytest.mark.parametrize(("body", "fragment"), BAD_REQUESTS)
async def test_malformed_requests_are_400_with_a_clear_message(body: Any, fragment: str) -> None:
    async with running_app() as app:
        response = await post_hook(app.client, body)
    assert response.status_code == 400
    assert fragment in error_of(response)
    assert "Traceback" not in response.text


async def test_a_prefetch_value_the_resolver_cannot_read_is_400() -> None:
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": "junk"}
    no_type = {"id": "x", "subject": {"reference": "Patient/pat-1"}}
    async with running_app() as app:
        bad_entry = await post_hook(
            app.client, hook_request(prefetch={"conditions": bundle, "observations": searchset()})
        )
        untyped = await post_hook(
            app.client, hook_request(prefetch={"conditions": no_type, "observations": searchset()})
        )
    assert bad_entry.status_code == 400
    assert "conditions" in error_of(bad_entry)
    assert untyped.status_code == 400
    assert "resourceType" in error_of(untyped)


async def test_junk_bundle_entries_are_skipped_and_the_call_answers_200() -> None:
    junk = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            "x",
            {},
            {"resource": 3},
            {"resource": {"id": "no-type"}},
            {"resource": condition("c1")},
        ],
    }
    async with running_app() as app:
        response = await post_hook(
            app.client, hook_request(prefetch={"conditions": junk, "observations": searchset()})
        )
    assert response.status_code == 200
    assert_valid_response(response.json())


async def test_a_repeated_patient_id_is_refused_deterministically() -> None:
    raw = (
        b'{"hook": "patient-view", "hookInstance": "h-1", "context": {"userId": "Practitioner/1",'
        b' "patientId": "pat-1", "patientId": "pat-2"}, "prefetch": {"patient": null,'
        b' "conditions": null, "observations": null}}'
    )
    async with running_app() as app:
        first = await post_hook(app.client, raw)
        second = await post_hook(app.client, raw)
    assert first.status_code == second.status_code == 400
    assert "context.patientId" in error_of(first)


async def test_repeated_keys_elsewhere_take_the_last_value() -> None:
    raw = (
        b'{"hook": "patient-view", "hookInstance": "h-1", "hookInstance": "h-2",'
        b' "context": {"userId": "Practitioner/1", "patientId": "pat-1"},'
        b' "prefetch": {"patient": null, "conditions": null, "observations": null}}'
    )
    async with running_app() as app:
        response = await post_hook(app.client, raw)
    assert response.status_code == 200
    assert [a.hook_instance for a in app.store.audits] == ["h-2"]


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1", None],
)
async def test_a_body_not_declared_as_json_is_415(content_type: str | None) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    async with running_app() as app:
        response = await app.client.post(
            HOOK_URL, content=json.dumps(hook_request()), headers=headers
        )
    assert response.status_code == 415
    assert "application/json" in error_of(response) or "UTF-8" in error_of(response)


async def test_unknown_service_is_404_as_json() -> None:
    async with running_app() as app:
        hook = await app.client.post("/cds-services/no-such-service", json=hook_request())
        feedback = await app.client.post(
            "/cds-services/no-such-service/feedback", json={"feedback": []}
        )
    assert hook.status_code == feedback.status_code == 404
    assert "no-such-service" in error_of(hook)
    error_of(feedback)


async def test_unknown_paths_and_methods_answer_json_errors() -> None:
    async with running_app() as app:
        missing = await app.client.get("/nowhere")
        wrong_method = await app.client.get(HOOK_URL)
    assert missing.status_code == 404 and error_of(missing)
    assert wrong_method.status_code == 405 and error_of(wrong_method)


async def test_an_oversized_body_is_413_before_it_is_parsed() -> None:
    settings = make_settings(max_body_bytes=1000)
    junk = b"\x00not json at all" * 100  # would be a 400 if it were parsed
    async with running_app(settings) as app:
        declared = await post_hook(app.client, junk)
        fitting = await post_hook(app.client, junk[:900])
    assert declared.status_code == 413
    assert "1000 bytes" in error_of(declared)
    assert fitting.status_code == 400  # under the limit the same bytes are parsed


async def test_an_oversized_body_without_content_length_is_cut_while_streaming() -> None:
    settings = make_settings(max_body_bytes=1000)
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            sent.append(1)
            yield b" " * 100

    async with running_app(settings) as app:
        response = await app.client.post(HOOK_URL, content=chunks(), headers=JSON_HEADERS)
    assert response.status_code == 413
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert len(sent) < 100  # reading stopped at the limit


async def test_feedback_bodies_have_the_same_limits() -> None:
    settings = make_settings(max_body_bytes=100)
    async with running_app(settings) as app:
        big = await app.client.post(FEEDBACK_URL, json={"feedback": [feedback_item()] * 5})
        typed = await app.client.post(
            FEEDBACK_URL, content=b"{}", headers={"content-type": "text/plain"}
        )
    assert big.status_code == 413
    assert typed.status_code == 415


# --- 500 ------------------------------------------------------------------------------------------


async def test_an_unexpected_fault_is_a_generic_500_logged_with_the_hook_instance(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Ms Jane Example, MRN 0042"

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"cannot assess {secret}")

    monkeypatch.setattr(service.pipeline, "assess", broken)
    body = hook_request()
    caplog.set_level(logging.INFO, logger="liver_cds")
    async with running_app() as app:
        response = await post_hook(app.client, body)
    assert response.status_code == 500
    assert response.json()["error"] == "internal error"
    assert response.json()["outcome"]["issue"][0]["diagnostics"] == "internal error"
    faults = [r for r in caplog.records if r.getMessage() == "hook call failed"]
    assert len(faults) == 1
    fault = faults[0]
    assert getattr(fault, "hookInstance", None) == body["hookInstance"]
    assert getattr(fault, "error_type", None) == "RuntimeError"
    assert all(
        secret not in r.getMessage() and secret not in str(r.__dict__) for r in caplog.records
    )
    assert app.store.audits[0].status == 500


# --- authentication ---------------------------------------------------------------------------


class FakeAuthenticator:
    """Accepts ``Bearer good`` only, and records the audience of every call."""

    def __init__(self) -> None:
        self.audiences: list[str] = []

    async def authenticate(self, authorization: str | None, audience: str) -> ClientIdentity:
        self.audiences.append(audience)
        if authorization != "Bearer good":
            raise AuthenticationError("test: bad token")
        return ClientIdentity(iss="https://ehr.example", fhir_servers=(FHIR_BASE,))

    async def aclose(self) -> None:
        return None


def auth_settings() -> Any:
    return make_settings(
        auth="required", trust_file="unused.json", public_url="https://cds.example.org/"
    )


async def test_every_cds_endpoint_needs_authentication_and_failure_is_a_bare_401() -> None:
    auth = FakeAuthenticator()
    async with running_app(auth_settings(), authenticator=auth) as app:
        calls = [
            await app.client.get("/cds-services"),
            await post_hook(app.client, hook_request()),
            await app.client.post(FEEDBACK_URL, json={"feedback": [feedback_item()]}),
            await post_hook(app.client, hook_request(), headers={"authorization": "Bearer bad"}),
        ]
        health = await app.client.get("/healthz")
    for response in calls:
        assert response.status_code == 401
        assert response.content == b""
        assert response.headers["www-authenticate"] == "Bearer"
    assert health.status_code == 200
    assert app.store.feedback == [] and app.store.audits == []


async def test_authenticated_calls_pass_with_the_exact_url_as_audience() -> None:
    auth = FakeAuthenticator()
    good = {"authorization": "Bearer good"}
    async with running_app(auth_settings(), authenticator=auth) as app:
        discovery = await app.client.get("/cds-services", headers=good)
        hook = await post_hook(app.client, hook_request(), headers=good)
        feedback = await app.client.post(
            FEEDBACK_URL, json={"feedback": [feedback_item()]}, headers=good
        )
    assert (discovery.status_code, hook.status_code, feedback.status_code) == (200, 200, 200)
    assert auth.audiences == [
        "https://cds.example.org/cds-services",
        "https://cds.example.org" + HOOK_URL,
        "https://cds.example.org" + FEEDBACK_URL,
    ]


async def test_authentication_comes_before_the_body_is_read() -> None:
    auth = FakeAuthenticator()
    async with running_app(auth_settings(), authenticator=auth) as app:
        response = await post_hook(app.client, b"{not json")
    assert response.status_code == 401


async def test_with_auth_required_only_the_callers_fhir_servers_are_used() -> None:
    transport = RecordingTransport(fhir_server)
    auth = FakeAuthenticator()
    token = {
        "access_token": "t",
        "token_type": "Bearer",
        "expires_in": 60,
        "scope": "s",
        "subject": "c",
    }
    good = {"authorization": "Bearer good"}

    def call(server: str) -> dict[str, Any]:
        body = hook_request(fhirServer=server, fhirAuthorization=token)
        del body["prefetch"]
        return body

    async with running_app(auth_settings(), authenticator=auth, http_transport=transport) as app:
        other = await post_hook(app.client, call("https://elsewhere.example/fhir"), headers=good)
        assert other.status_code == 412 and "allowlist" in error_of(other)
        assert transport.requests == []
        allowed = await post_hook(app.client, call(FHIR_BASE), headers=good)
    assert allowed.status_code == 200
    assert {r.url.host for r in transport.requests} == {"ehr.example"}


# --- CORS ---------------------------------------------------------------------------------------


async def test_the_sandbox_preflight_with_authorization_and_content_type_passes() -> None:
    settings = make_settings(cors_origins=(SANDBOX_ORIGIN,))
    preflight = {
        "origin": SANDBOX_ORIGIN,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type",
    }
    async with running_app(settings) as app:
        response = await app.client.options(HOOK_URL, headers=preflight)
        discovery = await app.client.get("/cds-services", headers={"origin": SANDBOX_ORIGIN})
        refused = await app.client.options(
            HOOK_URL, headers={**preflight, "origin": "https://evil.example"}
        )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SANDBOX_ORIGIN
    allowed_headers = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {"authorization", "content-type"} <= allowed_headers
    assert "POST" in response.headers["access-control-allow-methods"]
    assert discovery.headers["access-control-allow-origin"] == SANDBOX_ORIGIN
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


async def test_errors_carry_cors_headers_so_the_browser_can_read_them() -> None:
    async with running_app() as app:
        response = await post_hook(
            app.client, b"[]", headers={**JSON_HEADERS, "origin": SANDBOX_ORIGIN}
        )
    assert response.status_code == 400
    assert response.headers["access-control-allow-origin"] == "*"


# --- feedback -------------------------------------------------------------------------------------


async def test_feedback_is_stored_before_the_200() -> None:
    item = feedback_item()
    before = counter("liver_cds_feedback_items_total", outcome="accepted")
    async with running_app() as app:
        response = await app.client.post(FEEDBACK_URL, json={"feedback": [item]})
        assert response.status_code == 200
        assert response.json() == {}
        (stored,) = app.store.feedback  # already there when the answer arrives
    assert stored.card_uuid == item["card"]
    assert stored.accepted_suggestions == (item["acceptedSuggestions"][0]["id"],)
    assert stored.service_id == "liver-metastasis-resectability"
    assert counter("liver_cds_feedback_items_total", outcome="accepted") == before + 1
    assert FEEDBACK_ITEMS is not None


async def test_feedback_in_epics_spelling_and_repeats_are_idempotent() -> None:
    item = feedback_item(
        outcome="overridden",
        acceptedSuggestions=None,
        overrideReasons={
            "reason": {
                "code": "data-incorrect",
                "system": "https://liver-cds.org/fhir/CodeSystem/override-reason",
                "display": "Data incorrect",
            }
        },
    )
    del item["acceptedSuggestions"]
    async with running_app() as app:
        first = await app.client.post(FEEDBACK_URL, json={"feedback": [item]})
        again = await app.client.post(FEEDBACK_URL, json={"feedback": [item, item]})
    assert first.status_code == again.status_code == 200
    (stored,) = app.store.feedback
    assert stored.override_reason_code == "data-incorrect"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            {"feedback": [feedback_item(outcome="dismissed")]},
            "outcome must be 'accepted' or 'overridden'",
        ),
        ({"feedback": [feedback_item(outcomeTimestamp="2025-06-01 12:00")]}, "time zone"),
        ({"feedback": "x"}, "feedback must be an array"),
        ([], "must be a JSON object"),
    ],
)
async def test_bad_feedback_is_400_and_nothing_is_stored(body: Any, fragment: str) -> None:
    async with running_app() as app:
        response = await app.client.post(FEEDBACK_URL, json=body)
    assert response.status_code == 400
    assert fragment in error_of(response)
    assert app.store.feedback == []


async def test_feedback_that_cannot_be_stored_is_503_so_the_ehr_retries() -> None:
    store = FakeStore(fail_feedback=ConnectionError("database down"))
    async with running_app(store=store) as app:
        response = await app.client.post(FEEDBACK_URL, json={"feedback": [feedback_item()]})
    assert response.status_code == 503
    assert "retry" in error_of(response)


async def test_feedback_the_store_refuses_is_400() -> None:
    store = FakeStore(fail_feedback=ValueError("card uuid longer than 200 characters"))
    async with running_app(store=store) as app:
        response = await app.client.post(FEEDBACK_URL, json={"feedback": [feedback_item()]})
    assert response.status_code == 400
    assert "200 characters" in error_of(response)


# --- health ---------------------------------------------------------------------------------------


async def test_healthz_and_readyz() -> None:
    store = FakeStore()
    async with running_app(store=store) as app:
        alive = await app.client.get("/healthz")
        ready = await app.client.get("/readyz")
        store.ready = False
        not_ready = await app.client.get("/readyz")
    assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert not_ready.status_code == 503
    assert not_ready.json()["status"] == "unavailable"


async def test_readyz_is_503_when_the_database_check_fails() -> None:
    class BrokenPing(FakeStore):
        async def ping(self) -> bool:
            raise OSError("connection refused")

    async with running_app(store=BrokenPing()) as app:
        response = await app.client.get("/readyz")
    assert response.status_code == 503


async def test_readyz_is_503_before_start_up() -> None:
    app = create_app(make_settings(), store=FakeStore())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        response = await client.get("/readyz")
        alive = await client.get("/healthz")
    assert response.status_code == 503
    assert alive.status_code == 200


# --- metrics --------------------------------------------------------------------------------------


async def test_hook_calls_are_counted_by_service_status_and_verdict() -> None:
    labels = {"service": "liver-metastasis-resectability", "status": "400", "verdict": "none"}
    unknown = {"service": "unknown", "status": "404", "verdict": "none"}
    before, before_unknown = (
        counter("liver_cds_hook_calls_total", **labels),
        counter("liver_cds_hook_calls_total", **unknown),
    )
    async with running_app() as app:
        await post_hook(app.client, b"[]")
        await app.client.post("/cds-services/made-up-" + "x" * 50, json={})
    assert counter("liver_cds_hook_calls_total", **labels) == before + 1
    assert counter("liver_cds_hook_calls_total", **unknown) == before_unknown + 1
    assert HOOK_CALLS is not None


async def test_metrics_route_is_wired_when_enabled() -> None:
    async with running_app(make_settings(metrics_enabled=True)) as app:
        on = await app.client.get("/metrics")
    async with running_app(make_settings(metrics_enabled=False)) as app:
        off = await app.client.get("/metrics")
    assert on.status_code == 200 and "liver_cds_hook_calls" in on.text
    assert off.status_code == 404


# --- lifespan and shutdown ----------------------------------------------------------------------


async def test_shutdown_closes_fhir_clients_before_the_store_and_flushes_the_audit() -> None:
    events: list[str] = []
    store = FakeStore(events=events)
    transport = RecordingTransport(fhir_server)
    transport.events = events
    body = hook_request(fhirServer=FHIR_BASE)
    del body["prefetch"]
    async with running_app(store=store, http_transport=transport) as app:
        response = await post_hook(app.client, body)
        assert response.status_code == 200
        assert store.audits == [] and len(store.pending_audits) == 1
    assert events[0] == "audit"
    assert events[-1] == "close", "the store closes last"
    assert "http-client-closed" in events[1:-1], "FHIR clients close before the store"
    assert [a.hook_instance for a in store.audits] == [body["hookInstance"]]
    assert store.pending_audits == []


async def test_shutdown_lets_an_in_flight_call_finish_and_audits_it() -> None:
    release = asyncio.Event()
    requested = asyncio.Event()

    class SlowTransport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            requested.set()
            await release.wait()
            return fhir_server(request)

    store = FakeStore()
    app = create_app(make_settings(), store=store, http_transport=SlowTransport())
    body = hook_request(fhirServer=FHIR_BASE)
    del body["prefetch"]["conditions"]
    async with contextlib.AsyncExitStack() as stack:
        with_state = await stack.enter_async_context(lifespan(app))
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=with_state), base_url="http://t")
        )
        call = asyncio.create_task(post_hook(client, body))
        await requested.wait()
        shutdown = asyncio.create_task(stack.aclose())
        await asyncio.sleep(0.05)
        assert not shutdown.done(), "shutdown waits for the in-flight call"
        release.set()
        response = await call
        await shutdown
    assert response.status_code == 200
    assert store.closed
    assert [a.hook_instance for a in store.audits] == [body["hookInstance"]]


async def test_start_up_fails_loudly_when_the_store_cannot_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def no_database(settings: Any) -> Any:
        raise OSError("database unreachable")

    monkeypatch.setattr(service.app, "open_store", no_database)
    app = create_app(make_settings())
    with pytest.raises(OSError, match="database unreachable"):
        async with lifespan(app):
            pass


async def test_start_up_refuses_card_content_that_fails_its_schema(tmp_path: Any) -> None:
    app = create_app(make_settings(cards_dir=str(tmp_path)), store=FakeStore())
    with pytest.raises(ContentError):
        async with lifespan(app):
            pass


# --- every fixture patient through HTTP ---------------------------------------------------------

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _fixture_requests() -> list[Any]:
    manifest = FIXTURES / "manifest.json"
    if not manifest.is_file():
        return []
    entries = json.loads(manifest.read_text(encoding="utf-8"))["patients"]
    return [pytest.param(entry["file"], id=Path(entry["file"]).stem) for entry in entries]


@pytest.mark.parametrize("fixture_file", _fixture_requests())
async def test_every_fixture_patient_gets_a_valid_2_0_response(fixture_file: str) -> None:
    manifest = json.loads((FIXTURES / "manifest.json").read_text(encoding="utf-8"))
    evaluated_at = datetime.fromisoformat(manifest["evaluated_at"])
    body = json.loads((FIXTURES / fixture_file).read_text(encoding="utf-8"))
    async with running_app(clock=lambda: evaluated_at) as app:
        response = await post_hook(app.client, body)
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    assert_valid_response(response.json())
    (record,) = app.store.audits
    assert (record.verdict is None) == (cards == [])
    assert record.card_uuids == tuple(card["uuid"] for card in cards)
    suggestions = [s["uuid"] for card in cards for s in card.get("suggestions", [])]
    assert list(record.suggestion_uuids) == suggestions
    assert all(s.option_code for s in record.suggestions)


# --- liver-cds serve ------------------------------------------------------------------------------


def _serve(monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str]) -> Any:
    import uvicorn

    from service.cli import main

    for name in ("LIVER_CDS_HOST", "LIVER_CDS_PORT", "LIVER_CDS_WORKERS", "LIVER_CDS_DEMO_ENABLED"):
        monkeypatch.setenv(name, "")  # recorded, so what serve exports for workers is undone
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: calls.append((target, kw)))
    assert main(["serve", *argv]) == 0
    (call,) = calls
    return call


def test_serve_runs_uvicorn_with_uvloop_and_httptools_on_the_settings_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from service.httpserver import BoundedHttpToolsProtocol

    target, options = _serve(monkeypatch, [], {"LIVER_CDS_PORT": "8123"})
    assert callable(target)  # the app itself with one worker
    assert options["host"] == "127.0.0.1" and options["port"] == 8123
    assert options["loop"] == "uvloop"
    # httptools, through the subclass that bounds request heads (service/httpserver.py).
    assert options["http"] is BoundedHttpToolsProtocol
    assert issubclass(BoundedHttpToolsProtocol, HttpToolsProtocol)
    assert options["lifespan"] == "on"
    assert options["factory"] is False and options["workers"] is None
    assert options["timeout_graceful_shutdown"] > 0
    # Idle connections outlive a load balancer's 60 s idle timeout: the client closes first.
    assert options["timeout_keep_alive"] > 60


def test_serve_flags_override_settings_and_several_workers_use_the_factory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target, options = _serve(
        monkeypatch, ["--host", "0.0.0.0", "--port", "9001", "--workers", "3"], {}
    )
    assert target == "service.app:create_app_from_env"
    assert options["factory"] is True and options["workers"] == 3
    assert (options["host"], options["port"]) == ("0.0.0.0", 9001)


@pytest.mark.parametrize(
    ("argv", "env"),
    [(["--workers", "0"], {}), (["--port", "70000"], {}), ([], {"LIVER_CDS_AUTH": "sometimes"})],
)
def test_serve_refuses_unusable_settings_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str]
) -> None:
    import uvicorn

    from service.cli import main

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("uvicorn must not start"))
    assert main(["serve", *argv]) == 2


def test_the_factory_builds_the_app_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVER_CDS_PUBLIC_URL", "https://cds.example.org")
    app = service.app.create_app_from_env()
    assert app.state.runtime.settings.public_url == "https://cds.example.org"
