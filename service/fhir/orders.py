"""Reading the draft orders of an ``order-sign`` call: which ones are liver-directed, and what.

``context.draftOrders`` is a Bundle of the orders the clinician is about to sign. Only
ServiceRequests can be liver-directed procedures; MedicationRequests and every other
resource type are out of scope (clinical-rules §8) and are passed over without a note.
A ServiceRequest is liver-directed when one of its codings is

* a treatment option of this service's own code system (so a ServiceRequest that a
  patient-view suggestion created, and the clinician then signs, is checked), or
* a verified CPT code of a liver-directed procedure (:data:`CPT_ORDER_OPTIONS`), or
* an ICD-10-PCS liver resection code of fhir-mapping §8 (:data:`PCS_ORDER_OPTIONS`).

What is not recognised is not guessed at: an order with only other codes is not checked
(no card), which is the hook's own rule for services that do not know an order.
Pure and lenient: a malformed entry is skipped and named in a data-quality note.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from service.codesystems import TREATMENT_OPTION_SYSTEM
from service.fhir.codes import (
    CPT,
    ICD10PCS,
    LIVER_KIND_TAGS,
    LIVER_SITES,
    SNOMED,
    condition_tags,
    resection_extent,
)
from service.fhir.read import resource_ref
from service.notes import DataQualityNote

__all__ = [
    "CPT_ORDER_OPTIONS",
    "DraftOrder",
    "read_draft_orders",
]

HEMIHEPATECTOMY: Final = frozenset({"resection-right-hepatectomy", "resection-left-hepatectomy"})

CPT_ORDER_OPTIONS: Final[dict[str, frozenset[str]]] = {
    # Hepatectomy (CPT 47120-47130).
    "47120": frozenset({"resection-local"}),  # partial lobectomy (segmentectomy, wedge)
    "47122": HEMIHEPATECTOMY,  # trisegmentectomy: larger than either hemihepatectomy
    "47125": frozenset({"resection-left-hepatectomy"}),  # total left lobectomy
    "47130": frozenset({"resection-right-hepatectomy"}),  # total right lobectomy
    # Ablation of one or more liver tumours.
    "47370": frozenset({"ablation"}),  # laparoscopic, radiofrequency
    "47371": frozenset({"ablation"}),  # laparoscopic, cryosurgical
    "47380": frozenset({"ablation"}),  # open, radiofrequency
    "47381": frozenset({"ablation"}),  # open, cryosurgical
    "47382": frozenset({"ablation"}),  # percutaneous, radiofrequency
    "47383": frozenset({"ablation"}),  # percutaneous, cryoablation
    # Radiopharmaceutical therapy by intra-arterial particulate administration (Y-90).
    "79445": frozenset({"tare"}),
}
"""Verified CPT codes of liver-directed procedures -> the treatment options they are.

47122 (trisegmentectomy) is read as either hemihepatectomy: every hemihepatectomy check
applies to it, and it agrees with the assessment only where a hemihepatectomy is offered.
TACE has no code of its own: CPT 37243 (vascular embolization for tumours, organ ischaemia
or infarction) is read as TACE only when the order names a liver site or one of the
patient's liver Conditions (or a liver malignancy code) as its reason
(:data:`CPT_LIVER_CONTEXT_OPTIONS`), because the
same code serves uterine, renal and other embolisations. HAIC (pump placement), SBRT and a
transplant referral have no code verified for this purpose here: they are recognised by
the treatment-option code system only (docs/integrator.md)."""

PCS_ORDER_OPTIONS: Final[dict[str, frozenset[str]]] = {
    "0FT1": frozenset({"resection-right-hepatectomy"}),  # resection of right lobe liver
    "0FT2": frozenset({"resection-left-hepatectomy"}),  # resection of left lobe liver
    "0FB0": frozenset({"resection-local"}),  # excision of liver
    "0FB1": frozenset({"resection-local"}),  # excision of right lobe liver
    "0FB2": frozenset({"resection-local"}),  # excision of left lobe liver
}
"""ICD-10-PCS resection codes of fhir-mapping §8 (by their first four characters) -> the
treatment options they are. clinical-rules §8 counts "a resection code of fhir-mapping §8"
as liver-directed; a code is used only when :func:`service.fhir.codes.resection_extent`
reads it as a resection (seven characters; an excision with qualifier X is a biopsy)."""

CPT_LIVER_CONTEXT_OPTIONS: Final[dict[str, frozenset[str]]] = {"37243": frozenset({"tace"})}
"""CPT codes that are a liver-directed option only when the order points at the liver."""


@dataclass(frozen=True)
class DraftOrder:
    """One liver-directed draft ServiceRequest, as the order check needs it."""

    ref: str
    """``ServiceRequest/<id>``, or the entry's place when it has no usable id."""
    options: frozenset[str]
    """The treatment options this order is (codes of the treatment-option system)."""
    label: str
    """What the card calls the order: its code text or display, else the option's code."""


def read_draft_orders(
    bundle: Mapping[str, Any] | None, liver_conditions: frozenset[str] = frozenset()
) -> tuple[list[DraftOrder], list[DataQualityNote]]:
    """The liver-directed ServiceRequests of ``draftOrders``, in the Bundle's order.

    ``liver_conditions`` are the patient's liver-malignancy Condition references
    (``Condition/<id>``); an order whose ``reasonReference`` names one counts as pointing
    at the liver (for codes that need it).
    """
    orders: list[DraftOrder] = []
    notes: list[DataQualityNote] = []
    entries = bundle.get("entry") if bundle is not None else None
    if not isinstance(entries, list):
        return orders, notes
    for index, entry in enumerate(entries):
        place = f"draftOrders entry {index}"
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            notes.append(DataQualityNote(place, "skipped: the entry has no resource"))
            continue
        if resource.get("resourceType") != "ServiceRequest":
            continue  # medication and other orders are out of scope (§8)
        order = _read(resource, index, liver_conditions)
        if order is not None:
            orders.append(order)
    return orders, notes


def _read(
    resource: Mapping[str, Any], index: int, liver_conditions: frozenset[str]
) -> DraftOrder | None:
    code = resource.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    if not isinstance(codings, list):
        return None
    options: set[str] = set()
    display: str | None = None
    liver = _points_at_liver(resource, liver_conditions)
    for coding in codings:
        if not isinstance(coding, dict):
            continue
        system, value = coding.get("system"), coding.get("code")
        if not isinstance(value, str):
            continue
        found: frozenset[str] = frozenset()
        if system == TREATMENT_OPTION_SYSTEM:
            found = frozenset({value})
        elif system == CPT:
            found = CPT_ORDER_OPTIONS.get(value, frozenset())
            if not found and liver:
                found = CPT_LIVER_CONTEXT_OPTIONS.get(value, frozenset())
        elif system == ICD10PCS and resection_extent(system, value) is not None:
            found = PCS_ORDER_OPTIONS.get(value.strip().upper()[:4], frozenset())
        if found:
            options |= found
            if display is None and isinstance(coding.get("display"), str):
                display = coding["display"]
    if not options:
        return None
    text = code.get("text") if isinstance(code, dict) else None
    label = _printable(text) or _printable(display) or ", ".join(sorted(options))
    return DraftOrder(resource_ref(resource, index), frozenset(options), label)


def _points_at_liver(resource: Mapping[str, Any], liver_conditions: frozenset[str]) -> bool:
    sites = resource.get("bodySite")
    if isinstance(sites, list):
        for site in sites:
            codings = site.get("coding") if isinstance(site, dict) else None
            for coding in codings if isinstance(codings, list) else ():
                if (
                    isinstance(coding, dict)
                    and coding.get("system") == SNOMED
                    and coding.get("code") in LIVER_SITES
                ):
                    return True
    reasons = resource.get("reasonReference")
    if isinstance(reasons, list):
        for reason in reasons:
            ref = reason.get("reference") if isinstance(reason, dict) else None
            if isinstance(ref, str) and ref in liver_conditions:
                return True
    codes = resource.get("reasonCode")
    if isinstance(codes, list):
        # A reason given as a code (EHRs attach the diagnosis so): a liver malignancy code of
        # fhir-mapping §2 points at the liver as a reasonReference to its Condition does.
        for concept in codes:
            codings = concept.get("coding") if isinstance(concept, dict) else None
            for coding in codings if isinstance(codings, list) else ():
                if isinstance(coding, dict) and (
                    condition_tags(coding.get("system"), coding.get("code")) & LIVER_KIND_TAGS
                ):
                    return True
    return False


def _printable(value: object, limit: int = 80) -> str:
    """Order text for a card: one line, printable, bounded (it is the EHR's own text)."""
    if not isinstance(value, str):
        return ""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
