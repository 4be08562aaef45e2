"""Labs within the lookback, Child-Pugh's clinical grades, bilirubin above normal, jaundice,
symptoms and portal hypertension (fhir-mapping §4 and §5; clinical-rules §2, v2)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final, cast

import msgspec

from service.clinical.facts.base import (
    LAB_ORDER,
    LAB_UNITS_HIGHER_IS_WORSE,
    Builder,
    ConditionIndex,
    format_value,
    refs_text,
    with_original,
)
from service.clinical.facts.tumour import TumourFacts
from service.clinical.model import (
    LabName,
    Measurement,
    PortalHypertension,
    PortalHypertensionBasis,
    Symptom,
    TumourKind,
)
from service.clinical.thresholds import Thresholds
from service.fhir import codes
from service.fhir.read import (
    ConditionRead,
    ObservationRead,
)


class LiverFunctionFacts(msgspec.Struct, frozen=True, gc=False):
    labs: dict[LabName, Measurement]
    stale: dict[str, datetime]
    cirrhosis: bool
    ascites_points: int | None
    ascites_assumed: bool
    encephalopathy_points: int | None
    encephalopathy_assumed: bool
    bilirubin_above_normal: bool
    bilirubin_uln: Measurement | None
    jaundice: bool
    symptoms: frozenset[Symptom]


def _measurement(o: ObservationRead) -> Measurement:
    q = o.quantity
    assert q is not None
    return Measurement(
        q.value,
        q.unit,
        o.time,
        o.ref,
        q.original,
        q.unrounded if q.unrounded != q.value else None,
        q.reported,
        q.reported_code,
    )


def _uln(o: ObservationRead, t: Thresholds) -> float:
    """The bilirubin upper limit of normal for ``o``, in the unit it was reported in."""
    if o.reference_high is not None:
        return o.reference_high
    q = o.quantity
    assert q is not None
    return t.bilirubin_uln_umol_l if q.reported_code == "umol/L" else t.bilirubin_uln_mg_dl


def _reported(o: ObservationRead) -> float:
    q = o.quantity
    assert q is not None
    return q.reported if q.reported is not None else q.unrounded


def liver_function_facts(
    conditions: ConditionIndex,
    by_kind: dict[str, list[ObservationRead]],
    tumour: TumourFacts,
    at: datetime,
    t: Thresholds,
    b: Builder,
) -> LiverFunctionFacts:
    """Labs within the lookback (the latest wins), Child-Pugh's clinical grades, and (v2)
    bilirubin above normal, jaundice and the symptoms."""
    window_start = at - timedelta(days=t.lookback_days)
    show = tumour.kind is not None
    labs, latest, stale = _latest_labs(by_kind, window_start, b if show else None)

    cirrhosis_refs = [c.ref for c in conditions.with_tag(codes.CIRRHOSIS)]
    if cirrhosis_refs:
        b.add("cirrhosis", "yes", None, *cirrhosis_refs)
    ascites_points, ascites_assumed = _severity(
        [c for c in conditions.current if c.tags & _CHILD_PUGH_ASCITES]
    )
    enceph_points, enceph_assumed = _severity(conditions.with_tag(codes.ENCEPHALOPATHY))

    bili = latest.get("bilirubin")
    above_normal, uln, lab_jaundice = _bilirubin_against_limits(bili, t)
    fresh_bilirubin = [o for o in by_kind.get("bilirubin", ()) if o.time >= window_start]
    jaundice_conditions = conditions.with_tag(codes.SYMPTOM_PREFIX + "jaundice")
    resolved = _resolved_jaundice(jaundice_conditions, fresh_bilirubin, t)
    still_jaundiced = [c.ref for c in jaundice_conditions if c.ref not in resolved]
    jaundice = lab_jaundice or bool(still_jaundiced)
    if show:
        _bilirubin_evidence(b, bili, uln, above_normal, lab_jaundice, still_jaundiced, resolved)

    symptoms: set[Symptom] = set()
    symptom_refs: list[str] = []
    for c in conditions.current:
        for tag in c.tags:
            if tag.startswith(codes.SYMPTOM_PREFIX):
                symptom = cast(Symptom, tag[len(codes.SYMPTOM_PREFIX) :])
                if symptom == "jaundice" and c.ref in resolved:
                    continue  # a jaundice Condition so resolved is not the symptom either
                symptoms.add(symptom)
                symptom_refs.append(c.ref)
    if symptoms and show:
        b.add("symptoms", ", ".join(sorted(symptoms)), None, *symptom_refs)

    return LiverFunctionFacts(
        labs=labs,
        stale=stale,
        cirrhosis=bool(cirrhosis_refs),
        ascites_points=ascites_points,
        ascites_assumed=ascites_assumed,
        encephalopathy_points=enceph_points,
        encephalopathy_assumed=enceph_assumed,
        bilirubin_above_normal=above_normal,
        bilirubin_uln=uln,
        jaundice=jaundice,
        symptoms=frozenset(symptoms),
    )


def _latest_labs(
    by_kind: dict[str, list[ObservationRead]], window_start: datetime, b: Builder | None
) -> tuple[dict[LabName, Measurement], dict[str, ObservationRead], dict[str, datetime]]:
    """The latest result of each lab within the lookback (on a tie the worse one), the
    Observations they came from, and the labs whose latest result is too old (stale)."""
    labs: dict[LabName, Measurement] = {}
    latest_obs: dict[str, ObservationRead] = {}
    stale: dict[str, datetime] = {}
    for lab in LAB_ORDER:
        found = by_kind.get(lab)
        if not found:
            continue
        if len(found) == 1:
            latest = found[0]
        else:
            sign = 1.0 if lab in LAB_UNITS_HIGHER_IS_WORSE else -1.0
            latest = max(
                found,
                key=lambda o: (o.time, sign * (o.quantity.unrounded if o.quantity else 0.0)),
            )
        if latest.time < window_start:
            stale[lab] = latest.time
            continue
        labs[lab] = m = _measurement(latest)
        latest_obs[lab] = latest
        if b is not None:
            text = with_original(format_value(lab, m.value, m.unit), m.original)
            b.add(lab, text, m.date, m.source)
    return labs, latest_obs, stale


def _bilirubin_against_limits(
    bili: ObservationRead | None, t: Thresholds
) -> tuple[bool, Measurement | None, bool]:
    """(above the upper limit of normal, the limit used, above the jaundice cut-off) for the
    latest bilirubin: compared unrounded, in the unit it was reported in, against the number
    written for that unit (v2)."""
    if bili is None or bili.quantity is None:
        return False, None, False
    unit = bili.quantity.reported_code or bili.quantity.unit
    limit = _uln(bili, t)
    value = _reported(bili)
    source = bili.ref if bili.reference_high is not None else "default upper limit of normal"
    cutoff = t.jaundice_bilirubin_umol_l if unit == "umol/L" else t.jaundice_bilirubin_mg_dl
    return value > limit, Measurement(limit, unit, bili.time, source), value > cutoff


def _resolved_jaundice(
    jaundice_conditions: Sequence[ConditionRead],
    fresh_bilirubin: Sequence[ObservationRead],
    t: Thresholds,
) -> set[str]:
    """The jaundice Conditions a bilirubin at or below its upper limit of normal, within the
    lookback, followed: dated on or after the day of the onset, else of the recordedDate.
    Without either date a Condition never expires (the cautious reading)."""
    resolved: set[str] = set()
    for c in jaundice_conditions:
        start = c.onset or c.recorded
        if start is not None and any(
            o.time.date() >= start.date() and _reported(o) <= _uln(o, t) for o in fresh_bilirubin
        ):
            resolved.add(c.ref)
    return resolved


def _bilirubin_evidence(
    b: Builder,
    bili: ObservationRead | None,
    uln: Measurement | None,
    above_normal: bool,
    lab_jaundice: bool,
    still_jaundiced: Sequence[str],
    resolved: set[str],
) -> None:
    if bili is not None and uln is not None:
        value = f"{_reported(bili):g} {uln.unit}"
        if above_normal:
            where = "referenceRange" if bili.reference_high is not None else "default"
            b.add(
                "bilirubin_above_normal",
                f"{value} above the upper limit of normal {uln.value:g} {uln.unit} ({where})",
                bili.time,
                bili.ref,
            )
        if lab_jaundice:
            b.add("jaundice", f"yes: bilirubin {value}", bili.time, bili.ref)
    if still_jaundiced:
        b.add("jaundice", "yes: jaundice recorded", None, *still_jaundiced)
    if resolved:
        b.assumptions.append(
            "Jaundice recorded earlier is taken as resolved: a normal bilirubin followed it ("
            + refs_text(sorted(resolved))
            + ")."
        )


_CHILD_PUGH_ASCITES: Final = frozenset({codes.ASCITES, codes.MALIGNANT_ASCITES})
"""Malignant ascites scores ascites in Child-Pugh too (fhir-mapping §4, v2)."""


def _severity(found: Sequence[ConditionRead]) -> tuple[int | None, bool]:
    """Child-Pugh points of ascites / encephalopathy, and whether 'mild' was assumed."""
    if not found:
        return None, False
    known = [c.severity_points for c in found if c.severity_points is not None]
    if known:
        return max(known), False
    return 2, True


class PortalHypertensionFacts(msgspec.Struct, frozen=True, gc=False):
    status: PortalHypertension
    basis: PortalHypertensionBasis


def portal_hypertension_facts(
    conditions: ConditionIndex,
    liver: LiverFunctionFacts,
    liver_kinds: frozenset[TumourKind],
    t: Thresholds,
    b: Builder,
) -> PortalHypertensionFacts:
    """present (a code; or ascites, not malignant, with cirrhosis or hcc), suspected
    (cirrhosis, platelets < 100), not-excluded (cirrhosis, 100 <= platelets < 150), unknown
    (cirrhosis and no platelet count in the lookback), absent otherwise."""
    ph_refs = [c.ref for c in conditions.with_tag(codes.PORTAL_HYPERTENSION)]
    if ph_refs:
        b.add("portal_hypertension", "present (recorded)", None, *ph_refs)
        return PortalHypertensionFacts("present", "condition")
    ascites_refs = [c.ref for c in conditions.with_tag(codes.ASCITES)]
    if ascites_refs and (liver.cirrhosis or "hcc" in liver_kinds):
        why = "cirrhosis" if liver.cirrhosis else "hcc"
        b.add("portal_hypertension", f"present (ascites with {why})", None, *ascites_refs)
        return PortalHypertensionFacts("present", "ascites")
    if not liver.cirrhosis:
        return PortalHypertensionFacts("absent", "no-cirrhosis")
    platelets = liver.labs.get("platelets")
    if platelets is None:
        b.add(
            "portal_hypertension",
            f"unknown (cirrhosis, no platelet count from the last {t.lookback_days} days)",
            None,
        )
        return PortalHypertensionFacts("unknown", "unknown")
    count = platelets.exact
    status: PortalHypertension
    if count < t.platelets_portal_hypertension:
        status, how = "suspected", f"< {t.platelets_portal_hypertension:g}"
    elif count < t.platelets_portal_hypertension_excluded:
        status, how = "not-excluded", f"< {t.platelets_portal_hypertension_excluded:g}"
    else:
        status, how = "absent", f">= {t.platelets_portal_hypertension_excluded:g}"
    b.add(
        "portal_hypertension",
        f"{status} (cirrhosis and platelets {count:g} 10^9/L {how})",
        platelets.date,
        platelets.source,
    )
    return PortalHypertensionFacts(status, "platelets")
