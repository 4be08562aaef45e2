"""From the records :func:`service.fhir.read.select` hands over to the facts of clinical-rules §2.

Reading (types, dates, units, statuses) is ``service/fhir/read.py``: it hands over one
:class:`~service.fhir.read.Selection` of typed records, and this module works on those
alone. It does the clinical aggregation fhir-mapping.md describes, one function per fact
group of clinical-rules §2, each returning a small frozen record:

==========================  ===========================================================
:func:`tumour_facts`        tumour kind, confirmation, primary site (§2, §4)
:func:`extrahepatic_facts`  extrahepatic disease and its sites, macrovascular invasion
:func:`imaging_facts`       lesion count, largest size, FLR, with the imaging lookback
:func:`distribution_facts`  distribution, single segment / section, surface (§3)
:func:`liver_function_facts`  labs in the lookback, cirrhosis, ascites, encephalopathy,
                            bilirubin above normal, jaundice, symptoms
:func:`performance_facts`   ECOG (or Karnofsky)
:func:`portal_hypertension_facts`  portal hypertension and how it was judged
:func:`procedure_facts`     previous liver resection (§8)
:func:`patient_facts`       age, deceased (§9)
:func:`fong_inputs`         node status and disease-free interval (§4 Fong)
==========================  ===========================================================

:func:`facts_from_selection` composes them into :class:`~service.clinical.model.Facts`.
Pure: the evaluation time is an argument.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, cast

from service.clinical.model import (
    DataQualityNote,
    Distribution,
    Evidence,
    ExtrahepaticSite,
    Facts,
    LabName,
    Measurement,
    PortalHypertension,
    PortalHypertensionBasis,
    PrimarySite,
    PriorLiverResection,
    Section,
    Symptom,
    TumourKind,
)
from service.clinical.thresholds import DEFAULT_THRESHOLDS, Thresholds
from service.fhir import codes
from service.fhir.read import (
    ConditionRead,
    ObservationRead,
    PatientRead,
    ProcedureRead,
    Selection,
    SiteRead,
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

SECTIONS: Final[dict[str, Section]] = {
    "I": "caudate",
    "II": "left-lateral",
    "III": "left-lateral",
    "IV": "left-medial",
    "V": "right-anterior",
    "VIII": "right-anterior",
    "VI": "right-posterior",
    "VII": "right-posterior",
}
"""Couinaud segment -> section (clinical-rules §2 single_section; IVa/IVb read as IV)."""

_LIMITED_SITES: Final[frozenset[ExtrahepaticSite]] = frozenset({"lung", "lymph-node"})


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


def completed_years(birth: date, at: datetime) -> int:
    """Completed years at ``at`` (the age a clinician counts on a calendar)."""
    d = at.astimezone(UTC).date()
    return d.year - birth.year - ((d.month, d.day) < (birth.month, birth.day))


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


@dataclass
class _Builder:
    """What every fact group writes besides its record: evidence lines, notes, assumptions."""

    evidence: list[Evidence] = field(default_factory=list)
    notes: list[DataQualityNote] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)

    def add(self, fact: str, value: str, date: datetime | None, *sources: str) -> None:
        self.evidence.append(Evidence(fact, value, date, tuple(dict.fromkeys(sources))))


# --------------------------------------------------------------------------------------------
# The Conditions, indexed once
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionIndex:
    """The selection's Conditions as the fact groups read them."""

    current: tuple[ConditionRead, ...]
    """Current Conditions (fhir-mapping §1)."""
    usable: tuple[ConditionRead, ...]
    """Every Condition not refuted or entered in error, whatever its clinical status."""
    by_id: dict[str, ConditionRead]
    linked_unclassified: frozenset[str]
    """Ids of this patient's usable Conditions the rules do not read that a related-primary
    link names (primary site ``other``)."""

    def with_tag(self, tag: str) -> list[ConditionRead]:
        return [c for c in self.current if tag in c.tags]


def index_conditions(sel: Selection) -> ConditionIndex:
    return ConditionIndex(
        current=tuple(c for c in sel.conditions if c.current),
        usable=tuple(c for c in sel.conditions if c.usable),
        by_id={c.id: c for c in sel.conditions if c.id is not None},
        linked_unclassified=sel.linked_unclassified,
    )


# --------------------------------------------------------------------------------------------
# Tumour kind and primary site (fhir-mapping §2 and §4)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TumourFacts:
    kind: TumourKind | None
    kinds: frozenset[TumourKind]
    liver_conditions: tuple[ConditionRead, ...]
    """Every current liver-malignancy Condition (whatever kind)."""
    secondary_conditions: tuple[ConditionRead, ...]
    """The liver Conditions read as secondary (C22.9 included when read so)."""
    confirmed: bool
    primary_site: PrimarySite | None
    primary_condition: str | None
    primary_conditions: tuple[ConditionRead, ...]
    unspecified_codes: tuple[str, ...] = ()
    liver_code_unstated: bool = False

    @property
    def liver_refs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.ref for c in self.liver_conditions))


_LISTED_PRIMARIES: Final[tuple[PrimarySite, ...]] = (
    "colorectal",
    "neuroendocrine",
    "neuroendocrine-carcinoma",
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


def primary_conditions(conditions: ConditionIndex) -> tuple[ConditionRead, ...]:
    """The primary cancers of the §4 primary rows, current ones first (v2).

    A primary counts whatever its clinicalStatus (a resected primary in remission is still
    the primary of its metastases), but an inactive, resolved or remitted one only when no
    current primary Condition of these rows exists.
    """
    found = [c for c in conditions.usable if _sites_of(c)]
    current = [c for c in found if c.current]
    return tuple(current or found)


_KIND_PRECEDENCE: Final[tuple[TumourKind, ...]] = (
    "other-liver-primary",
    "hcc",
    "secondary",
    "unspecified",
)
"""Which kind's rules apply when several are found (v2: ``unspecified`` only when no other)."""


def tumour_facts(conditions: ConditionIndex, cirrhosis: bool, b: _Builder) -> TumourFacts:
    """Tumour kind (§2, v2 C22.8/C22.9 rules) and the primary site of a secondary (§4)."""
    kinds: set[TumourKind] = set()
    liver: list[ConditionRead] = []
    secondary: list[ConditionRead] = []
    not_stated: list[ConditionRead] = []
    unspecified_primary: list[ConditionRead] = []
    for c in conditions.current:
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
            secondary.append(c)
            is_liver = True
        if codes.SECONDARY_BY_SITE in tags:
            liver_site = any(s.liver is not None for s in c.sites)
            if liver_site:
                kinds.add("secondary")
                secondary.append(c)
                is_liver = True
            elif not any(s.coded for s in c.sites):
                b.notes.append(
                    DataQualityNote(
                        c.ref, "secondary malignancy without a coded body site; not counted"
                    )
                )
        if codes.LIVER_UNSPECIFIED_PRIMARY in tags:
            unspecified_primary.append(c)
            is_liver = True
        if codes.LIVER_NOT_STATED in tags:
            not_stated.append(c)
            is_liver = True
        if is_liver:
            liver.append(c)

    primaries = primary_conditions(conditions)
    unstated = False
    unspecified: list[ConditionRead] = list(unspecified_primary)
    if not_stated:
        # C22.9 with a known non-liver primary is a metastasis whose code did not say so,
        # unless the liver is cirrhotic and no related-primary link names that primary.
        primary_ids = {c.id for c in primaries if c.id is not None}
        linked = any(c.related in primary_ids for c in liver if c.related is not None)
        if primaries and (linked or not cirrhosis):
            kinds.add("secondary")
            secondary.extend(not_stated)
            unstated = True
        else:
            unspecified.extend(not_stated)
    if unspecified:
        kinds.add("unspecified")

    kind: TumourKind | None = None
    for candidate in _KIND_PRECEDENCE:
        if candidate in kinds:
            kind = candidate
            break
    confirmed = any(c.confirmed for c in liver)
    refs = tuple(dict.fromkeys(c.ref for c in liver))
    unspecified_codes: tuple[str, ...] = ()
    if kind == "unspecified":
        unspecified_codes = tuple(dict.fromkeys(code for c in unspecified for code in c.codes))
    if kind is not None:
        text: str = kind
        if kind == "unspecified":
            text += f" (liver code {', '.join(unspecified_codes)})"
        elif unstated and kind == "secondary":
            text += " (liver code C22.9 does not state it; a non-liver primary is recorded)"
        b.add("tumour_kind", text, None, *refs)
        b.add(
            "confirmed",
            "yes" if confirmed else "no (verification status not confirmed)",
            None,
            *refs,
        )

    primary_site: PrimarySite | None = None
    primary_condition: str | None = None
    primary_conds: tuple[ConditionRead, ...] = ()
    if "secondary" in kinds:
        primary_site, primary_condition, primary_conds = _primary_site(
            conditions, primaries, secondary, b
        )
        b.add(
            "primary_site", primary_site, None, *([primary_condition] if primary_condition else [])
        )
    return TumourFacts(
        kind=kind,
        kinds=frozenset(kinds),
        liver_conditions=tuple(liver),
        secondary_conditions=tuple(secondary),
        confirmed=confirmed,
        primary_site=primary_site,
        primary_condition=primary_condition,
        primary_conditions=primary_conds,
        unspecified_codes=unspecified_codes,
        liver_code_unstated=unstated and kind == "secondary",
    )


def _primary_site(
    conditions: ConditionIndex,
    primaries: Sequence[ConditionRead],
    secondary: Sequence[ConditionRead],
    b: _Builder,
) -> tuple[PrimarySite, str | None, tuple[ConditionRead, ...]]:
    """mCODE related-primary link (or C7B.02) first; else the primary Conditions (§4).

    C7A.1 (neuroendocrine carcinoma) decides even when the liver code is C7B.02, which on
    its own implies a (well-differentiated) neuroendocrine primary.
    """
    nec = [c for c in primaries if "neuroendocrine-carcinoma" in _sites_of(c)]
    declared: dict[PrimarySite, list[ConditionRead]] = {}
    declared_refs: dict[PrimarySite, str | None] = {}
    for c in secondary:
        if codes.SECONDARY_NET_LIVER in c.tags:
            if nec:
                declared.setdefault("neuroendocrine-carcinoma", []).extend(nec)
                declared_refs.setdefault("neuroendocrine-carcinoma", nec[0].ref)
            else:
                declared.setdefault("neuroendocrine", [])
                declared_refs.setdefault("neuroendocrine", None)
        if c.related is None:
            continue
        target = conditions.by_id.get(c.related)
        if target is not None and target.usable:
            found = _sites_of(target)
            site: PrimarySite
            if len(found) == 1:
                site = found.pop()
            elif not found:
                site = "other"
            else:
                site = "unknown"
            declared.setdefault(site, []).append(target)
            declared_refs.setdefault(site, target.ref)
        elif c.related in conditions.linked_unclassified:
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
            return site, declared_refs[site], tuple(declared[site])
        return "unknown", None, ()
    by_site: dict[PrimarySite, list[ConditionRead]] = {}
    for c in primaries:
        for site in _sites_of(c):
            by_site.setdefault(site, []).append(c)
    if set(by_site) == {"neuroendocrine", "neuroendocrine-carcinoma"}:
        # Both grades recorded: the poorly differentiated one decides (the cautious reading).
        del by_site["neuroendocrine"]
    if len(by_site) == 1:
        site, conds = next(iter(by_site.items()))
        return site, conds[0].ref, tuple(conds)
    if len(by_site) > 1:
        b.assumptions.append(
            "Primary site unknown: primary cancers of "
            + " and ".join(sorted(by_site))
            + " were both found."
        )
    return "unknown", None, ()


# --------------------------------------------------------------------------------------------
# Extrahepatic disease and macrovascular invasion (fhir-mapping §4)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtrahepaticFacts:
    disease: bool
    sites: frozenset[ExtrahepaticSite]
    limited: bool
    """Extrahepatic disease whose every site is lung or lymph node (v2)."""
    macrovascular_invasion: bool


def extrahepatic_facts(
    conditions: ConditionIndex, primary_site: PrimarySite | None, b: _Builder
) -> ExtrahepaticFacts:
    """Extrahepatic disease by site (v2): lung, lymph node, or other."""
    sites: set[ExtrahepaticSite] = set()
    sources: list[str] = []
    for c in conditions.current:
        tags = c.tags
        found: list[ExtrahepaticSite] = []
        if codes.EXTRAHEPATIC_LUNG in tags:
            found.append("lung")
        if codes.EXTRAHEPATIC_LYMPH_NODE in tags:
            found.append("lymph-node")
        if codes.EXTRAHEPATIC in tags:
            found.append("other")
        if codes.EXTRAHEPATIC_PERITONEUM_NET in tags:
            found.append("lymph-node" if primary_site == "neuroendocrine" else "other")
        if codes.SECONDARY_BY_SITE in tags:
            found += [s.elsewhere for s in c.sites if s.elsewhere is not None]
        if found:
            sites.update(found)
            sources.append(c.ref)
    disease = bool(sites)
    if disease:
        b.add("extrahepatic_disease", "yes: " + ", ".join(sorted(sites)), None, *sources)
    pvt = [c.ref for c in conditions.with_tag(codes.PORTAL_VEIN_THROMBOSIS)]
    if pvt:
        b.add("macrovascular_invasion", "presumed (portal vein thrombosis)", None, *pvt)
    return ExtrahepaticFacts(
        disease=disease,
        sites=frozenset(sites),
        limited=disease and sites <= _LIMITED_SITES,
        macrovascular_invasion=bool(pvt),
    )


# --------------------------------------------------------------------------------------------
# Imaging: lesion count, largest size, FLR (fhir-mapping §6), with the imaging lookback
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImagingFacts:
    lesion_count: int | None
    largest_cm: float | None
    flr_percent: float | None
    imaging_date: datetime | None
    """The latest imaging Observation used."""
    sites: tuple[tuple[SiteRead, str], ...]
    """Liver body sites of the fresh tumour-size and lesion-count Observations."""
    stale_sites_date: datetime | None
    """Date of the latest stale imaging Observation with a segment or lobe site: when the
    distribution ends unknown, it is stale since then rather than absent."""
    stale: dict[str, datetime]
    """``lesion_count`` / ``largest_cm`` / ``flr_percent`` -> date of the latest, too old,
    Observation when the fact is unknown because of it."""
    observed: dict[str, Measurement]


def imaging_facts(
    by_kind: dict[str, list[ObservationRead]], at: datetime, t: Thresholds, b: _Builder
) -> ImagingFacts:
    """Count, size and FLR from imaging no older than the imaging lookback (v2).

    A stale lesion-count falls back to the fresh sizes; sizes are counted on their latest
    calendar day only (earlier sizes are earlier measurements of the same lesions).
    """
    window_start = at - timedelta(days=t.imaging_lookback_days)
    stale: dict[str, datetime] = {}
    observed: dict[str, Measurement] = {}
    used: list[datetime] = []

    def fresh(found: Iterable[ObservationRead], fact: str) -> list[ObservationRead]:
        found = list(found)
        kept = [o for o in found if o.time >= window_start]
        if found and not kept:
            stale[fact] = max(o.time for o in found)
        return kept

    all_sizes = [o for o in by_kind.get("tumour-size", ()) if o.site is not None and o.site.liver]
    sizes = fresh(all_sizes, "largest_cm")
    counts = fresh(by_kind.get("lesion-count", ()), "lesion_count")
    flrs = fresh(by_kind.get("flr", ()), "flr_percent")

    last_day = max((o.time.date() for o in sizes), default=None)
    on_day = [o for o in sizes if o.time.date() == last_day]

    lesion_count: int | None = None
    if counts:
        latest = max(counts, key=lambda o: (o.time, o.integer or 0))
        lesion_count = latest.integer
        used.append(latest.time)
        observed["lesion_count"] = Measurement(
            float(latest.integer or 0), "", latest.time, latest.ref
        )
        b.add("lesion_count", str(lesion_count), latest.time, latest.ref)
    elif on_day:
        distinct: dict[object, ObservationRead] = {}
        for o in on_day:
            assert o.quantity is not None and o.site is not None
            key: object = ("focus", o.focus) if o.focus else ("site", o.site.key, o.quantity.value)
            distinct.setdefault(key, o)
        lesion_count = len(distinct)
        day = max(o.time for o in on_day)
        observed["lesion_count"] = Measurement(
            float(lesion_count), "", day, next(iter(distinct.values())).ref
        )
        b.add(
            "lesion_count",
            f"{lesion_count} (distinct tumour-size observations of the latest imaging day)",
            day,
            *(o.ref for o in distinct.values()),
        )
    if lesion_count is not None:
        stale.pop("lesion_count", None)  # a stale count fell back to fresh sizes

    largest_cm: float | None = None
    if on_day:
        biggest = max(on_day, key=lambda o: o.quantity.value if o.quantity else 0.0)
        assert biggest.quantity is not None
        largest_cm = biggest.quantity.value
        used.append(biggest.time)
        observed["largest_cm"] = Measurement(
            largest_cm, "cm", biggest.time, biggest.ref, biggest.quantity.original
        )
        b.add(
            "largest_cm",
            _with_original(f"{largest_cm:g} cm", biggest.quantity.original),
            biggest.time,
            biggest.ref,
        )

    flr: float | None = None
    if flrs:
        latest = max(flrs, key=lambda o: (o.time, -(o.quantity.value if o.quantity else 0.0)))
        assert latest.quantity is not None
        flr = latest.quantity.value
        used.append(latest.time)
        observed["flr"] = Measurement(flr, "%", latest.time, latest.ref)
        b.add("flr_percent", f"{flr:g} %", latest.time, latest.ref)

    sites = tuple((o.site, o.ref) for o in (*sizes, *counts) if o.site is not None and o.site.liver)
    stale_sites_date = max(
        (
            o.time
            for o in (*all_sizes, *by_kind.get("lesion-count", ()))
            if o.time < window_start
            and o.site is not None
            and o.site.liver is not None
            and o.site.liver.sided
        ),
        default=None,
    )
    return ImagingFacts(
        lesion_count=lesion_count,
        largest_cm=largest_cm,
        flr_percent=flr,
        imaging_date=max(used, default=None),
        sites=sites,
        stale_sites_date=stale_sites_date,
        stale=stale,
        observed=observed,
    )


# --------------------------------------------------------------------------------------------
# Distribution, single segment / section, surface (fhir-mapping §3)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DistributionFacts:
    distribution: Distribution
    single_segment: bool
    segment: str | None
    single_section: bool
    section: Section | None
    surface: bool
    refs: tuple[str, ...]


def distribution_facts(
    tumour: TumourFacts, imaging_sites: Sequence[tuple[SiteRead, str]], b: _Builder
) -> DistributionFacts:
    """Where the lesions are: the current liver Conditions' body sites (whatever their age)
    and the fresh imaging Observations' liver sites."""
    sites: list[tuple[SiteRead, str]] = []
    for c in tumour.liver_conditions:
        by_site_only = codes.SECONDARY_BY_SITE in c.tags and not (
            codes.LIVER_SECONDARY in c.tags or codes.LIVER_HCC in c.tags
        )
        for s in c.sites:
            if by_site_only and s.liver is None:
                continue  # the non-liver site of a secondary is extrahepatic disease
            sites.append((s, c.ref))
    sites += imaging_sites
    found = _distribution(sites)
    if tumour.kind is not None:
        detail: str = found.distribution
        if found.single_segment and found.segment:
            detail += f", single segment {found.segment}"
        elif found.single_section and found.section:
            detail += f", single section ({found.section})"
        if found.surface:
            detail += ", superficial"
        b.add("distribution", detail, None, *found.refs)
    return found


def _distribution(sites: Sequence[tuple[SiteRead, str]]) -> DistributionFacts:
    refs = tuple(dict.fromkeys(ref for s, ref in sites if s.liver is not None or s.diffuse))
    if any(s.diffuse for s, _ in sites):
        return DistributionFacts("diffuse", False, None, False, None, False, refs)
    sided = [s.liver for s, _ in sites if s.liver is not None and s.liver.sided]
    if not sided:
        return DistributionFacts("unknown", False, None, False, None, False, refs)
    segments = {s.segment for s in sided}
    distribution: Distribution
    if segments == {"I"}:
        distribution = "caudate"  # segment I is the only sided site (v2)
    else:
        sides: set[str] = set()
        for s in sided:
            sides |= {"right", "left"} if s.side == "both" else {s.side or ""}
        distribution = "bilobar" if len(sides) > 1 else cast(Distribution, sides.pop())
    single = len(segments) == 1 and None not in segments
    segment = next(iter(segments)) if single else None
    sections = {SECTIONS.get(seg) if seg is not None else None for seg in segments}
    single_section = len(sections) == 1 and None not in sections
    section = next(iter(sections)) if single_section else None
    surface = all(
        site.superficial for site, _ in sites if site.liver is not None and site.liver.sided
    )
    return DistributionFacts(distribution, single, segment, single_section, section, surface, refs)


# --------------------------------------------------------------------------------------------
# Labs and liver function (fhir-mapping §4 and §5)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiverFunctionFacts:
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
    b: _Builder,
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
    by_kind: dict[str, list[ObservationRead]], window_start: datetime, b: _Builder | None
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
            text = _with_original(format_value(lab, m.value, m.unit), m.original)
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
    b: _Builder,
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
            + _refs(sorted(resolved))
            + ")."
        )


_CHILD_PUGH_ASCITES: Final = frozenset({codes.ASCITES, codes.MALIGNANT_ASCITES})
"""Malignant ascites scores ascites in Child-Pugh too (fhir-mapping §4, v2)."""


def _severity(found: list[ConditionRead]) -> tuple[int | None, bool]:
    """Child-Pugh points of ascites / encephalopathy, and whether 'mild' was assumed."""
    if not found:
        return None, False
    known = [c.severity_points for c in found if c.severity_points is not None]
    if known:
        return max(known), False
    return 2, True


# --------------------------------------------------------------------------------------------
# Portal hypertension (clinical-rules §2, v2)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortalHypertensionFacts:
    status: PortalHypertension
    basis: PortalHypertensionBasis


def portal_hypertension_facts(
    conditions: ConditionIndex,
    liver: LiverFunctionFacts,
    tumour_kind: TumourKind | None,
    t: Thresholds,
    b: _Builder,
) -> PortalHypertensionFacts:
    """present (a code; or ascites, not malignant, with cirrhosis or hcc), suspected
    (cirrhosis, platelets < 100), not-excluded (cirrhosis, 100 <= platelets < 150), unknown
    (cirrhosis and no platelet count in the lookback), absent otherwise."""
    ph_refs = [c.ref for c in conditions.with_tag(codes.PORTAL_HYPERTENSION)]
    if ph_refs:
        b.add("portal_hypertension", "present (recorded)", None, *ph_refs)
        return PortalHypertensionFacts("present", "condition")
    ascites_refs = [c.ref for c in conditions.with_tag(codes.ASCITES)]
    if ascites_refs and (liver.cirrhosis or tumour_kind == "hcc"):
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


# --------------------------------------------------------------------------------------------
# Performance status (clinical-rules §2)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PerformanceFacts:
    ecog: int | None
    from_karnofsky: int | None
    stale: dict[str, datetime]
    observed: dict[str, Measurement]


def performance_facts(
    by_kind: dict[str, list[ObservationRead]], at: datetime, t: Thresholds, b: _Builder
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


# --------------------------------------------------------------------------------------------
# Previous liver resection (fhir-mapping §8) and the patient (§9)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcedureFacts:
    prior_liver_resection: PriorLiverResection
    date: datetime | None
    source: str | None
    checked: bool


def procedure_facts(
    procedures: Sequence[ProcedureRead], checked: bool, b: _Builder
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


@dataclass(frozen=True)
class PatientFacts:
    age: int | None
    deceased: bool


def patient_facts(patient: PatientRead | None, at: datetime, b: _Builder) -> PatientFacts:
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


# --------------------------------------------------------------------------------------------
# Fong inputs (clinical-rules §4)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FongInputs:
    node_positive_primary: bool | None
    disease_free_interval_months: float | None


def fong_inputs(
    conditions: ConditionIndex, by_kind: dict[str, list[ObservationRead]], tumour: TumourFacts
) -> FongInputs:
    node_positive: bool | None = None
    n_obs = by_kind.get("tnm-n")
    if n_obs:
        latest = max(n_obs, key=lambda o: (o.time, o.text or ""))
        if latest.text in ("N1", "N2", "N3"):
            node_positive = True
        elif latest.text == "N0":
            node_positive = False
    if node_positive is None and conditions.with_tag(codes.LYMPH_NODES):
        node_positive = True
    dfi: float | None = None
    liver_onsets = [c.onset for c in tumour.secondary_conditions if c.onset is not None]
    primary_onsets = [c.onset for c in tumour.primary_conditions if c.onset is not None]
    if liver_onsets and primary_onsets:
        dfi = float(completed_months(min(primary_onsets), min(liver_onsets)))
    return FongInputs(node_positive, dfi)


# --------------------------------------------------------------------------------------------
# Composition
# --------------------------------------------------------------------------------------------


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
    b = _Builder(notes=[*notes, *sel.notes])
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
    portal = portal_hypertension_facts(conditions, liver, tumour.kind, t, b)
    performance = performance_facts(by_kind, at, t, b)
    procedures = procedure_facts(sel.procedures, sel.procedures_checked, b)
    patient = patient_facts(sel.patient, at, b)
    fong = fong_inputs(conditions, by_kind, tumour)

    if sel.status_missing:
        b.assumptions.append(
            "Observation without a status counted as a final result: " + _refs(sel.status_missing)
        )
    if sel.timezone_assumed:
        b.assumptions.append("Times without a timezone read as UTC: " + _refs(sel.timezone_assumed))

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
            **_stale_distribution(where, imaging),
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


def _stale_distribution(where: DistributionFacts, imaging: ImagingFacts) -> dict[str, datetime]:
    """``{"distribution": date}`` when the distribution is unknown only because the imaging
    that located the lesions is older than the imaging lookback."""
    if where.distribution == "unknown" and imaging.stale_sites_date is not None:
        return {"distribution": imaging.stale_sites_date}
    return {}


def _refs(refs: list[str], limit: int = 5) -> str:
    unique = list(dict.fromkeys(refs))
    text = ", ".join(unique[:limit])
    if len(unique) > limit:
        text += f" and {len(unique) - limit} more"
    return text


def _with_original(text: str, original: str | None) -> str:
    return f"{text} (reported {original})" if original else text
