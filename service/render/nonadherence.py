"""The HL7 override (non-adherence) reason codes the cards may offer beside the service's own.

Code system ``http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes`` (HL7 CDS
WG, trial use; the code system the CDS Hooks 3.0 ballot suggests for ``overrideReasons``).
Each code and display below was checked against the published code system; the cards may
offer only these, with exactly this display (``cards/override-reasons.yaml`` is checked at
start-up), so a clinician editing the file cannot invent an HL7 code. Codes are the
"clinically relevant" point-of-care selection of the ballot's ValueSet
``non-adherence-reason-clinical`` that fit a resectability assessment, a data-needed card or
an order check.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"

DISPLAYS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "cds-not-applicable": "PC CDS does not apply to patient",
        "recipient-disagrees-evidence": (
            "Recipient disagrees with recommendation because of issues with the evidence"
        ),
        "recipient-concerns-outcomes": "Recipient has concerns regarding potential health outcomes",
        "does-not-align-preferences": (
            "Recommendation does not align with patient preferences or values"
        ),
        "action-completed": "Recommended action was already completed",
        "patient-contraindication": "Patient has contraindication to recommended action",
        "service-not-available": "Treatment or service is not practically available",
    }
)
"""Code -> the code system's display, for the codes of ValueSet non-adherence-reason-clinical
this service may offer."""
