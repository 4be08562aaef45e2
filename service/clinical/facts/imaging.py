"""Imaging with its own lookback, and where the lesions are: distribution, single segment and
section, surface (fhir-mapping §3 and §6, rule set v2)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Final, cast

import msgspec

from service.clinical.facts.base import (
    Builder,
    with_original,
)
from service.clinical.facts.tumour import TumourFacts
from service.clinical.model import (
    Distribution,
    Measurement,
    Section,
)
from service.clinical.thresholds import Thresholds
from service.fhir import codes
from service.fhir.read import (
    ObservationRead,
    SiteRead,
)

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


class ImagingFacts(msgspec.Struct, frozen=True, gc=False):
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
    by_kind: dict[str, list[ObservationRead]], at: datetime, t: Thresholds, b: Builder
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
            with_original(f"{largest_cm:g} cm", biggest.quantity.original),
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


class DistributionFacts(msgspec.Struct, frozen=True, gc=False):
    distribution: Distribution
    single_segment: bool
    segment: str | None
    single_section: bool
    section: Section | None
    surface: bool
    refs: tuple[str, ...]


def distribution_facts(
    tumour: TumourFacts, imaging_sites: Sequence[tuple[SiteRead, str]], b: Builder
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


def stale_distribution(where: DistributionFacts, imaging: ImagingFacts) -> dict[str, datetime]:
    """``{"distribution": date}`` when the distribution is unknown only because the imaging
    that located the lesions is older than the imaging lookback."""
    if where.distribution == "unknown" and imaging.stale_sites_date is not None:
        return {"distribution": imaging.stale_sites_date}
    return {}
