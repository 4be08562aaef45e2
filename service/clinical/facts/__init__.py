"""From the records :func:`service.fhir.read.select` hands over to the facts of clinical-rules §2.

Reading (types, dates, units, statuses) is ``service/fhir/read.py``: it hands over one
:class:`~service.fhir.read.Selection` of typed records, and this package works on those
alone. It does the clinical aggregation fhir-mapping.md describes, one function per fact
group of clinical-rules §2, each returning a small frozen record:

================================  =============  ===============================================
function                          module         facts
================================  =============  ===============================================
:func:`tumour_facts`              ``tumour``     tumour kind, confirmation, primary site
:func:`extrahepatic_facts`        ``tumour``     extrahepatic disease and its sites,
                                                 macrovascular invasion
:func:`fong_inputs`               ``tumour``     node status, disease-free interval (Fong)
:func:`imaging_facts`             ``imaging``    lesion count, largest size, FLR, with the
                                                 imaging lookback
:func:`distribution_facts`        ``imaging``    distribution, single segment / section, surface
:func:`liver_function_facts`      ``liver``      labs in the lookback, cirrhosis, ascites,
                                                 encephalopathy, bilirubin above normal,
                                                 jaundice, symptoms
:func:`portal_hypertension_facts` ``liver``      portal hypertension and how it was judged
:func:`performance_facts`         ``patient``    ECOG (or Karnofsky)
:func:`procedure_facts`           ``patient``    previous liver resection (fhir-mapping §8)
:func:`patient_facts`             ``patient``    age, deceased (fhir-mapping §9)
================================  =============  ===============================================

:func:`facts_from_selection` composes them into :class:`~service.clinical.model.Facts`;
``base`` holds what they share (the evidence builder, the Conditions indexed once). Pure:
the evaluation time is an argument.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from service.clinical.facts.base import (
    LAB_LABELS,
    LAB_ORDER,
    LAB_UNITS_HIGHER_IS_WORSE,
    Builder,
    ConditionIndex,
    completed_months,
    completed_years,
    format_value,
    index_conditions,
    refs_text,
)
from service.clinical.facts.imaging import (
    DistributionFacts,
    ImagingFacts,
    distribution_facts,
    imaging_facts,
    stale_distribution,
)
from service.clinical.facts.liver import (
    LiverFunctionFacts,
    PortalHypertensionFacts,
    liver_function_facts,
    portal_hypertension_facts,
)
from service.clinical.facts.patient import (
    PatientFacts,
    PerformanceFacts,
    ProcedureFacts,
    karnofsky_to_ecog,
    patient_facts,
    performance_facts,
    procedure_facts,
)
from service.clinical.facts.tumour import (
    ExtrahepaticFacts,
    FongInputs,
    TumourFacts,
    extrahepatic_facts,
    fong_inputs,
    primary_conditions,
    tumour_facts,
)
from service.clinical.model import DataQualityNote, Facts
from service.clinical.thresholds import DEFAULT_THRESHOLDS, Thresholds
from service.fhir import codes
from service.fhir.read import ObservationRead, Selection, select

__all__ = [
    "LAB_LABELS",
    "LAB_ORDER",
    "LAB_UNITS_HIGHER_IS_WORSE",
    "ConditionIndex",
    "DistributionFacts",
    "ExtrahepaticFacts",
    "FongInputs",
    "ImagingFacts",
    "LiverFunctionFacts",
    "PatientFacts",
    "PerformanceFacts",
    "PortalHypertensionFacts",
    "ProcedureFacts",
    "TumourFacts",
    "completed_months",
    "completed_years",
    "distribution_facts",
    "extract_facts",
    "extrahepatic_facts",
    "facts_from_selection",
    "fong_inputs",
    "format_value",
    "imaging_facts",
    "index_conditions",
    "karnofsky_to_ecog",
    "liver_function_facts",
    "patient_facts",
    "performance_facts",
    "portal_hypertension_facts",
    "primary_conditions",
    "procedure_facts",
    "tumour_facts",
]


def extract_facts(
    resources: Iterable[Any],
    *,
    patient_id: str,
    at: datetime,
    notes: Iterable[DataQualityNote] = (),
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    procedures_checked: bool = True,
) -> Facts:
    """Facts of one patient from raw resource dicts of any type (see ``engine.assess``)."""
    return facts_from_selection(
        select(resources, patient_id, procedures_checked=procedures_checked),
        patient_id=patient_id,
        at=at,
        notes=notes,
        thresholds=thresholds,
    )


def facts_from_selection(
    sel: Selection,
    *,
    patient_id: str,
    at: datetime,
    notes: Iterable[DataQualityNote] = (),
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Facts:
    """The facts of clinical-rules §2 from one selection, one fact group at a time."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    t = thresholds
    b = Builder(notes=[*notes, *sel.notes])
    if sel.other_patient:
        b.notes.append(
            DataQualityNote(
                f"{sel.other_patient} resource(s)", "belong to another patient; ignored"
            )
        )
    by_kind: dict[str, list[ObservationRead]] = {}
    for o in sel.observations:
        if o.time > at:
            b.notes.append(DataQualityNote(o.ref, "dated after the evaluation time; not used"))
            continue
        by_kind.setdefault(o.kind, []).append(o)

    conditions = index_conditions(sel)
    cirrhosis = bool(conditions.with_tag(codes.CIRRHOSIS))
    tumour = tumour_facts(conditions, cirrhosis, b)
    extrahepatic = extrahepatic_facts(conditions, tumour.primary_site, b)
    imaging = imaging_facts(by_kind, at, t, b)
    where = distribution_facts(tumour, imaging.sites, b)
    liver = liver_function_facts(conditions, by_kind, tumour, at, t, b)
    portal = portal_hypertension_facts(conditions, liver, tumour.kinds, t, b)
    performance = performance_facts(by_kind, at, t, b)
    procedures = procedure_facts(sel.procedures, sel.procedures_checked, b)
    patient = patient_facts(sel.patient, at, b)
    fong = fong_inputs(conditions, by_kind, tumour)

    if sel.status_missing:
        b.assumptions.append(
            "Observation without a status counted as a final result: "
            + refs_text(sel.status_missing)
        )
    if sel.timezone_assumed:
        b.assumptions.append(
            "Times without a timezone read as UTC: " + refs_text(sel.timezone_assumed)
        )

    return Facts(
        patient_id=patient_id,
        evaluated_at=at,
        tumour_kind=tumour.kind,
        hcc_and_secondary_found="hcc" in tumour.kinds and "secondary" in tumour.kinds,
        liver_conditions=tumour.liver_refs,
        confirmed=tumour.confirmed,
        primary_site=tumour.primary_site,
        distribution=where.distribution,
        single_segment=where.single_segment,
        segment=where.segment,
        surface=where.surface,
        lesion_count=imaging.lesion_count,
        largest_cm=imaging.largest_cm,
        macrovascular_invasion=extrahepatic.macrovascular_invasion,
        macrovascular_presumed=extrahepatic.macrovascular_invasion,
        extrahepatic_disease=extrahepatic.disease,
        cirrhosis=liver.cirrhosis,
        portal_hypertension=portal.status,
        ascites_points=liver.ascites_points,
        ascites_assumed=liver.ascites_assumed,
        encephalopathy_points=liver.encephalopathy_points,
        encephalopathy_assumed=liver.encephalopathy_assumed,
        ecog=performance.ecog,
        ecog_from_karnofsky=performance.from_karnofsky,
        flr_percent=imaging.flr_percent,
        age=patient.age,
        symptoms=liver.symptoms,
        node_positive_primary=fong.node_positive_primary,
        disease_free_interval_months=fong.disease_free_interval_months,
        labs=liver.labs,
        stale={
            **liver.stale,
            **performance.stale,
            **imaging.stale,
            **stale_distribution(where, imaging),
        },
        evidence=tuple(b.evidence),
        data_quality=tuple(b.notes),
        liver_kinds=tumour.kinds,
        observed={**imaging.observed, **performance.observed},
        assumptions=tuple(b.assumptions),
        primary_condition=tumour.primary_condition,
        unspecified_codes=tumour.unspecified_codes,
        liver_code_unstated=tumour.liver_code_unstated,
        single_section=where.single_section,
        section=where.section,
        extrahepatic_limited=extrahepatic.limited,
        extrahepatic_sites=extrahepatic.sites,
        portal_hypertension_basis=portal.basis,
        bilirubin_above_normal=liver.bilirubin_above_normal,
        bilirubin_uln=liver.bilirubin_uln,
        jaundice=liver.jaundice,
        prior_liver_resection=procedures.prior_liver_resection,
        prior_liver_resection_date=procedures.date,
        prior_liver_resection_source=procedures.source,
        procedures_checked=procedures.checked,
        deceased=patient.deceased,
        imaging_date=imaging.imaging_date,
    )
