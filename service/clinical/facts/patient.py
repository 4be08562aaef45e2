"""Performance status, previous liver resection and the patient (clinical-rules §2;
fhir-mapping §8 and §9)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import msgspec

from service.clinical.facts.base import (
    Builder,
    completed_years,
)
from service.clinical.model import (
    DataQualityNote,
    Measurement,
    PriorLiverResection,
)
from service.clinical.thresholds import DEFAULT_THRESHOLDS, Thresholds
from service.fhir.read import (
    ObservationRead,
    PatientRead,
    ProcedureRead,
)


class PerformanceFacts(msgspec.Struct, frozen=True, gc=False):
    ecog: int | None
    from_karnofsky: int | None
    stale: dict[str, datetime]
    observed: dict[str, Measurement]


def performance_facts(
    by_kind: dict[str, list[ObservationRead]], at: datetime, t: Thresholds, b: Builder
) -> PerformanceFacts:
    """ECOG, or Karnofsky mapped to ECOG: the latest within the lookback wins."""
    window_start = at - timedelta(days=t.lookback_days)
    ps: list[tuple[datetime, int, int | None, str]] = []
    for o in by_kind.get("ecog", ()):
        assert o.integer is not None
        ps.append((o.time, o.integer, None, o.ref))
    for o in by_kind.get("karnofsky", ()):
        assert o.integer is not None
        ps.append((o.time, karnofsky_to_ecog(o.integer, t), o.integer, o.ref))
    if not ps:
        return PerformanceFacts(None, None, {}, {})
    when, grade, kps, ref = max(ps, key=lambda p: (p[0], p[1], p[2] is None))
    if when < window_start:
        return PerformanceFacts(None, None, {"ecog": when}, {})
    text = str(grade) if kps is None else f"{grade} (from Karnofsky {kps})"
    b.add("ecog", text, when, ref)
    return PerformanceFacts(grade, kps, {}, {"ecog": Measurement(float(grade), "", when, ref)})


def karnofsky_to_ecog(kps: int, t: Thresholds = DEFAULT_THRESHOLDS) -> int:
    """100-90 -> 0, 80-70 -> 1, 60-50 -> 2, 40-30 -> 3, 20-10 -> 4, 0 -> 5.

    Values between the bands (e.g. 85) fall to the lower band's grade (ECOG 1): the
    conservative reading of an unusual score.
    """
    for minimum, grade in t.karnofsky_to_ecog:
        if kps >= minimum:
            return grade
    return 5


class ProcedureFacts(msgspec.Struct, frozen=True, gc=False):
    prior_liver_resection: PriorLiverResection
    date: datetime | None
    source: str | None
    checked: bool


def procedure_facts(
    procedures: Sequence[ProcedureRead], checked: bool, b: Builder
) -> ProcedureFacts:
    """``hemihepatectomy`` wins over ``other``; the latest of the deciding kind is named."""
    extents: tuple[PriorLiverResection, ...] = ("hemihepatectomy", "other")
    for extent in extents:
        found = [p for p in procedures if p.extent == extent]
        if found:
            latest = max(found, key=lambda p: (p.performed is not None, p.performed))
            when = latest.performed
            b.add(
                "prior_liver_resection",
                f"{extent} ({latest.code})",
                when,
                *(p.ref for p in found),
            )
            return ProcedureFacts(extent, when, latest.ref, checked)
    return ProcedureFacts("none", None, None, checked)


class PatientFacts(msgspec.Struct, frozen=True, gc=False):
    age: int | None
    deceased: bool


def patient_facts(patient: PatientRead | None, at: datetime, b: Builder) -> PatientFacts:
    """Age from birthDate at the evaluation time; deceased (§9)."""
    if patient is None:
        return PatientFacts(None, False)
    deceased = patient.deceased or (patient.deceased_at is not None and patient.deceased_at <= at)
    age: int | None = None
    if patient.birth_date is not None:
        years = completed_years(patient.birth_date.at.date(), at)
        if years < 0:
            b.notes.append(DataQualityNote(patient.ref, "birthDate after evaluation time"))
        else:
            age = years
            precision = patient.birth_date.precision
            suffix = "" if precision == "day" else f" (birth {precision} only: oldest possible)"
            b.add("age", f"{age} years{suffix}", None, patient.ref)
    return PatientFacts(age, deceased)
