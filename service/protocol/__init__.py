"""CDS Hooks 2.0 protocol: request, feedback and discovery shapes, body limits, and errors.

Pure checking and shaping: nothing here does I/O beyond reading the request body, and
nothing here knows about FHIR fetching, the clinical rules, cards or storage. ``app.py``
calls these functions in the order of the request pipeline.
"""

from service.protocol.declaration import SERVICES, ServiceDeclaration, find_service
from service.protocol.discovery import discovery_document
from service.protocol.errors import (
    BadRequest,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ProtocolError,
    UnsupportedMediaType,
)
from service.protocol.feedback import parse_feedback
from service.protocol.request import FhirAuthorization, HookRequest, parse_hook_request

__all__ = [
    "SERVICES",
    "BadRequest",
    "FhirAuthorization",
    "HookRequest",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "ProtocolError",
    "ServiceDeclaration",
    "UnsupportedMediaType",
    "discovery_document",
    "find_service",
    "parse_feedback",
    "parse_hook_request",
]
