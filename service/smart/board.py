"""The tumour-board summary and the draft "refer to liver MDT" ServiceRequest.

The summary is plain text a clinician copies into the MDT list or prints; the same text
is the ``note`` of a draft ServiceRequest (status ``draft``, intent ``proposal``) for the
``mdt-review`` option (the treatment-option Coding), built like the card's suggestions
(:func:`service.render.proposals.service_request`), so signing it in the EHR refers the
patient with the board's summary attached. The resource is validated with
``fhir.resources`` R4B before it is shown: the page never offers an invalid resource.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from service.clinical.model import Assessment
from service.codesystems import TREATMENT_OPTION_SYSTEM
from service.render.content import CardContent
from service.render.proposals import reason_references, service_request

if TYPE_CHECKING:
    from service.smart.view import FullView


class InvalidResource(Exception):
    """The draft ServiceRequest does not validate (a bug: the page shows no resource)."""


def _day(value: Any) -> str:
    return value.date().isoformat() if value is not None else "date unknown"


def summary_text(view: FullView) -> str:
    """The board summary: verdict and why, disease extent, scores, options, gaps."""
    lines = [
        f"Liver MDT referral: Patient/{view.patient_id}",
        f"Assessed {view.evaluated_at.date().isoformat()} by Liver CDS {view.ruleset_version}"
        " (advisory; for multidisciplinary team review).",
        "",
    ]
    if not view.has_assessment:
        lines.append("No current liver malignancy recorded: nothing to assess.")
        return "\n".join(lines)
    lines += [
        f"Assessment: {view.verdict} (rule {view.rule}: {view.rule_text})",
        view.summary,
    ]
    lines += [f"Note: {note}" for note in view.notes]
    lines += ["", "Findings:"]
    lines += [
        f"- {row.label}: {row.value}" + (f" ({_day(row.date)})" if row.date else "")
        for row in view.facts
    ]
    liver = view.liver
    if liver.involved:
        lines.append(f"- Segments involved: {', '.join(liver.involved)}")
    for lesion in liver.lesions:
        stale = ", stale" if lesion.stale else ""
        lines.append(
            f"- Lesion in {lesion.site}: {lesion.size_cm:g} cm ({_day(lesion.date)}{stale})"
        )
    if liver.flr_percent is not None:
        threshold = (
            f" (threshold {liver.flr_threshold:g} %)" if liver.flr_threshold is not None else ""
        )
        lines.append(f"- Future liver remnant: {liver.flr_percent:g} %{threshold}")
    for resection in liver.resections:
        label = view.option_labels.get(resection.option, resection.option)
        lines.append(
            f"- {label}: removes {', '.join(resection.removed)}; "
            f"remnant {', '.join(resection.remnant)}"
        )
    if view.scores:
        lines += ["", "Scores:"]
        lines += [f"- {score.label}: {score.value}" for score in view.scores]
    lines += ["", "Options to discuss:"]
    for option in view.options:
        status = "recommended" if option.recommended else "offered"
        qualifier = f", {option.qualifier}" if option.qualifier else ""
        lines.append(f"- {option.label}{qualifier} ({status})")
        if option.risks:
            lines.append(f"  Risks: {'; '.join(option.risks)}")
        lines += [f"  For this patient: {text}" for text in option.for_this_patient]
    if view.missing:
        lines += ["", "Missing or out of date:"]
        lines += [
            f"- {row.label}: {row.value}" + (f" since {_day(row.date)}" if row.date else "")
            for row in view.missing
        ]
    return "\n".join(lines)


def mdt_service_request(
    view: FullView, content: CardContent, text: str, assessment: Assessment
) -> dict[str, Any]:
    """The draft ServiceRequest referring the patient to the liver MDT, ``text`` as its note."""
    option = content.options["mdt-review"]
    codings = [
        {"system": TREATMENT_OPTION_SYSTEM, "code": "mdt-review", "display": option.label},
        *option.codings,
    ]
    resource = service_request(
        view.patient_id,
        codings,
        option.label,
        reason_references(assessment.facts.liver_conditions),
        content.texts["more_conditions"],
    )
    resource["note"] = [{"text": text}, *resource.get("note", ())]
    _validate(resource)
    return resource


def _validate(resource: dict[str, Any]) -> None:
    from fhir.resources.R4B.servicerequest import ServiceRequest

    try:
        ServiceRequest.model_validate(resource)
    except ValueError as exc:
        problem = type(exc).__name__
        raise InvalidResource(f"draft ServiceRequest is not valid R4B: {problem}") from None
