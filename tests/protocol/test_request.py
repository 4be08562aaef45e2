"""The hook request check: what 2.0 requires is enforced, with messages naming the field;
unknown fields and ``extension`` are tolerated."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from service.protocol.declaration import LIVER_METASTASIS_RESECTABILITY as SERVICE
from service.protocol.errors import BadRequest
from service.protocol.request import parse_hook_request

AUTH = {
    "access_token": "secret-token-value",
    "token_type": "Bearer",
    "expires_in": 300,
    "scope": "user/Patient.read user/Observation.read",
    "subject": "cds-service4",
}


def request(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"userId": "Practitioner/example", "patientId": "1288992"},
    }
    for key, value in changes.items():
        if value is ...:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def refused(body: Any) -> str:
    with pytest.raises(BadRequest) as info:
        parse_hook_request(body, SERVICE)
    return info.value.message


def test_the_spec_example_request_is_accepted() -> None:
    body = request(
        fhirServer="http://hooks.smarthealthit.org:9080",
        fhirAuthorization=AUTH,
        prefetch={"patient": {"resourceType": "Patient", "id": "1288992"}},
    )
    body["context"]["encounterId"] = "89284"
    hook = parse_hook_request(body, SERVICE)
    assert hook.hook_instance == "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"
    assert hook.patient_id == "1288992"
    assert hook.user_id == "Practitioner/example"
    assert hook.encounter_id == "89284"
    assert hook.fhir_server == "http://hooks.smarthealthit.org:9080"
    assert hook.access_token == "secret-token-value"
    assert hook.prefetch == {"patient": {"resourceType": "Patient", "id": "1288992"}}


def test_the_access_token_never_appears_in_repr() -> None:
    hook = parse_hook_request(
        request(fhirServer="https://ehr.example/fhir", fhirAuthorization=AUTH), SERVICE
    )
    assert "secret-token-value" not in repr(hook)


def test_unknown_fields_and_extensions_are_ignored() -> None:
    body = request(
        extension={"com.example.timestamp": "2017-11-27T22:13:25Z"}, somethingNew=[1, {"x": None}]
    )
    body["context"]["extension"] = {"com.example": 1}
    body["context"]["selections"] = ["a"]
    assert parse_hook_request(body, SERVICE).patient_id == "1288992"


def test_null_for_an_optional_field_reads_as_absent() -> None:
    hook = parse_hook_request(
        request(fhirServer=None, fhirAuthorization=None, prefetch=None, extension=None), SERVICE
    )
    assert hook.fhir_server is None
    assert hook.fhir_authorization is None
    assert hook.prefetch is None


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([], "must be a JSON object, not array"),
        ("patient-view", "must be a JSON object, not string"),
        (None, "must be a JSON object, not null"),
        (request(hook=...), "hook is required"),
        (request(hook="order-sign"), "hook must be 'patient-view'"),
        (request(hook=7), "hook must be a string, not number"),
        (request(hookInstance=...), "hookInstance is required"),
        (request(hookInstance=""), "hookInstance must not be empty"),
        (request(hookInstance=123), "hookInstance must be a string"),
        (request(hookInstance="a\nforged log line"), "hookInstance must not contain control"),
        (request(hookInstance="x" * 201), "hookInstance is longer than 200"),
        (request(context=...), "context is required"),
        (request(context=[]), "context must be a JSON object, not array"),
        (request(context={"userId": "Practitioner/1"}), "context.patientId is required"),
        (request(context={"patientId": "1"}), "context.userId is required"),
        (
            request(context={"userId": "Practitioner/1", "patientId": 1}),
            "context.patientId must be a string",
        ),
        (request(context={"userId": 5, "patientId": "1"}), "context.userId must be a string"),
        (
            request(context={"userId": "Practitioner/1", "patientId": "1&_include=*"}),
            "context.patientId must be a FHIR id",
        ),
        (
            request(context={"userId": "Practitioner/1", "patientId": "../Practitioner/1"}),
            "context.patientId must be a FHIR id",
        ),
        (
            request(context={"userId": "Practitioner/1", "patientId": "1", "encounterId": 3}),
            "context.encounterId must be a string",
        ),
        (request(fhirServer=42), "fhirServer must be a string"),
        (request(fhirServer="ftp://ehr.example"), "fhirServer must be an absolute http(s) URL"),
        (request(fhirServer="ehr.example/fhir"), "fhirServer must be an absolute http(s) URL"),
        (request(fhirServer="https://ehr.example:99999"), "fhirServer must be an absolute"),
        (request(fhirServer="https://user:pw@ehr.example"), "must not contain credentials"),
        (request(fhirServer="https://ehr.example/fhir?x=1"), "without query or fragment"),
        (request(fhirAuthorization=AUTH), "fhirServer is required when fhirAuthorization"),
        (
            request(fhirServer="https://e.example", fhirAuthorization="token"),
            "fhirAuthorization must be a JSON object",
        ),
        (
            request(fhirServer="https://e.example", fhirAuthorization={**AUTH, "access_token": ""}),
            "fhirAuthorization.access_token must not be empty",
        ),
        (
            request(
                fhirServer="https://e.example", fhirAuthorization={**AUTH, "token_type": "MAC"}
            ),
            "token_type must be 'Bearer'",
        ),
        (
            request(
                fhirServer="https://e.example", fhirAuthorization={**AUTH, "expires_in": "300"}
            ),
            "expires_in must be an integer, not string",
        ),
        (
            request(fhirServer="https://e.example", fhirAuthorization={**AUTH, "expires_in": -5}),
            "expires_in must not be negative",
        ),
        (
            request(fhirServer="https://e.example", fhirAuthorization={**AUTH, "expires_in": True}),
            "expires_in must be an integer, not boolean",
        ),
        (
            request(
                fhirServer="https://e.example",
                fhirAuthorization={k: v for k, v in AUTH.items() if k != "subject"},
            ),
            "fhirAuthorization.subject is required",
        ),
        (request(prefetch=[]), "prefetch must be a JSON object, not array"),
        (request(prefetch={"patient": "Patient/1"}), "prefetch.patient must be a FHIR resource"),
        (request(prefetch={"conditions": [{}]}), "prefetch.conditions must be a FHIR resource"),
        (request(prefetch={"observations": 3.5}), "not number"),
    ],
)
def test_malformed_requests_are_refused_naming_the_field(body: Any, fragment: str) -> None:
    assert fragment in refused(body)


def test_token_type_is_case_insensitive_and_integral_floats_are_integers() -> None:
    auth = {**AUTH, "token_type": "bearer", "expires_in": 300.0}
    hook = parse_hook_request(
        request(fhirServer="https://e.example", fhirAuthorization=auth), SERVICE
    )
    assert hook.fhir_authorization is not None
    assert hook.fhir_authorization.expires_in == 300


@pytest.mark.parametrize(
    "prefetch",
    [
        {},
        {"patient": None, "conditions": None, "observations": None},
        {"patient": {"resourceType": "Patient", "id": "1288992"}},
        {"conditions": {"resourceType": "Bundle", "type": "searchset", "entry": []}},
        {"observations": {"resourceType": "OperationOutcome", "issue": []}},
    ],
)
def test_every_prefetch_shape_passes_to_the_resolver_unchanged(prefetch: dict[str, Any]) -> None:
    original = copy.deepcopy(prefetch)
    hook = parse_hook_request(request(prefetch=prefetch), SERVICE)
    assert hook.prefetch == original


@pytest.mark.parametrize("extra", [{"resourceType": "Practitioner"}, "123", 7, [1], None])
def test_prefetch_keys_the_service_did_not_declare_are_dropped_whatever_they_hold(
    extra: Any,
) -> None:
    # The standard's own example prefetch carries "user": "123".
    patient = {"resourceType": "Patient", "id": "1288992"}
    hook = parse_hook_request(request(prefetch={"patient": patient, "user": extra}), SERVICE)
    assert hook.prefetch == {"patient": patient}


def test_error_messages_truncate_what_the_client_sent() -> None:
    message = refused(request(hook="x" * 5000))
    assert len(message) < 200
