"""From the resources :func:`service.fhir.read.select` kept to the facts of clinical-rules.md §2.

Reading (types, dates, units) is ``service/fhir/read.py``; this module does the clinical
aggregation fhir-mapping.md describes: which Conditions are current, the liver tumour kind,
the primary site, body sites -> distribution / single segment / surface, lesion count and
largest size, labs within the lookback window (the latest wins, older ones are stale), ECOG
from ECOG or Karnofsky, FLR, age. Pure: the evaluation time is an argument.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

from service.clinical.model import (
    DataQualityNote,
    Distribution,
    Evidence,
    Facts,
    LabName,
    Measurement,
    PortalHypertension,
    PrimarySite,
    Symptom,
    TumourKind,
)
from service.clinical.thresholds import DEFAULT_THRESHOLDS, Thresholds
from service.fhir import codes
from service.fhir.read import (
    ConditionRead,
    ObservationRead,
    Selection,
    SiteRead,
    age_at,
    select,
)

LAB_UNITS_HIGHER_IS_WORSE: Final = frozenset({"bilirubin", "inr", "creatinine", "afp", "cea"})
"""For two results at the same instant the worse one is kept (deterministic, conservative)."""

LAB_ORDER: Final[tuple[LabName, ...]] = (
    "bilirubin",
    "albumin",
    "inr",
    "platelets",
    "creatinine",
    "sodium",
    "afp",
    "cea",
)
LAB_LABELS: Final[dict[str, str]] = {
    "bilirubin": "bilirubin",
    "albumin": "albumin",
    "inr": "INR",
    "platelets": "platelets",
    "creatinine": "creatinine",
    "sodium": "sodium",
    "afp": "AFP",
    "cea": "CEA",
}
_PRECISION_1: Final = frozenset({"bilirubin", "albumin", "creatinine"})


def completed_months(start: datetime, end: datetime) -> int:
    """Whole calendar months from ``start`` to ``end`` (0 if ``end`` is not later).

    Calendar months, not days / 30.44: an interval from 1 March to 1 March is 12 months
    whether or not it spans 29 February, so Fong's "< 12 months" gives the same point for
    the same dates a clinician counts on a calendar.
    """
    months = (end.year - start.year) * 12 + (end.month - start.month)
    if end.day < start.day:
        months -= 1
    return max(0, months)


def format_value(kind: str, value: float, unit: str) -> str:
    """``2.0 mg/dL``, ``1.3`` (INR), ``95 10^9/L`` — at the reporting precision."""
    text = f"{value:.1f}" if kind in _PRECISION_1 else f"{value:g}"
    return f"{text} {unit}".strip()


def extract_facts(
    resources: Iterable[Any],
    *,
    patient_id: str,
    at: datetime,
    notes: Iterable[DataQualityNote] = (),
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Facts:
    """Facts of one patient from raw resource dicts of any type (see ``engine.assess``)."""
    return facts_from_selection(
        select(resources, patient_id),
        patient_id=patient_id,
        at=at,
        notes=notes,
        thresholds=thresholds,
    )


@dataclass
class _Builder:
    at: datetime
    t: Thresholds
    evidence: list[Evidence]
    notes: list[DataQualityNote]
    assumptions: list[str]

    def add(self, fact: str, value: str, date: datetime | None, *sources: str) -> None:
        self.evidence.append(Evidence(fact, value, date, tuple(dict.fromkeys(sources))))


def facts_from_selection(
    sel: Selection,
    *,
    patient_id: str,
    at: datetime,
    notes: Iterable[DataQualityNote] = (),
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Facts:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    b = _Builder(at, thresholds, [], [*notes, *sel.notes], [])
    if sel.other_patient:
        b.notes.append(
            DataQualityNote(
                f"{sel.other_patient} resource(s)", "belong to another patient; ignored"
            )
        )

    current = [c for c in sel.conditions if c.current]
    all_tags: set[str] = set()
    for c in current:
        all_tags |= c.tags

    # --- liver malignancy (fhir-mapping.md §2) and extrahepatic disease (§4) ------------
    kinds: set[TumourKind] = set()
    liver_conds: list[ConditionRead] = []
    secondary_conds: list[ConditionRead] = []
    extrahepatic_sources: list[str] = []
    for c in current:
        tags = c.tags
        is_liver = False
        if codes.LIVER_HCC in tags:
            kinds.add("hcc")
            is_liver = True
        if codes.LIVER_OTHER in tags:
            kinds.add("other-liver-primary")
            is_liver = True
        if codes.LIVER_SECONDARY in tags or codes.SECONDARY_NET_LIVER in tags:
            kinds.add("secondary")
            secondary_conds.append(c)
            is_liver = True
        if codes.SECONDARY_BY_SITE in tags:
            liver_site = any(s.liver is not None for s in c.sites)
            other_site = any(s.coded and s.liver is None for s in c.sites)
            if liver_site:
                kinds.add("secondary")
                secondary_conds.append(c)
                is_liver = True
            if other_site:
                extrahepatic_sources.append(c.ref)
            if not liver_site and not other_site:
                b.notes.append(
                    DataQualityNote(
                        c.ref, "secondary malignancy without a coded body site; not counted"
                    )
                )
        if codes.EXTRAHEPATIC in tags:
            extrahepatic_sources.append(c.ref)
        if is_liver:
            liver_conds.append(c)

    tumour_kind: TumourKind | None = None
    if "other-liver-primary" in kinds:
        tumour_kind = "other-liver-primary"
    elif "hcc" in kinds:
        tumour_kind = "hcc"
    elif "secondary" in kinds:
        tumour_kind = "secondary"
    confirmed = any(c.confirmed for c in liver_conds)
    liver_refs = tuple(dict.fromkeys(c.ref for c in liver_conds))
    if tumour_kind is not None:
        b.add("tumour_kind", tumour_kind, None, *liver_refs)
        b.add(
            "confirmed",
            "yes" if confirmed else "no (verification status not confirmed)",
            None,
            *liver_refs,
        )

    # --- primary site (§4) ----------------------------------------------------------------
    primary_site: PrimarySite | None = None
    primary_condition: str | None = None
    primary_conds: list[ConditionRead] = []
    if "secondary" in kinds:
        primary_site, primary_condition, primary_conds = _primary_site(
            sel, current, secondary_conds, b
        )
        source = [primary_condition] if primary_condition else []
        b.add("primary_site", primary_site, None, *source)

    # --- observations, split by kind (future-dated ones are not used) -------------------
    by_kind: dict[str, list[ObservationRead]] = {}
    for o in sel.observations:
        if o.time > at:
            b.notes.append(DataQualityNote(o.ref, "dated after the evaluation time; not used"))
            continue
        by_kind.setdefault(o.kind, []).append(o)

    # --- liver lesion sites (§3) -----------------------------------------------------------
    sites: list[tuple[SiteRead, str]] = []
    for c in liver_conds:
        for s in c.sites:
            if (
                codes.SECONDARY_BY_SITE in c.tags
                and s.liver is None
                and not (codes.LIVER_SECONDARY in c.tags or codes.LIVER_HCC in c.tags)
            ):
                continue
            sites.append((s, c.ref))
    size_obs = [o for o in by_kind.get("tumour-size", ()) if o.site is not None and o.site.liver]
    count_obs = by_kind.get("lesion-count", [])
    for o in (*size_obs, *count_obs):
        if o.site is not None and o.site.liver is not None:
            sites.append((o.site, o.ref))
    distribution, single_segment, segment, surface, site_refs = _distribution(sites)
    if tumour_kind is not None:
        detail: str = distribution
        if single_segment and segment:
            detail += f", single segment {segment}"
        if surface:
            detail += ", superficial"
        b.add("distribution", detail, None, *site_refs)

    # --- lesion count and largest size (§6) ------------------------------------------------
    observed: dict[str, Measurement] = {}
    lesion_count: int | None = None
    if count_obs:
        latest = max(count_obs, key=lambda o: (o.time, o.integer or 0))
        lesion_count = latest.integer
        observed["lesion_count"] = Measurement(
            float(latest.integer or 0), "", latest.time, latest.ref
        )
        b.add("lesion_count", str(lesion_count), latest.time, latest.ref)
    elif size_obs:
        distinct: dict[object, ObservationRead] = {}
        for o in size_obs:
            assert o.quantity is not None and o.site is not None
            key: object = ("focus", o.focus) if o.focus else ("site", o.site.key, o.quantity.value)
            distinct.setdefault(key, o)
        lesion_count = len(distinct)
        b.add(
            "lesion_count",
            f"{lesion_count} (distinct tumour-size observations)",
            None,
            *(o.ref for o in distinct.values()),
        )
    largest_cm: float | None = None
    if size_obs:
        last_day = max(o.time.date() for o in size_obs)
        on_day = [o for o in size_obs if o.time.date() == last_day]
        biggest = max(on_day, key=lambda o: o.quantity.value if o.quantity else 0.0)
        assert biggest.quantity is not None
        largest_cm = biggest.quantity.value
        observed["largest_cm"] = Measurement(
            largest_cm, "cm", biggest.time, biggest.ref, biggest.quantity.original
        )
        b.add(
            "largest_cm",
            _with_original(f"{largest_cm:g} cm", biggest.quantity.original),
            biggest.time,
            biggest.ref,
        )

    # --- other conditions (§4) ---------------------------------------------------------
    def refs_with(tag: str) -> list[str]:
        return [c.ref for c in current if tag in c.tags]

    pvt = refs_with(codes.PORTAL_VEIN_THROMBOSIS)
    macrovascular = bool(pvt)
    if macrovascular:
        b.add("macrovascular_invasion", "presumed (portal vein thrombosis)", None, *pvt)
    extrahepatic = bool(extrahepatic_sources)
    if extrahepatic:
        b.add("extrahepatic_disease", "yes", None, *extrahepatic_sources)
    cirrhosis_refs = refs_with(codes.CIRRHOSIS)
    cirrhosis = bool(cirrhosis_refs)
    if cirrhosis:
        b.add("cirrhosis", "yes", None, *cirrhosis_refs)

    ascites_points, ascites_assumed = _severity(current, codes.ASCITES)
    enceph_points, enceph_assumed = _severity(current, codes.ENCEPHALOPATHY)

    symptoms: set[Symptom] = set()
    symptom_refs: list[str] = []
    for c in current:
        for tag in c.tags:
            if tag.startswith(codes.SYMPTOM_PREFIX):
                symptoms.add(cast(Symptom, tag[len(codes.SYMPTOM_PREFIX) :]))
                symptom_refs.append(c.ref)
    if symptoms and tumour_kind is not None:
        b.add("symptoms", ", ".join(sorted(symptoms)), None, *symptom_refs)

    # --- labs (§5), lookback window --------------------------------------------------------
    window_start = at - timedelta(days=thresholds.lookback_days)
    labs: dict[LabName, Measurement] = {}
    stale: dict[str, datetime] = {}
    for lab in LAB_ORDER:
        found = by_kind.get(lab)
        if not found:
            continue
        sign = 1.0 if lab in LAB_UNITS_HIGHER_IS_WORSE else -1.0
        latest = max(
            found, key=lambda o: (o.time, sign * (o.quantity.value if o.quantity else 0.0))
        )
        q = latest.quantity
        assert q is not None
        if latest.time < window_start:
            stale[lab] = latest.time
            continue
        labs[lab] = Measurement(
            q.value,
            q.unit,
            latest.time,
            latest.ref,
            q.original,
            q.unrounded if q.unrounded != q.value else None,
        )
        if tumour_kind is not None:
            b.add(
                lab,
                _with_original(format_value(lab, q.value, q.unit), q.original),
                latest.time,
                latest.ref,
            )

    # --- portal hypertension (§2) ----------------------------------------------------------
    ph_refs = refs_with(codes.PORTAL_HYPERTENSION)
    portal: PortalHypertension = "absent"
    platelets = labs.get("platelets")
    if ph_refs:
        portal = "present"
        b.add("portal_hypertension", "present", None, *ph_refs)
    elif (
        cirrhosis
        and platelets is not None
        and (platelets.value < thresholds.platelets_portal_hypertension)
    ):
        portal = "suspected"
        b.add(
            "portal_hypertension",
            f"suspected (cirrhosis and platelets {platelets.value:g} 10^9/L "
            f"< {thresholds.platelets_portal_hypertension:g})",
            platelets.date,
            *cirrhosis_refs,
            platelets.source,
        )
    elif cirrhosis and platelets is None and tumour_kind is not None:
        b.assumptions.append(
            "Portal hypertension taken as absent: cirrhosis is recorded but there is no "
            f"platelet count from the last {thresholds.lookback_days} days."
        )

    # --- performance status: ECOG or Karnofsky, the latest wins (§2) ---------------------
    ecog: int | None = None
    from_karnofsky: int | None = None
    ps: list[tuple[datetime, int, int | None, str]] = []
    for o in by_kind.get("ecog", ()):
        assert o.integer is not None
        ps.append((o.time, o.integer, None, o.ref))
    for o in by_kind.get("karnofsky", ()):
        assert o.integer is not None
        ps.append((o.time, karnofsky_to_ecog(o.integer, thresholds), o.integer, o.ref))
    if ps:
        when, grade, kps, ref = max(ps, key=lambda p: (p[0], p[1], p[2] is None))
        if when < window_start:
            stale["ecog"] = when
        else:
            ecog, from_karnofsky = grade, kps
            observed["ecog"] = Measurement(float(grade), "", when, ref)
            text = str(grade) if kps is None else f"{grade} (from Karnofsky {kps})"
            b.add("ecog", text, when, ref)

    # --- FLR (§6) --------------------------------------------------------------------------
    flr: float | None = None
    flr_obs = by_kind.get("flr")
    if flr_obs:
        latest = max(flr_obs, key=lambda o: (o.time, -(o.quantity.value if o.quantity else 0.0)))
        assert latest.quantity is not None
        flr = latest.quantity.value
        observed["flr"] = Measurement(flr, "%", latest.time, latest.ref)
        b.add("flr_percent", f"{flr:g} %", latest.time, latest.ref)

    # --- age ----------------------------------------------------------------------------------
    age: int | None = None
    if sel.patient is not None and sel.patient.birth_date is not None:
        age = age_at(sel.patient.birth_date, at)
        if age < 0:
            b.notes.append(DataQualityNote(sel.patient.ref, "birthDate after evaluation time"))
            age = None
        else:
            precision = sel.patient.birth_date.precision
            suffix = "" if precision == "day" else f" (birth {precision} only: oldest possible)"
            b.add("age", f"{age} years{suffix}", None, sel.patient.ref)

    # --- Fong inputs: node status and disease-free interval (§4) -------------------------
    node_positive: bool | None = None
    n_obs = by_kind.get("tnm-n")
    if n_obs:
        latest = max(n_obs, key=lambda o: (o.time, o.text or ""))
        if latest.text in ("N1", "N2", "N3"):
            node_positive = True
        elif latest.text == "N0":
            node_positive = False
    if node_positive is None and any(codes.LYMPH_NODES in c.tags for c in current):
        node_positive = True
    dfi: float | None = None
    liver_onsets = [c.onset for c in secondary_conds if c.onset is not None]
    primary_onsets = [c.onset for c in primary_conds if c.onset is not None]
    if liver_onsets and primary_onsets:
        dfi = float(completed_months(min(primary_onsets), min(liver_onsets)))

    # --- assumptions from reading -----------------------------------------------------------
    if sel.status_missing:
        b.assumptions.append(
            "Observation without a status counted as a final result: " + _refs(sel.status_missing)
        )
    if sel.timezone_assumed:
        b.assumptions.append("Times without a timezone read as UTC: " + _refs(sel.timezone_assumed))

    return Facts(
        patient_id=patient_id,
        evaluated_at=at,
        tumour_kind=tumour_kind,
        hcc_and_secondary_found="hcc" in kinds and "secondary" in kinds,
        liver_conditions=liver_refs,
        confirmed=confirmed,
        primary_site=primary_site,
        distribution=distribution,
        single_segment=single_segment,
        segment=segment,
        surface=surface,
        lesion_count=lesion_count,
        largest_cm=largest_cm,
        macrovascular_invasion=macrovascular,
        macrovascular_presumed=macrovascular,
        extrahepatic_disease=extrahepatic,
        cirrhosis=cirrhosis,
        portal_hypertension=portal,
        ascites_points=ascites_points,
        ascites_assumed=ascites_assumed,
        encephalopathy_points=enceph_points,
        encephalopathy_assumed=enceph_assumed,
        ecog=ecog,
        ecog_from_karnofsky=from_karnofsky,
        flr_percent=flr,
        age=age,
        symptoms=frozenset(symptoms),
        node_positive_primary=node_positive,
        disease_free_interval_months=dfi,
        labs=labs,
        stale=stale,
        evidence=tuple(b.evidence),
        data_quality=tuple(b.notes),
        liver_kinds=frozenset(kinds),
        observed=observed,
        assumptions=tuple(b.assumptions),
        primary_condition=primary_condition,
    )


def karnofsky_to_ecog(kps: int, t: Thresholds = DEFAULT_THRESHOLDS) -> int:
    """100-90 -> 0, 80-70 -> 1, 60-50 -> 2, 40-30 -> 3, 20-10 -> 4, 0 -> 5.

    Values between the bands (e.g. 85) fall to the lower band's grade (ECOG 1): the
    conservative reading of an unusual score.
    """
    for minimum, grade in t.karnofsky_to_ecog:
        if kps >= minimum:
            return grade
    return 5


def _refs(refs: list[str], limit: int = 5) -> str:
    unique = list(dict.fromkeys(refs))
    text = ", ".join(unique[:limit])
    if len(unique) > limit:
        text += f" and {len(unique) - limit} more"
    return text


def _with_original(text: str, original: str | None) -> str:
    return f"{text} (reported {original})" if original else text


def _severity(current: list[ConditionRead], tag: str) -> tuple[int | None, bool]:
    """Child-Pugh points of ascites / encephalopathy, and whether 'mild' was assumed."""
    found = [c for c in current if tag in c.tags]
    if not found:
        return None, False
    known = [c.severity_points for c in found if c.severity_points is not None]
    if known:
        return max(known), False
    return 2, True


def _distribution(
    sites: list[tuple[SiteRead, str]],
) -> tuple[Distribution, bool, str | None, bool, list[str]]:
    """(distribution, single_segment, segment, surface, source refs) per fhir-mapping.md §3."""
    refs = [ref for s, ref in sites if s.liver is not None or s.diffuse]
    if any(s.diffuse for s, _ in sites):
        return "diffuse", False, None, False, refs
    sided = [s for s, _ in sites if s.liver is not None and s.liver.sided]
    if not sided:
        return "unknown", False, None, False, refs
    sides: set[str] = set()
    for s in sided:
        assert s.liver is not None
        if s.liver.side == "both":
            sides |= {"right", "left"}
        elif s.liver.side is not None:
            sides.add(s.liver.side)
    distribution: Distribution = "bilobar" if len(sides) > 1 else cast(Distribution, sides.pop())
    segments = {s.liver.segment if s.liver is not None else None for s in sided}
    single = len(segments) == 1 and None not in segments
    segment = next(iter(segments)) if single else None
    surface = all(s.superficial for s in sided)
    return distribution, single, segment, surface, refs


_LISTED_PRIMARIES: Final[tuple[PrimarySite, ...]] = (
    "colorectal",
    "neuroendocrine",
    "pancreas",
    "breast",
    "lung",
    "stomach",
)
_PRIMARY_SITES: Final[dict[str, PrimarySite]] = {
    codes.PRIMARY_PREFIX + site: site for site in _LISTED_PRIMARIES
}


def _sites_of(c: ConditionRead) -> set[PrimarySite]:
    return {_PRIMARY_SITES[t] for t in c.tags if t in _PRIMARY_SITES}


def _primary_site(
    sel: Selection,
    current: list[ConditionRead],
    secondary_conds: list[ConditionRead],
    b: _Builder,
) -> tuple[PrimarySite, str | None, list[ConditionRead]]:
    """mCODE related-primary link (or C7B.02) first; else the current primary Conditions."""
    by_id = {c.id: c for c in sel.conditions if c.id is not None}
    declared: dict[PrimarySite, list[ConditionRead]] = {}
    declared_refs: dict[PrimarySite, str | None] = {}
    for c in secondary_conds:
        if codes.SECONDARY_NET_LIVER in c.tags:
            declared.setdefault("neuroendocrine", [])
            declared_refs.setdefault("neuroendocrine", None)
        if c.related is None:
            continue
        target = by_id.get(c.related)
        if target is not None and target.verification_status not in ("refuted", "entered-in-error"):
            found = _sites_of(target)
            if len(found) == 1:
                site = found.pop()
            elif not found:
                site = "other"
            else:
                site = "unknown"
            declared.setdefault(site, []).append(target)
            declared_refs.setdefault(site, target.ref)
        elif sel.usable_unclassified(c.related):
            declared.setdefault("other", [])
            declared_refs.setdefault("other", f"Condition/{c.related}")
        else:
            b.notes.append(
                DataQualityNote(
                    c.ref,
                    "related primary cancer Condition not found among the data; "
                    "primary site read from the other Conditions",
                )
            )
    if declared:
        if len(declared) == 1:
            site = next(iter(declared))
            return site, declared_refs[site], declared[site]
        return "unknown", None, []
    by_site: dict[PrimarySite, list[ConditionRead]] = {}
    for c in current:
        for site in _sites_of(c):
            by_site.setdefault(site, []).append(c)
    if len(by_site) == 1:
        site, conds = next(iter(by_site.items()))
        return site, conds[0].ref, conds
    if len(by_site) > 1:
        b.assumptions.append(
            "Primary site unknown: current primary cancers of "
            + " and ".join(sorted(by_site))
            + " were both found."
        )
    return "unknown", None, []
