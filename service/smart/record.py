"""The patient's record for the full view, and the hook's own evaluation of it.

The full view must say what the card said. So it never evaluates on its own: it reads the
record with the service's prefetch templates (the queries discovery asks the EHR to
prefetch), hands it to :func:`service.pipeline.evaluate` as a hook request's prefetch,
and keeps the resources for the pictures (segment map, trends), which read them with the
engine's reader :func:`service.fhir.read.select`.

Two sources: the EHR's FHIR server with the SMART user's token (:func:`fetch_record`),
or a demo fixture, which already is a hook request with prefetch.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service import SERVICE_ID
from service.clinical.model import Assessment
from service.fhir import prefetch
from service.fhir.client import FhirClients
from service.fhir.read import Selection, select
from service.pipeline import evaluate
from service.protocol.declaration import ServiceDeclaration, find_service
from service.protocol.errors import ProtocolError
from service.protocol.request import parse_hook_request
from service.settings import Settings


class RecordError(Exception):
    """The record could not be had or read; ``message`` is fit for the page."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def service_declaration() -> ServiceDeclaration:
    service = find_service(SERVICE_ID)
    assert service is not None
    return service


def _resource_type(template: str) -> str:
    """``Condition?patient=...`` -> ``Condition``; ``Patient/{{...}}`` -> ``Patient``."""
    return template.lstrip("/").split("?", 1)[0].split("/", 1)[0]


async def fetch_record(
    *,
    settings: Settings,
    clients: FhirClients,
    iss: str,
    access_token: str,
    patient_id: str,
    user_id: str = "",
) -> dict[str, Any]:
    """The patient's record from the EHR as a hook request whose prefetch holds every key.

    Every key is fetched with the user's token within the service's call budget; a key
    the server could not give completely is left out, so the pipeline treats it exactly
    as a hook call would (an optional key becomes a note, an essential one a 412 here).
    """
    service = service_declaration()
    context = {"patientId": patient_id, "userId": user_id or "Practitioner/unknown"}
    try:
        data = await prefetch.resolve(
            templates=service.prefetch,
            prefetch=None,
            context=context,
            fhir_server=iss,
            access_token=access_token,
            user_id=context["userId"],
            clients=clients,
            settings=settings,
            deadline=time.monotonic() + settings.call_budget_s,
        )
    except prefetch.DataUnavailable as exc:
        raise RecordError(f"the patient's record could not be read: {exc.message}") from None
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in data.resources:
        by_type.setdefault(str(resource.get("resourceType")), []).append(resource)
    prefetched: dict[str, Any] = {}
    for key, template in service.prefetch.items():
        if key not in data.fetched_keys:
            continue
        kind = _resource_type(template)
        found = by_type.get(kind, [])
        if prefetch.expected_type(template) is not None:  # a read: the resource itself
            prefetched[key] = found[0] if found else None
        else:
            prefetched[key] = {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": r} for r in found],
            }
    return {
        "hook": service.hook,
        "hookInstance": str(uuid.uuid4()),
        "context": context,
        "prefetch": prefetched,
    }


@dataclass(frozen=True)
class EvaluatedRecord:
    assessment: Assessment
    selection: Selection
    """The record as the engine reads it (for the segment map and the trends)."""
    patient_id: str
    banner: str = ""
    """Who the record belongs to, as the page's header says it (name, birth date, sex),
    so the clinician can check it is the patient the EHR has open."""


def patient_banner(resources: list[dict[str, Any]], patient_id: str) -> str:
    """``"Jane Doe, born 1962-05-04, female"`` from the Patient resource ('' without one)."""
    patient = next(
        (r for r in resources if r.get("resourceType") == "Patient" and r.get("id") == patient_id),
        None,
    )
    if patient is None:
        return ""
    parts = []
    names = patient.get("name")
    name = names[0] if isinstance(names, list) and names and isinstance(names[0], dict) else {}
    text = name.get("text")
    if not isinstance(text, str):
        given_names = name.get("given")
        given_list = given_names if isinstance(given_names, list) else []
        given = [g for g in given_list if isinstance(g, str)]
        family = name.get("family")
        text = " ".join([*given, family] if isinstance(family, str) else given)
    if text:
        parts.append(text[:200])
    birth = patient.get("birthDate")
    if isinstance(birth, str) and birth:
        parts.append(f"born {birth[:10]}")
    gender = patient.get("gender")
    if isinstance(gender, str) and gender:
        parts.append(gender[:20])
    return ", ".join(parts)


async def evaluate_record(
    body: dict[str, Any], *, settings: Settings, at: datetime
) -> EvaluatedRecord:
    """The hook's evaluation of a hook request ``body`` (prefetch only, nothing fetched)."""
    service = service_declaration()
    try:
        hook = parse_hook_request(body, service)
        evaluation = await evaluate(service, hook, settings=settings, at=at)
    except ProtocolError as exc:
        raise RecordError(f"the record could not be read: {exc.message}", 400) from None
    except (prefetch.PrefetchShapeError, prefetch.DataUnavailable) as exc:
        raise RecordError(f"the record could not be read: {exc.message}") from None
    return EvaluatedRecord(
        assessment=evaluation.assessment,
        selection=select(evaluation.resources, hook.patient_id),
        patient_id=hook.patient_id,
        banner=patient_banner(evaluation.resources, hook.patient_id),
    )
