"""Tumour kind, primary site, extrahepatic disease and the Fong inputs (fhir-mapping §2, §4;
clinical-rules §2 and §4)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, get_args

import msgspec

from service.clinical.facts.base import (
    Builder,
    ConditionIndex,
    completed_months,
)
from service.clinical.model import (
    DataQualityNote,
    ExtrahepaticSite,
    PrimarySite,
    TumourKind,
)
from service.fhir import codes
from service.fhir.read import (
    ConditionRead,
    ObservationRead,
)


class TumourFacts(msgspec.Struct, frozen=True, gc=False):
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


_LISTED_PRIMARIES: Final[tuple[PrimarySite, ...]] = tuple(
    site for site in get_args(PrimarySite) if site not in ("other", "unknown")
)
"""The primary sites a code names (fhir-mapping §4): every PrimarySite but the two the
rules infer (``other`` from a related-primary link, ``unknown`` from conflicting ones)."""


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


def tumour_facts(conditions: ConditionIndex, cirrhosis: bool, b: Builder) -> TumourFacts:
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
    b: Builder,
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


_LIMITED_SITES: Final[frozenset[ExtrahepaticSite]] = frozenset({"lung", "lymph-node"})


class ExtrahepaticFacts(msgspec.Struct, frozen=True, gc=False):
    disease: bool
    sites: frozenset[ExtrahepaticSite]
    limited: bool
    """Extrahepatic disease whose every site is lung or lymph node (v2)."""
    macrovascular_invasion: bool


def extrahepatic_facts(
    conditions: ConditionIndex, primary_site: PrimarySite | None, b: Builder
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


class FongInputs(msgspec.Struct, frozen=True, gc=False):
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
