"""The services this server offers, declared once as data.

Discovery (``GET /cds-services``) is generated from these declarations and the prefetch
resolver reads its templates from them, so the queries the EHR is asked to prefetch and
the ones the service runs itself when a key is missing can never drift apart (the HAPI
FHIR CDS Hooks pattern). The codes in the observation query are those of
``fhir-mapping.md`` §5 (LOINC) and §6 (the project's liver-findings code system).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from service import SERVICE_ID

LOINC = "http://loinc.org"
LIVER_FINDINGS = "https://liver-cds.org/fhir/CodeSystem/liver-findings"

OBSERVATION_LOINC_CODES: tuple[str, ...] = (
    "1975-2",  # bilirubin total
    "14631-6",  # bilirubin total (SI)
    "1751-7",  # albumin
    "6301-6",  # INR
    "34714-6",  # INR
    "777-3",  # platelets
    "2160-0",  # creatinine
    "14682-9",  # creatinine (SI)
    "2951-2",  # sodium
    "1834-1",  # AFP
    "2039-6",  # CEA
    "89247-1",  # ECOG performance status
    "89243-0",  # Karnofsky performance status
    "21889-1",  # tumour size
    "21906-3",  # TNM N category
)
"""Observation.code values the rules read (fhir-mapping.md §5), in the table's order."""

OBSERVATION_LOCAL_CODES: tuple[str, ...] = ("lesion-count", "future-liver-remnant")
"""liver-findings codes read from Observations (fhir-mapping.md §6)."""


def _observation_codes() -> str:
    tokens = [f"{LOINC}|{code}" for code in OBSERVATION_LOINC_CODES]
    tokens += [f"{LIVER_FINDINGS}|{code}" for code in OBSERVATION_LOCAL_CODES]
    return ",".join(tokens)


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
        }
    ),
    usage_requirements=(
        "Needs the patient's Conditions and the Observations listed in the prefetch, either "
        "prefetched or readable from fhirServer with fhirAuthorization. Advisory only: every "
        "option is for multidisciplinary team review."
    ),
)

SERVICES: tuple[ServiceDeclaration, ...] = (LIVER_METASTASIS_RESECTABILITY,)
"""Every service this server offers, in discovery order."""

_BY_ID: Mapping[str, ServiceDeclaration] = MappingProxyType({s.id: s for s in SERVICES})


def find_service(service_id: str) -> ServiceDeclaration | None:
    """The declaration with this id, or ``None`` (the caller answers 404)."""
    return _BY_ID.get(service_id)
