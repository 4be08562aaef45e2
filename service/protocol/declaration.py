"""The services this server offers, declared once as data.

Discovery (``GET /cds-services``) is generated from these declarations and the prefetch
resolver reads its templates from them, so the queries the EHR is asked to prefetch and
the ones the service runs itself when a key is missing can never drift apart (the HAPI
FHIR CDS Hooks pattern). The codes in the observation query are the one list of the
Observation codes the rules read, ``service.fhir.codes.OBSERVATION_CODES`` (LOINC, and the
project's liver-findings code system).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from service import ORDER_CHECK_SERVICE_ID, SERVICE_ID
from service.fhir import codes

LOINC = codes.LOINC
LIVER_FINDINGS = codes.LIVER_FINDINGS


def _observation_codes() -> str:
    """``system|code`` of every Observation code the rules read, from the one list of them
    (``service.fhir.codes.OBSERVATION_CODES``): the query and the reading cannot drift."""
    return ",".join(f"{system}|{code}" for code, (system, _) in codes.OBSERVATION_CODES.items())


@dataclass(frozen=True)
class ServiceDeclaration:
    """One CDS Service as discovery describes it (CDS Hooks 2.0, Discovery)."""

    id: str
    hook: str
    title: str
    description: str
    prefetch: Mapping[str, str]
    """Prefetch key -> FHIR query template with ``{{context.x}}``-style tokens."""
    usage_requirements: str | None = None

    def discovery_entry(self) -> dict[str, Any]:
        """This service's object in the discovery response; optional fields omitted, never null."""
        entry: dict[str, Any] = {
            "hook": self.hook,
            "title": self.title,
            "description": self.description,
            "id": self.id,
        }
        if self.prefetch:
            entry["prefetch"] = dict(self.prefetch)
        if self.usage_requirements:
            entry["usageRequirements"] = self.usage_requirements
        return entry


LIVER_METASTASIS_RESECTABILITY = ServiceDeclaration(
    id=SERVICE_ID,
    hook="patient-view",
    title="Liver metastasis and liver cancer resectability",
    description=(
        "When a chart opens for a patient with liver metastases or primary liver cancer, "
        "assesses resectability from the recorded conditions, imaging findings, liver "
        "function, performance status and future liver remnant, and lists the treatment "
        "options to discuss, each with its risks, for multidisciplinary team review."
    ),
    prefetch=MappingProxyType(
        {
            "patient": "Patient/{{context.patientId}}",
            "conditions": "Condition?patient={{context.patientId}}",
            "observations": (
                "Observation?patient={{context.patientId}}&code=" + _observation_codes()
            ),
            "procedures": "Procedure?patient={{context.patientId}}",
        }
    ),
    usage_requirements=(
        "Needs the patient's Conditions and the Observations listed in the prefetch, either "
        "prefetched or readable from fhirServer with fhirAuthorization; the Procedures are "
        "optional (without them the card says previous liver surgery could not be checked). "
        "Advisory only: every option is for multidisciplinary team review."
    ),
)

LIVER_DIRECTED_ORDER_CHECK = ServiceDeclaration(
    id=ORDER_CHECK_SERVICE_ID,
    hook="order-sign",
    title="Liver-directed order check at signing",
    description=(
        "When a liver resection, ablation, embolisation, hepatic arterial infusion, "
        "radiotherapy or transplant-referral order is about to be signed, checks it against "
        "the same liver assessment as the resectability service (liver function, "
        "performance status, previous liver surgery, future liver remnant, tumour burden): "
        "a critical card for a hard stop, a warning when the order is not among the options, "
        "nothing when it agrees. Advisory only: the clinician decides."
    ),
    prefetch=LIVER_METASTASIS_RESECTABILITY.prefetch,
    usage_requirements=(
        "Needs context.draftOrders (a Bundle of the draft orders) and the same prefetch as "
        "the resectability service. Only liver-directed ServiceRequests are checked; "
        "MedicationRequests and other resources are ignored."
    ),
)
"""The order-sign check (clinical-rules §8): declared, not copied. It shares the
resectability service's prefetch (the same object: the two can never ask for different
data), and discovery, authentication, audit, metrics and feedback work for it through the
same generic endpoints."""

SERVICES: tuple[ServiceDeclaration, ...] = (
    LIVER_METASTASIS_RESECTABILITY,
    LIVER_DIRECTED_ORDER_CHECK,
)
"""Every service this server offers, in discovery order."""

_BY_ID: Mapping[str, ServiceDeclaration] = MappingProxyType({s.id: s for s in SERVICES})


def find_service(service_id: str) -> ServiceDeclaration | None:
    """The declaration with this id, or ``None`` (the caller answers 404)."""
    return _BY_ID.get(service_id)
