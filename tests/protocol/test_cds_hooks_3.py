"""CDS Hooks 3.0 ballot items that are safe for 2.0 clients, checked through the HTTP app.

* Discovery carries the ``version`` of the CDS Hooks specification each service implements.
* Every non-2xx answer but 401 carries a FHIR OperationOutcome: beside ``error`` (2.0 shape,
  ``application/json``) or alone for a client that prefers ``application/fhir+json``.
* 401 stays bare.
* ``fhirAuthorization.scope`` is read in SMART v1 and v2 syntax alike.
* ``extension`` and unknown fields are tolerated everywhere in requests and feedback.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from app_harness import (
    FEEDBACK_URL,
    HOOK_URL,
    feedback_item,
    hook_request,
    make_settings,
    running_app,
)
from fhir.resources.R4B.operationoutcome import OperationOutcome

from service.protocol.responses import operation_outcome, prefers_fhir
from service.protocol.scopes import ResourceScope, parse_scope, parse_scopes

FHIR_JSON = "application/fhir+json"
ISSUE_TYPES = {  # http://hl7.org/fhir/R4/valueset-issue-type.html
    "invalid", "structure", "required", "value", "invariant", "security", "login", "unknown",
    "expired", "forbidden", "suppressed", "processing", "not-supported", "duplicate",
    "multiple-matches", "not-found", "deleted", "too-long", "code-invalid", "extension",
    "too-costly", "business-rule", "conflict", "transient", "lock-error", "no-store",
    "exception", "timeout", "incomplete", "throttled", "informational",
}  # fmt: skip


def assert_outcome(outcome: Any, code: str, names: str) -> None:
    """A valid R4 OperationOutcome with one error issue whose diagnostics name ``names``."""
    OperationOutcome.model_validate(outcome)  # raises if not valid FHIR
    assert outcome["resourceType"] == "OperationOutcome"
    (issue,) = outcome["issue"]
    assert issue["severity"] == "error"
    assert issue["code"] == code and code in ISSUE_TYPES
    assert names in issue["diagnostics"]


# --- discovery ----------------------------------------------------------------------------


async def test_discovery_names_the_cds_hooks_version_each_service_implements() -> None:
    async with running_app() as app:
        response = await app.client.get("/cds-services")
    assert response.status_code == 200
    services = response.json()["services"]
    assert services
    assert {service["version"] for service in services} == {"2.0.1"}


# --- error bodies -------------------------------------------------------------------------

BAD_CALLS: list[tuple[str, dict[str, Any], int, str, str]] = [
    # (what, request, status, issue type, text the diagnostics must contain)
    ("missing hookInstance", {"drop": "hookInstance"}, 400, "invalid", "hookInstance"),
    ("wrong hook", {"hook": "order-select"}, 400, "invalid", "hook"),
    ("patientId not an id", {"patientId": "a/b"}, 400, "invalid", "context.patientId"),
    ("no data at all", {"prefetch": None}, 412, "processing", "prefetch"),
]


def _bad(change: dict[str, Any]) -> dict[str, Any]:
    request = hook_request()
    if "drop" in change:
        del request[change["drop"]]
    if "hook" in change:
        request["hook"] = change["hook"]
    if "patientId" in change:
        request["context"]["patientId"] = change["patientId"]
    if "prefetch" in change:
        request.pop("prefetch")
    return request


@pytest.mark.parametrize(("what", "change", "status", "code", "names"), BAD_CALLS)
async def test_a_2_0_client_gets_error_and_an_operation_outcome_beside_it(
    what: str, change: dict[str, Any], status: int, code: str, names: str
) -> None:
    async with running_app() as app:
        response = await app.client.post(HOOK_URL, json=_bad(change))
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert "Accept" in response.headers["vary"]
    body = response.json()
    assert set(body) == {"error", "outcome"}
    assert names in body["error"]
    assert_outcome(body["outcome"], code, names)
    assert body["outcome"]["issue"][0]["diagnostics"] == body["error"]


@pytest.mark.parametrize(("what", "change", "status", "code", "names"), BAD_CALLS)
async def test_a_client_preferring_fhir_json_gets_the_bare_operation_outcome(
    what: str, change: dict[str, Any], status: int, code: str, names: str
) -> None:
    async with running_app() as app:
        response = await app.client.post(
            HOOK_URL, json=_bad(change), headers={"Accept": f"{FHIR_JSON}, application/json;q=0.5"}
        )
    assert response.status_code == status
    assert response.headers["content-type"] == FHIR_JSON
    assert int(response.headers["content-length"]) == len(response.content)
    assert_outcome(response.json(), code, names)


async def test_every_error_path_gets_the_outcome_routing_size_media_type_and_feedback() -> None:
    settings = make_settings(max_body_bytes=2000)
    async with running_app(settings) as app:
        client = app.client
        unknown = await client.post("/cds-services/no-such-service", json=hook_request())
        wrong_method = await client.get(HOOK_URL)
        no_route = await client.get("/no/such/path")
        too_big = await client.post(HOOK_URL, content=b"{" + b" " * 3000 + b"}")
        not_json = await client.post(
            HOOK_URL, content=b"{}", headers={"content-type": "text/plain"}
        )
        bad_feedback = await client.post(
            FEEDBACK_URL, json={"feedback": [feedback_item(outcome="maybe")]}
        )
    expected = [
        (unknown, 404, "not-found", "no-such-service"),
        (wrong_method, 405, "not-supported", "method"),
        (no_route, 404, "not-found", "not found"),
        (too_big, 413, "too-long", ""),
        (not_json, 415, "not-supported", ""),
        (bad_feedback, 400, "invalid", "feedback[0].outcome"),
    ]
    for response, status, code, names in expected:
        assert response.status_code == status, response.text
        body = response.json()
        assert set(body) == {"error", "outcome"}, body
        assert_outcome(body["outcome"], code, names)


async def test_401_stays_bare_whatever_the_client_accepts(tmp_path: Any) -> None:
    from service.security import AuthenticationError

    class Refusing:
        async def authenticate(self, header: str | None, audience: str) -> Any:
            raise AuthenticationError("no token")

        async def aclose(self) -> None:
            return None

    async with running_app(authenticator=Refusing()) as app:
        for accept in ("application/json", FHIR_JSON):
            response = await app.client.post(
                HOOK_URL, json=hook_request(), headers={"Accept": accept}
            )
            assert response.status_code == 401
            assert response.content == b""
            assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("accept", "fhir"),
    [
        (None, False),
        ("", False),
        ("*/*", False),
        ("application/*", False),
        ("application/json", False),
        (FHIR_JSON, True),
        ("Application/FHIR+JSON", True),
        (f"application/json, {FHIR_JSON}", True),  # equal quality: the FHIR form
        (f"application/json, {FHIR_JSON};q=0.9", False),
        (f"{FHIR_JSON};q=0.9, application/json;q=0.5", True),
        (f"{FHIR_JSON};q=0", False),
        (f"{FHIR_JSON};q=nonsense", False),
        (f"{FHIR_JSON}; fhirVersion=4.0", True),
    ],
)
def test_which_accept_headers_prefer_the_fhir_form(accept: str | None, fhir: bool) -> None:
    assert prefers_fhir(accept) is fhir


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "invalid"), (404, "not-found"), (412, "processing"), (413, "too-long"),
     (415, "not-supported"), (500, "exception"), (503, "transient"), (418, "processing"),
     (599, "exception")],
)  # fmt: skip
def test_each_status_maps_to_a_fhir_issue_type(status: int, code: str) -> None:
    assert_outcome(operation_outcome(status, "field x is wrong"), code, "field x")


async def test_a_500_outcome_says_nothing_but_internal_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import service.pipeline

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("cannot assess Ms Jane Example, MRN 0042")

    monkeypatch.setattr(service.pipeline, "assess", broken)
    async with running_app() as app:
        response = await app.client.post(
            HOOK_URL, json=hook_request(), headers={"Accept": FHIR_JSON}
        )
    assert response.status_code == 500
    assert response.json() == operation_outcome(500, "internal error")
    assert b"Jane" not in response.content and b"Traceback" not in response.content


# --- fhirAuthorization.scope: SMART v1 and v2 -----------------------------------------------


def test_v1_and_v2_read_scopes_grant_the_same_interactions() -> None:
    v1 = parse_scope("patient/Observation.read")
    v2 = parse_scope("patient/Observation.rs")
    assert v1 is not None and v2 is not None
    assert (v1.context, v1.resource_type, v1.permissions) == (
        v2.context,
        v2.resource_type,
        v2.permissions,
    )
    assert (v1.smart_version, v2.smart_version) == (1, 2)


def test_v2_scopes_keep_their_search_parameters() -> None:
    scope = parse_scope(
        "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/"
        "observation-category|laboratory&status=final"
    )
    assert scope == ResourceScope(
        context="patient",
        resource_type="Observation",
        permissions=frozenset("rs"),
        query=(
            ("category", "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"),
            ("status", "final"),
        ),
        smart_version=2,
    )


@pytest.mark.parametrize(
    "token",
    ["launch", "openid", "fhirUser", "offline_access", "launch/patient", "patient/Observation",
     "patient/Observation.sr", "patient/Observation.rrs", "patient/observation.read",
     "clinic/Observation.read", "patient/Observation.read?x=1", "epic.scope/x"],
)  # fmt: skip
def test_tokens_that_are_not_resource_scopes_are_skipped_not_refused(token: str) -> None:
    assert parse_scope(token) is None


def test_wildcards_and_write_scopes() -> None:
    (everything, write) = parse_scopes("user/*.read  launch  system/Condition.write")
    assert everything.allows_search("Observation") and everything.allows_read("Patient")
    assert not write.allows_search("Condition") and write.permissions == frozenset("cud")


SCOPE_STRINGS = {
    "SMART v1": "launch openid fhirUser patient/Patient.read patient/Condition.read "
    "patient/Observation.read",
    "SMART v2": "launch openid fhirUser patient/Patient.r patient/Condition.rs "
    "patient/Observation.rs?category=laboratory",
    "SMART v2 wildcard": "user/*.rs",
}


@pytest.mark.parametrize("name", sorted(SCOPE_STRINGS))
async def test_both_scope_syntaxes_are_accepted_and_give_the_same_cards(name: str) -> None:
    """The same request, once per scope syntax: accepted, and the cards agree."""
    base = hook_request()
    base["fhirServer"] = "https://ehr.example.org/fhir/r4"
    base["fhirAuthorization"] = {
        "access_token": "opaque-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": SCOPE_STRINGS["SMART v1"],
        "subject": "liver-cds",
        "patient": base["context"]["patientId"],
    }
    other = copy.deepcopy(base)
    other["fhirAuthorization"]["scope"] = SCOPE_STRINGS[name]
    async with running_app() as app:
        first = await app.client.post(HOOK_URL, json=base)
        second = await app.client.post(HOOK_URL, json=other)
    assert first.status_code == second.status_code == 200, second.text
    assert _without_uuids(first.json()) == _without_uuids(second.json())


def test_the_parsed_scopes_ride_on_the_checked_request() -> None:
    from service.protocol import find_service, parse_hook_request

    service = find_service("liver-metastasis-resectability")
    assert service is not None
    request = hook_request(
        fhirServer="https://ehr.example.org/fhir/r4",
        fhirAuthorization={
            "access_token": "t",
            "token_type": "bearer",
            "expires_in": 60,
            "scope": SCOPE_STRINGS["SMART v2"],
            "subject": "liver-cds",
        },
    )
    auth = parse_hook_request(request, service).fhir_authorization
    assert auth is not None
    assert auth.may_search("Observation") and auth.may_search("Condition")
    assert not auth.may_search("Patient")  # patient/Patient.r: read by id, no search
    assert "opaque" not in repr(auth) and "access_token" not in repr(auth)


# --- extension and unknown fields, everywhere ------------------------------------------------

EXTENSION = {"com.example.ehr.build": "2026.1", "org.example.trace": {"id": "abc"}}


def with_extensions_everywhere(request: dict[str, Any]) -> dict[str, Any]:
    """The request with ``extension`` and an unknown field on every object the spec defines."""
    out = copy.deepcopy(request)
    out["extension"] = EXTENSION
    out["someFutureField"] = {"nested": [1, 2, 3]}
    out["context"]["extension"] = EXTENSION
    out["context"]["someFutureContext"] = "x"
    out["fhirServer"] = "https://ehr.example.org/fhir/r4"
    out["fhirAuthorization"] = {
        "access_token": "opaque",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.rs",
        "subject": "liver-cds",
        "extension": EXTENSION,
        "id_token": "not ours to read",
    }
    out["prefetch"]["notDeclaredByUs"] = {"resourceType": "Practitioner", "id": "p1"}
    return out


async def test_extension_and_unknown_fields_change_nothing_in_the_answer() -> None:
    plain = hook_request()
    decorated = with_extensions_everywhere(plain)
    async with running_app() as app:
        first = await app.client.post(HOOK_URL, json=plain)
        second = await app.client.post(HOOK_URL, json=decorated)
    assert first.status_code == second.status_code == 200, second.text
    assert _without_uuids(first.json()) == _without_uuids(second.json())


async def test_feedback_with_extension_and_unknown_fields_is_stored() -> None:
    item = feedback_item(
        outcome="overridden",
        acceptedSuggestions=None,
        overrideReason={
            "reason": {
                "system": "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes",
                "code": "patient-contraindication",
                "display": "Patient has contraindication to recommended action",
                "extension": EXTENSION,
                "version": "3.0.0",
            },
            "userComment": "portal vein thrombosis on the last CT",
            "extension": EXTENSION,
        },
        extension=EXTENSION,
        someFutureField=True,
    )
    del item["acceptedSuggestions"]
    accepted = feedback_item(extension=EXTENSION)
    accepted["acceptedSuggestions"][0]["extension"] = EXTENSION
    async with running_app() as app:
        response = await app.client.post(
            FEEDBACK_URL, json={"feedback": [item, accepted], "extension": EXTENSION, "other": 1}
        )
        stored = app.store.feedback
    assert response.status_code == 200, response.text
    saved, kept = stored
    assert kept.accepted_suggestions == (accepted["acceptedSuggestions"][0]["id"],)
    assert saved.override_reason_code == "patient-contraindication"
    assert saved.override_reason_system == (
        "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"
    )


def _without_uuids(body: Any) -> Any:
    """The response with every uuid blanked: each call mints fresh card and suggestion ids."""
    if isinstance(body, dict):
        return {k: ("-" if k == "uuid" else _without_uuids(v)) for k, v in body.items()}
    if isinstance(body, list):
        return [_without_uuids(v) for v in body]
    return body


# --- the OpenAPI document describes both error bodies ---------------------------------------


async def test_both_error_bodies_match_the_openapi_document() -> None:
    from jsonschema import Draft202012Validator

    from service.openapi import openapi_document

    document = openapi_document(make_settings())
    responses = document["paths"]["/cds-services/{id}"]["post"]["responses"]
    for status in ("400", "404", "412", "413", "415", "500"):
        assert set(responses[status]["content"]) == {"application/json", FHIR_JSON}
    assert "content" not in responses["401"]

    def validator(name: str) -> Draft202012Validator:
        root = copy.deepcopy(document)
        root["$ref"] = f"#/components/schemas/{name}"
        return Draft202012Validator(root)

    async with running_app() as app:
        two = await app.client.post(HOOK_URL, json=_bad({"drop": "hookInstance"}))
        fhir = await app.client.post(
            HOOK_URL, json=_bad({"drop": "hookInstance"}), headers={"Accept": FHIR_JSON}
        )
    assert not list(validator("Error").iter_errors(two.json()))
    assert not list(validator("OperationOutcome").iter_errors(fhir.json()))
    assert list(validator("OperationOutcome").iter_errors(two.json()))  # not interchangeable
