"""The CDS Hooks 2.0 service request, checked and turned into a typed value.

The check is strict about what the service uses and tolerant about the rest: unknown
fields and ``extension`` anywhere are ignored (2.0, Extensions), ``null`` for an optional
field is read as "absent" (some clients send it although 2.0 says to omit), and every
refusal names the field and what was expected, so an integrator can fix the call from the
400 alone. Nothing here fetches or interprets FHIR data: prefetch values are only checked
to be a resource (a JSON object) or ``null``; the prefetch resolver reads them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from service.protocol.declaration import ServiceDeclaration
from service.protocol.errors import BadRequest, shorten, type_name
from service.protocol.scopes import ResourceScope, parse_scopes

MAX_ID_LENGTH = 200
"""Longest accepted hookInstance, patientId and userId. FHIR ids are at most 64 characters,
but some EHRs issue longer ones; the bound keeps logs and audit rows sane."""

_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]+")
"""FHIR id characters (R4 ``id`` datatype). patientId is substituted into FHIR queries, so
nothing else (``/``, ``?``, ``&``, ``#``, spaces) may reach a URL."""

NO_CONTROL_CHARACTERS = re.compile(r"[^\x00-\x1f\x7f-\x9f]+")
"""Identifiers end up in log lines and audit rows: no C0/C1 control characters (no forged
log lines). The OpenAPI document uses the same character class."""


@dataclass(frozen=True)
class FhirAuthorization:
    """The OAuth 2.0 bearer token the EHR lends us for its FHIR server (2.0, FHIR Resource Access).

    ``access_token`` is excluded from ``repr`` so that logging this object can never leak it.
    """

    access_token: str = field(repr=False)
    token_type: str
    expires_in: int
    scope: str
    subject: str
    patient: str | None = None
    scopes: tuple[ResourceScope, ...] = ()
    """The resource scopes of ``scope``, SMART v1 and v2 syntax alike (protocol/scopes.py)."""

    def may_search(self, resource_type: str) -> bool:
        """Whether the token's scopes let a search of ``resource_type`` return anything."""
        return any(scope.allows_search(resource_type) for scope in self.scopes)


@dataclass(frozen=True)
class HookRequest:
    """A checked hook request (``patient-view`` or ``order-sign``)."""

    hook: str
    hook_instance: str
    patient_id: str
    user_id: str
    context: Mapping[str, Any]
    """The whole ``context`` object (first-level primitives are prefetch tokens)."""
    encounter_id: str | None = None
    fhir_server: str | None = None
    fhir_authorization: FhirAuthorization | None = None
    prefetch: Mapping[str, Any] | None = field(default=None, repr=False)
    """Prefetch key -> resource (dict) or None; ``None`` when the client sent no prefetch."""
    draft_orders: Mapping[str, Any] | None = field(default=None, repr=False)
    """``context.draftOrders`` of an ``order-sign`` call: a Bundle (checked to be one)."""

    @property
    def access_token(self) -> str | None:
        auth = self.fhir_authorization
        return auth.access_token if auth is not None else None


def parse_hook_request(data: Any, service: ServiceDeclaration) -> HookRequest:
    """Check a parsed request body against CDS Hooks 2.0 and ``service``; raise 400 if wrong."""
    if not isinstance(data, dict):
        raise BadRequest(f"request body must be a JSON object, not {type_name(data)}")

    hook = _required_string(data, "hook")
    if hook != service.hook:
        raise BadRequest(
            f"hook must be '{service.hook}' for service '{service.id}', not {shorten(hook)!r}"
        )
    hook_instance = _identifier(data, "hookInstance", "hookInstance")

    context = data.get("context")
    if context is None:
        raise BadRequest("context is required (an object with userId and patientId)")
    if not isinstance(context, dict):
        raise BadRequest(f"context must be a JSON object, not {type_name(context)}")
    patient_id = _identifier(context, "patientId", "context.patientId")
    if not _FHIR_ID.fullmatch(patient_id):
        raise BadRequest("context.patientId must be a FHIR id (letters, digits, '-' and '.' only)")
    user_id = _identifier(context, "userId", "context.userId")
    encounter_id = _optional_string(context, "encounterId", "context.encounterId")

    fhir_server = _optional_string(data, "fhirServer", "fhirServer")
    if fhir_server is not None:
        _check_base_url(fhir_server)
    fhir_authorization = _fhir_authorization(data.get("fhirAuthorization"))
    if fhir_authorization is not None and fhir_server is None:
        raise BadRequest("fhirServer is required when fhirAuthorization is given")

    prefetch = _prefetch(data.get("prefetch"), service.prefetch)
    draft_orders = _draft_orders(context) if hook == "order-sign" else None

    return HookRequest(
        hook=hook,
        hook_instance=hook_instance,
        patient_id=patient_id,
        user_id=user_id,
        context=context,
        encounter_id=encounter_id,
        fhir_server=fhir_server,
        fhir_authorization=fhir_authorization,
        prefetch=prefetch,
        draft_orders=draft_orders,
    )


def _required_string(obj: Mapping[str, Any], key: str, name: str | None = None) -> str:
    name = name or key
    value = obj.get(key)
    if value is None:
        raise BadRequest(f"{name} is required")
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string, not {type_name(value)}")
    if not value.strip():
        raise BadRequest(f"{name} must not be empty")
    return value


def _optional_string(obj: Mapping[str, Any], key: str, name: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string, not {type_name(value)}")
    if not value.strip():
        raise BadRequest(f"{name} must not be empty (omit it instead)")
    return value


def _identifier(obj: Mapping[str, Any], key: str, name: str) -> str:
    """A required identifier that ends up in logs, audit rows and queries: bounded, printable."""
    value = _required_string(obj, key, name)
    if len(value) > MAX_ID_LENGTH:
        raise BadRequest(f"{name} is longer than {MAX_ID_LENGTH} characters")
    if not NO_CONTROL_CHARACTERS.fullmatch(value):
        raise BadRequest(f"{name} must not contain control characters")
    return value


def _check_base_url(url: str) -> None:
    if len(url) > 2048 or not url.isprintable() or any(ch.isspace() for ch in url):
        raise BadRequest("fhirServer must be an absolute http(s) URL")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a malformed port
    except ValueError:
        raise BadRequest("fhirServer must be an absolute http(s) URL") from None
    del port
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise BadRequest("fhirServer must be an absolute http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise BadRequest("fhirServer must not contain credentials")
    if parts.query or parts.fragment:
        raise BadRequest("fhirServer must be a base URL without query or fragment")


def _fhir_authorization(value: Any) -> FhirAuthorization | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest(f"fhirAuthorization must be a JSON object, not {type_name(value)}")
    access_token = _required_string(value, "access_token", "fhirAuthorization.access_token")
    token_type = _required_string(value, "token_type", "fhirAuthorization.token_type")
    if token_type.lower() != "bearer":
        raise BadRequest("fhirAuthorization.token_type must be 'Bearer'")
    expires_in = value.get("expires_in")
    if expires_in is None:
        raise BadRequest("fhirAuthorization.expires_in is required")
    if isinstance(expires_in, float) and expires_in.is_integer():
        expires_in = int(expires_in)
    if isinstance(expires_in, bool) or not isinstance(expires_in, int):
        raise BadRequest(
            f"fhirAuthorization.expires_in must be an integer, not {type_name(expires_in)}"
        )
    if expires_in < 0:
        raise BadRequest("fhirAuthorization.expires_in must not be negative")
    scope = _required_string(value, "scope", "fhirAuthorization.scope")
    subject = _required_string(value, "subject", "fhirAuthorization.subject")
    patient = _optional_string(value, "patient", "fhirAuthorization.patient")
    return FhirAuthorization(
        access_token=access_token,
        token_type=token_type,
        expires_in=expires_in,
        scope=scope,
        subject=subject,
        patient=patient,
        scopes=parse_scopes(scope),
    )


def _draft_orders(context: Mapping[str, Any]) -> Mapping[str, Any]:
    """``context.draftOrders`` of ``order-sign``: required, a FHIR Bundle with a list of entries.

    What the entries hold is not judged here: the order check reads the ServiceRequests
    and ignores every other resource (MedicationRequest and the like, which the hook
    allows), so an entry of another kind is not an error.
    """
    value = context.get("draftOrders")
    if value is None:
        raise BadRequest("context.draftOrders is required (a Bundle of the draft orders)")
    if not isinstance(value, dict):
        raise BadRequest(f"context.draftOrders must be a FHIR Bundle, not {type_name(value)}")
    if value.get("resourceType") != "Bundle":
        found = value.get("resourceType")
        what = shorten(found) if isinstance(found, str) else "no resourceType"
        raise BadRequest(f"context.draftOrders must be a FHIR Bundle, not {what}")
    entries = value.get("entry")
    if entries is not None and not isinstance(entries, list):
        raise BadRequest(f"context.draftOrders.entry must be an array, not {type_name(entries)}")
    return value


def _prefetch(value: Any, declared: Mapping[str, str]) -> Mapping[str, Any] | None:
    """The prefetch values of the keys the service declared; other keys are dropped.

    An EHR may send more than was asked for (the standard's own example carries a
    ``"user": "123"``); what we did not ask for is not ours to judge, so only declared
    keys must hold a resource or null.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest(f"prefetch must be a JSON object, not {type_name(value)}")
    kept: dict[str, Any] = {}
    for key in declared:
        if key not in value:
            continue
        item = value[key]
        if item is not None and not isinstance(item, dict):
            raise BadRequest(
                f"prefetch.{key} must be a FHIR resource (a JSON object) or null, "
                f"not {type_name(item)}"
            )
        kept[key] = item
    return kept
