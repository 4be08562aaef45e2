"""``GET /openapi.json``: the service describes itself, and it behaves as described.

Schemathesis reads the document from the running ASGI app, generates requests for every
operation from it and checks each answer: never a 5xx, only documented statuses and
content types, bodies that match the documented schemas. Bounded (a few dozen examples
per operation) to keep the suite fast. Outbound HTTP goes to a transport that refuses
everything, so no generated fhirServer is ever contacted.
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
import schemathesis
from app_harness import FakeStore, hook_request, make_settings, running_app
from cds_schema import schema_errors
from hypothesis import HealthCheck, settings
from jsonschema import Draft202012Validator
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from service.app import create_app
from service.openapi import openapi_document
from service.protocol.declaration import SERVICES


class RefusingTransport(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused by the test transport", request=request)


APP = create_app(
    make_settings(fhir_timeout_s=0.5, call_budget_s=1.0, metrics_enabled=False),
    store=FakeStore(),
    http_transport=RefusingTransport(),
)
CONFIG = SchemathesisConfig.from_dict(
    # Fuzzing only: the "coverage" phase enumerates boundary cases of every keyword at
    # collection time, minutes on these schemas; the fuzzing phase covers the same ground.
    {"phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}}}
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG)
"""Loaded from the app itself (schemathesis runs its lifespan), as an integrator would."""

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_behaves_as_its_openapi_document_says(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=CHECKS)


# --- the document itself ------------------------------------------------------------------------


def _validator(document: dict[str, Any], name: str) -> Draft202012Validator:
    """A validator for one component schema, with ``#/components/...`` references resolvable."""
    root = copy.deepcopy(document)
    root["$ref"] = f"#/components/schemas/{name}"
    return Draft202012Validator(root)


DOCUMENT = openapi_document(make_settings())


async def test_the_document_is_served_and_names_the_public_url() -> None:
    async with running_app(make_settings(public_url="https://cds.example.org/")) as app:
        response = await app.client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": "https://cds.example.org"}]
    assert {"/cds-services", "/cds-services/{id}", "/cds-services/{id}/feedback"} <= set(
        document["paths"]
    )


def test_service_ids_and_hooks_come_from_the_declarations() -> None:
    (parameter,) = DOCUMENT["paths"]["/cds-services/{id}"]["post"]["parameters"]
    assert parameter["schema"]["enum"] == [s.id for s in SERVICES]
    hook = DOCUMENT["components"]["schemas"]["HookRequest"]["properties"]["hook"]
    assert hook["enum"] == sorted({s.hook for s in SERVICES})


def test_documented_request_and_discovery_schemas_accept_what_the_service_uses() -> None:
    from service.protocol.discovery import discovery_document

    assert not list(
        _validator(DOCUMENT, "DiscoveryResponse").iter_errors(discovery_document(SERVICES))
    )
    request = hook_request(fhirServer="https://ehr.example/fhir")
    assert not list(_validator(DOCUMENT, "HookRequest").iter_errors(request))
    missing = {k: v for k, v in request.items() if k != "hookInstance"}
    assert list(_validator(DOCUMENT, "HookRequest").iter_errors(missing))


RESPONSES: list[Any] = [
    {"cards": []},
    {"cards": [{"summary": "x", "indicator": "info", "source": {"label": "Liver CDS"}}]},
    {"cards": [{"summary": "x" * 140, "indicator": "info", "source": {"label": "L"}}]},
    {"cards": [{"summary": "x", "indicator": "urgent", "source": {"label": "L"}}]},
    {"cards": [{"summary": "x", "indicator": "info", "source": {}}]},
    {
        "cards": [
            {
                "summary": "x",
                "indicator": "info",
                "source": {"label": "L"},
                "suggestions": [{"label": "a"}],
            }
        ]
    },
    {
        "cards": [
            {
                "summary": "x",
                "indicator": "info",
                "source": {"label": "L"},
                "overrideReasons": [{"code": "c", "system": "s"}],
            }
        ]
    },
    {
        "cards": [
            {
                "summary": "x",
                "indicator": "info",
                "source": {"label": "L"},
                "links": [
                    {
                        "label": "g",
                        "url": "https://g.example",
                        "type": "absolute",
                        "appContext": "a",
                    }
                ],
            }
        ]
    },
    {"cards": None},
]


@pytest.mark.parametrize("body", RESPONSES)
def test_documented_response_schema_agrees_with_the_test_schema(body: Any) -> None:
    documented = not list(_validator(DOCUMENT, "CdsServiceResponse").iter_errors(body))
    assert documented == (schema_errors(body) == [])


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        return found + [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


def test_every_schema_is_valid_json_schema_and_every_reference_resolves() -> None:
    components = DOCUMENT["components"]["schemas"]
    for schema_ in components.values():
        Draft202012Validator.check_schema(schema_)
    for ref in _refs(DOCUMENT):
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in components
    for path in DOCUMENT["paths"].values():
        for operation in path.values():
            assert operation["operationId"] and operation["responses"]
