"""The service's OpenAPI 3.1 description, served at ``GET /openapi.json``.

Written from the CDS Hooks 2.0 specification (the draft in ``shared/reference`` is
1.1-era: it lacks ``fhirAuthorization.subject``, ``selectionBehavior``'s 2.0 rules,
``overrideReasons``, feedback, ``isRecommended``, ``autolaunchable``, ``systemActions``).
Schemas use JSON Schema 2020-12 (OpenAPI 3.1), so the 2.0 rules that are more than types
are written down too: no empty strings or arrays, ``summary`` under 140 characters,
``selectionBehavior`` required with suggestions, ``display`` required on override
reasons, ``appContext`` only on ``smart`` links.

Request schemas say what the service accepts (a ``patient-view`` request with the
context it reads); the service ids, hook and prefetch keys come from the service
declarations, so this document cannot drift from discovery. The integrator-facing
patterns (patientId as a FHIR id, identifiers without control characters) are the same
ones ``service/protocol`` checks.
"""

from __future__ import annotations

from typing import Any

from service import __version__
from service.protocol.declaration import SERVICES
from service.settings import Settings

IDENTIFIER_PATTERN = r"^(?=.*\S)[^\x00-\x1f\x7f-\x9f]+$"
"""Non-blank, no control characters: hookInstance, userId, card and suggestion ids."""
FHIR_ID_PATTERN = r"^[A-Za-z0-9\-.]+$"
BASE_URL_PATTERN = r"^https?://[A-Za-z0-9\-.]+(:[0-9]{1,4})?(/[A-Za-z0-9\-._~%!$&'()*+,;=:@/]*)?$"

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _error(description: str) -> dict[str, Any]:
    """An error answer: the 2.0 shape with an OperationOutcome beside it, or the bare
    OperationOutcome for a client that prefers ``application/fhir+json``
    (service/protocol/responses.py)."""
    return {
        "description": description,
        "content": {
            "application/json": {"schema": _ref("Error")},
            "application/fhir+json": {"schema": _ref("OperationOutcome")},
        },
    }


def _schemas() -> dict[str, Any]:
    text = {"type": "string", "minLength": 1}
    identifier = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": IDENTIFIER_PATTERN}
    prefetch_keys = sorted({key for service in SERVICES for key in service.prefetch})
    hooks = sorted({service.hook for service in SERVICES})
    resource_or_null = {
        "description": "A FHIR R4 resource (often a searchset Bundle), or null for no data.",
        "type": ["object", "null"],
        "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string", "pattern": "^[A-Z][A-Za-z]+$"}},
    }
    return {
        "Error": {
            "type": "object",
            "description": (
                "CDS Hooks 2.0 error body: `error` is the message (it names the field); "
                "`outcome` says the same as a FHIR OperationOutcome (CDS Hooks 3.0 ballot)."
            ),
            "required": ["error", "outcome"],
            "properties": {"error": text, "outcome": _ref("OperationOutcome")},
        },
        "OperationOutcome": {
            "type": "object",
            "description": (
                "FHIR R4 OperationOutcome with one issue; `diagnostics` is the message. Sent "
                "alone as application/fhir+json when the client prefers that media type."
            ),
            "required": ["resourceType", "issue"],
            "properties": {
                "resourceType": {"const": "OperationOutcome"},
                "issue": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["severity", "code", "diagnostics"],
                        "properties": {
                            "severity": {"enum": ["fatal", "error", "warning", "information"]},
                            "code": {"type": "string", "pattern": "^[a-z][a-z-]*$"},
                            "diagnostics": text,
                        },
                    },
                },
            },
        },
        "Coding": {
            "type": "object",
            "description": "CDS Hooks Coding (a trimmed FHIR Coding).",
            "required": ["code", "system"],
            "properties": {"code": text, "system": text, "display": text},
        },
        "DiscoveryResponse": {
            "type": "object",
            "required": ["services"],
            "properties": {"services": {"type": "array", "items": _ref("Service")}},
        },
        "Service": {
            "type": "object",
            "required": ["hook", "description", "id"],
            "properties": {
                "hook": text,
                "title": text,
                "description": text,
                "id": text,
                "prefetch": {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": text,
                },
                "usageRequirements": text,
                "version": {
                    "type": "string",
                    "pattern": r"^\d+\.\d+\.\d+$",
                    "description": "The CDS Hooks specification version implemented (2.0.1).",
                },
                "extension": {"type": "object"},
            },
        },
        "HookRequest": {
            "type": "object",
            "description": (
                "A patient-view call. Unknown fields and `extension` are ignored; null for an "
                "optional field is read as absent."
            ),
            "required": ["hook", "hookInstance", "context"],
            "properties": {
                "hook": {"type": "string", "enum": hooks},
                "hookInstance": identifier,
                "fhirServer": {
                    "type": "string",
                    "maxLength": 2048,
                    "pattern": BASE_URL_PATTERN,
                    "description": (
                        "Base URL of the EHR's FHIR server. Required with fhirAuthorization. "
                        "Only servers the caller is trusted for are contacted (https; "
                        "loopback http in development)."
                    ),
                },
                "fhirAuthorization": _ref("FhirAuthorization"),
                "context": _ref("PatientViewContext"),
                "prefetch": {
                    "type": "object",
                    "description": (
                        "Prefetched data by key (" + ", ".join(prefetch_keys) + "): a resource, "
                        "a searchset Bundle, or null. A missing key is fetched from fhirServer."
                    ),
                    "additionalProperties": resource_or_null,
                },
                "extension": {"type": "object"},
            },
            "dependentRequired": {"fhirAuthorization": ["fhirServer"]},
        },
        "PatientViewContext": {
            "type": "object",
            "required": ["userId", "patientId"],
            "properties": {
                "userId": {
                    **identifier,
                    "description": "The user, e.g. Practitioner/123.",
                },
                "patientId": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 200,
                    "pattern": FHIR_ID_PATTERN,
                    "description": "FHIR id of the patient whose chart is open.",
                },
                "encounterId": {
                    "type": "string",
                    "minLength": 1,
                    "pattern": r"\S",
                },
            },
        },
        "FhirAuthorization": {
            "type": "object",
            "required": ["access_token", "token_type", "expires_in", "scope", "subject"],
            "properties": {
                "access_token": {"type": "string", "pattern": r"\S"},
                "token_type": {"type": "string", "enum": ["Bearer"]},
                "expires_in": {"type": "integer", "minimum": 0},
                "scope": {
                    "type": "string",
                    "pattern": r"\S",
                    "description": (
                        "SMART scopes, v1 (patient/Observation.read) or v2 "
                        "(patient/Observation.rs, optionally ?search-parameters) syntax."
                    ),
                },
                "subject": {"type": "string", "pattern": r"\S"},
                "patient": {"type": "string", "pattern": r"\S"},
            },
        },
        "CdsServiceResponse": {
            "type": "object",
            "required": ["cards"],
            "properties": {
                "cards": {"type": "array", "items": _ref("Card")},
                "systemActions": {"type": "array", "minItems": 1, "items": _ref("Action")},
            },
        },
        "Card": {
            "type": "object",
            "required": ["summary", "indicator", "source"],
            "properties": {
                "uuid": text,
                "summary": {"type": "string", "minLength": 1, "maxLength": 139},
                "detail": text,
                "indicator": {"type": "string", "enum": ["info", "warning", "critical"]},
                "source": _ref("Source"),
                "suggestions": {"type": "array", "minItems": 1, "items": _ref("Suggestion")},
                "selectionBehavior": {"type": "string", "enum": ["at-most-one", "any"]},
                "overrideReasons": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"allOf": [_ref("Coding"), {"required": ["display"]}]},
                },
                "links": {"type": "array", "minItems": 1, "items": _ref("Link")},
            },
            "dependentRequired": {"suggestions": ["selectionBehavior"]},
        },
        "Source": {
            "type": "object",
            "required": ["label"],
            "properties": {
                "label": text,
                "url": {"type": "string", "format": "uri", "minLength": 1},
                "icon": {"type": "string", "format": "uri", "minLength": 1},
                "topic": _ref("Coding"),
            },
        },
        "Suggestion": {
            "type": "object",
            "required": ["label"],
            "properties": {
                "label": text,
                "uuid": text,
                "isRecommended": {"type": "boolean"},
                "actions": {"type": "array", "minItems": 1, "items": _ref("Action")},
            },
        },
        "Action": {
            "type": "object",
            "required": ["type", "description"],
            "properties": {
                "type": {"type": "string", "enum": ["create", "update", "delete"]},
                "description": text,
                "resource": {"type": "object", "minProperties": 1},
                "resourceId": text,
            },
        },
        "Link": {
            "type": "object",
            "required": ["label", "url", "type"],
            "properties": {
                "label": text,
                "url": {"type": "string", "format": "uri", "minLength": 1},
                "type": {"type": "string", "enum": ["absolute", "smart"]},
                "appContext": text,
                "autolaunchable": {"type": "boolean"},
            },
            "if": {"properties": {"type": {"const": "absolute"}}},
            "then": {"not": {"required": ["appContext"]}},
        },
        "FeedbackRequest": {
            "type": "object",
            "required": ["feedback"],
            "properties": {"feedback": {"type": "array", "items": _ref("Feedback")}},
        },
        "Feedback": {
            "type": "object",
            "description": "Epic's `overrideReasons` spelling is accepted for `overrideReason`.",
            "required": ["card", "outcome", "outcomeTimestamp"],
            "properties": {
                "card": identifier,
                "outcome": {"type": "string", "enum": ["accepted", "overridden"]},
                "outcomeTimestamp": {
                    "type": "string",
                    "format": "date-time",
                    "description": "RFC 3339 date-time with a time zone (UTC expected).",
                },
                "acceptedSuggestions": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["id"],
                        "properties": {"id": identifier},
                    },
                },
                "overrideReason": _ref("OverrideReason"),
            },
            "if": {"properties": {"outcome": {"const": "accepted"}}},
            "then": {"required": ["acceptedSuggestions"]},
        },
        "OverrideReason": {
            "type": "object",
            "properties": {
                "reason": {
                    "type": "object",
                    "required": ["code"],
                    "properties": {
                        "code": {**identifier},
                        "system": {"type": "string", "maxLength": 4000},
                        "display": {"type": "string", "maxLength": 4000},
                    },
                },
                "userComment": {"type": "string", "maxLength": 4000},
            },
        },
        "Status": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": text, "reason": text},
        },
    }


def openapi_document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI document, with ``settings.public_url`` as the server."""
    service_ids = [service.id for service in SERVICES]
    service_id = {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "The service id from discovery.",
        "schema": {"type": "string", "enum": service_ids},
    }
    security: list[dict[str, list[str]]] = [{}, {"cdsClientJwt": []}]
    json_body = {"application/json": {"schema": _ref("HookRequest")}}
    common_errors = {
        "401": {"description": "Authentication failed (bare, no body)."},
        "404": _error("No service with this id."),
        "413": _error("Body larger than LIVER_CDS_MAX_BODY_BYTES."),
        "415": _error("Body not sent as application/json."),
        "500": _error("Unexpected fault (generic message; details only in the log)."),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Liver CDS (CDS Hooks 2.0)",
            "version": __version__,
            "description": (
                "CDS Hooks 2.0 service on patient-view: resectability of liver metastases and "
                "primary liver cancer, with treatment options for MDT review. Errors are "
                '`{"error": "...", "outcome": <OperationOutcome>}`, or the bare OperationOutcome '
                "with `Accept: application/fhir+json`; 401 is bare."
            ),
        },
        "servers": [{"url": settings.public_base}],
        "paths": {
            "/cds-services": {
                "get": {
                    "operationId": "discovery",
                    "summary": "Discovery: the services offered, their hooks and prefetch.",
                    "security": security,
                    "responses": {
                        "200": {
                            "description": "The services.",
                            "content": {"application/json": {"schema": _ref("DiscoveryResponse")}},
                        },
                        "401": common_errors["401"],
                    },
                }
            },
            "/cds-services/{id}": {
                "post": {
                    "operationId": "callService",
                    "summary": "Call a service with a hook request; answers cards.",
                    "security": security,
                    "parameters": [service_id],
                    "requestBody": {"required": True, "content": json_body},
                    "responses": {
                        "200": {
                            "description": "Cards (an empty array when there is nothing to say).",
                            "content": {"application/json": {"schema": _ref("CdsServiceResponse")}},
                        },
                        "400": _error("Malformed JSON or request (the message names the field)."),
                        "412": _error(
                            "The data cannot be obtained: no prefetch and no usable FHIR access."
                        ),
                        **common_errors,
                    },
                }
            },
            "/cds-services/{id}/feedback": {
                "post": {
                    "operationId": "feedback",
                    "summary": "Feedback on cards: accepted suggestions and overrides.",
                    "security": security,
                    "parameters": [service_id],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("FeedbackRequest")}},
                    },
                    "responses": {
                        "200": {
                            "description": "Stored (repeats are idempotent).",
                            "content": {
                                "application/json": {
                                    "schema": {"type": "object", "maxProperties": 0}
                                }
                            },
                        },
                        "400": _error("Malformed feedback (the message names the item and field)."),
                        "503": _error("The database is unavailable; retry."),
                        **common_errors,
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness: the process answers.",
                    "responses": {
                        "200": {
                            "description": "Alive.",
                            "content": {"application/json": {"schema": _ref("Status")}},
                        }
                    },
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Readiness: started and the database answers.",
                    "responses": {
                        "200": {
                            "description": "Ready.",
                            "content": {"application/json": {"schema": _ref("Status")}},
                        },
                        "503": {
                            "description": "Not ready.",
                            "content": {"application/json": {"schema": _ref("Status")}},
                        },
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1 document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "cdsClientJwt": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": (
                        "CDS Hooks 2.0 client JWT (ES384/RS384; aud = the URL called). "
                        "Required when LIVER_CDS_AUTH=required."
                    ),
                }
            },
        },
    }
