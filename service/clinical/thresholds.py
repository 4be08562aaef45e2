"""Every number of clinical-rules.md in one place: the defaults of the decision table.

The rules, scores and fact extraction read their cut-offs from a :class:`Thresholds` value
passed in explicitly; no clinical number is a literal elsewhere in the engine. A CDS team
that must change one (say the lookback window) changes it here, and the tests that build
facts around the boundaries follow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Thresholds:
    # --- Reading (fhir-mapping.md §1) ---------------------------------------------------
    lookback_days: int = 90
    """Labs and ECOG older than this (before the evaluation time) count as missing (stale)."""
    imaging_lookback_days: int = 90
    """Rule set v2: lesion-count, tumour-size and FLR Observations older than this count as
    missing (stale) and their body sites no longer decide the distribution."""

    # --- Performance status (clinical-rules.md §2, §3 rules 3 and 6) --------------------
    ecog_not_resectable: int = 3
    """Rule 3: ECOG at or above this -> not resectable, best supportive care."""
    ecog_limited: int = 2
    """Rule 6: ECOG equal to this -> not resectable, systemic therapy."""
    karnofsky_to_ecog: tuple[tuple[int, int], ...] = ((90, 0), (70, 1), (50, 2), (30, 3), (10, 4))
    """Karnofsky at or above the first number -> that ECOG grade; below the last -> 5."""

    # --- Portal hypertension surrogate (§2) ----------------------------------------------
    platelets_portal_hypertension: float = 100.0
    """Cirrhosis and platelets below this (10^9/L) -> portal hypertension suspected."""
    platelets_portal_hypertension_excluded: float = 150.0
    """Rule set v2 (Baveno VII): cirrhosis and platelets at or above the suspected threshold
    but below this -> portal hypertension ``not-excluded``."""

    # --- Bilirubin: upper limit of normal and jaundice (rule set v2, §2) -------------------
    bilirubin_uln_mg_dl: float = 1.2
    bilirubin_uln_umol_l: float = 20.5
    """Upper limit of normal when the Observation gives no referenceRange.high in its unit."""
    jaundice_bilirubin_mg_dl: float = 2.0
    jaundice_bilirubin_umol_l: float = 34.0
    """Jaundice: the latest total bilirubin above this, in the unit it was reported in."""

    # --- Ablation (COLLISION) ------------------------------------------------------------
    ablation_max_cm: float = 3.0
    ablation_max_lesions_colorectal: int = 10
    ablation_max_lesions_other: int = 3

    # --- Milan and up-to-seven ---------------------------------------------------------
    milan_single_max_cm: float = 5.0
    milan_multiple_max_lesions: int = 3
    milan_multiple_max_cm: float = 3.0
    up_to_seven: float = 7.0

    # --- Future liver remnant -------------------------------------------------------------
    flr_threshold_normal: float = 20.0
    flr_threshold_compromised: float = 40.0
    """With cirrhosis or Child-Pugh B."""
    flr_threshold_after_chemotherapy: float = 30.0
    """Shown on the card: applies after more than 12 weeks of chemotherapy."""

    # --- TransMet heuristic [H] -------------------------------------------------------------
    transmet_max_age: int = 65
    transmet_max_ecog: int = 1

    # --- Resection by location, rules 22 and 23 --------------------------------------------
    left_surface_local_max_lesions: int = 3
    """Left-sided surface disease with at most this many lesions adds local resection."""
    other_primary_max_lesions: int = 3
    """Rule 22: other primaries are potentially resectable up to this many lesions."""
    sbrt_max_lesions: int = 3
    """Rule 23: SBRT is offered up to this many lesions."""
    colorectal_parenchyma_sparing_max_lesions: int = 3
    """Rule set v2, resection by location: colorectal disease with at most this many lesions
    (not single_section) also offers local (parenchyma-sparing) resection beside the
    hemihepatectomy."""
    colorectal_bilobar_max_lesions: int = 10
    """Rules 19 and 19a: bilobar colorectal disease above this many lesions gets conversion
    chemotherapy first (19a)."""

    # --- AFP (rule set v2: informational on transplant evaluation) ----------------------------
    afp_meld_exception_note: float = 1000.0
    """hcc with AFP above this (ng/mL): the transplant-evaluation option says a MELD exception
    needs AFP below :attr:`afp_meld_exception_max` after locoregional therapy."""
    afp_meld_exception_max: float = 500.0

    # --- Child-Pugh (§4): boundaries belong to the middle band -------------------------------
    cp_bilirubin_low: float = 2.0
    cp_bilirubin_high: float = 3.0
    cp_albumin_high: float = 3.5
    cp_albumin_low: float = 2.8
    cp_inr_low: float = 1.7
    cp_inr_high: float = 2.3
    cp_class_b_min: int = 7
    cp_class_c_min: int = 10
    cp_bilirubin_low_umol_l: float = 34.0
    cp_bilirubin_high_umol_l: float = 51.0
    cp_albumin_high_g_l: float = 35.0
    cp_albumin_low_g_l: float = 28.0
    """Rule set v2: the SI bands, for values reported in umol/L (bilirubin) and g/L (albumin)."""

    # --- ALBI (§4) -----------------------------------------------------------------------------
    albi_grade1_max: float = -2.60
    albi_grade2_max: float = -1.39

    # --- MELD / MELD-Na (§4) -------------------------------------------------------------------
    meld_min: int = 6
    meld_max: int = 40
    meld_creatinine_cap: float = 4.0
    meld_na_applies_above: int = 11
    sodium_low: float = 125.0
    sodium_high: float = 137.0

    # --- Fong (§4) -----------------------------------------------------------------------------
    fong_dfi_months: float = 12.0
    fong_cea: float = 200.0
    fong_size_cm: float = 5.0
    fong_high_min: int = 3

    # --- BCLC (§4) -----------------------------------------------------------------------------
    bclc_very_early_max_cm: float = 2.0
    bclc_early_max_lesions: int = 3
    bclc_early_multiple_max_cm: float = 3.0


DEFAULT_THRESHOLDS = Thresholds()

_PER_THRESHOLDS_CACHE_SIZE = 16
"""Distinct Thresholds values a :func:`per_thresholds` table remembers (a process uses one
per settings; tests build many)."""


def per_thresholds(build: Callable[[Thresholds], T]) -> Callable[[Thresholds], T]:
    """``build(t)`` computed once per :class:`Thresholds` object, then reused.

    For tables derived from the thresholds alone (bands and their wording), which would
    otherwise be rebuilt on every call. Keyed by identity, not by value: hashing a
    Thresholds hashes its ~60 fields, which costs more than most tables do to build. The
    object is kept with its table, so its id cannot be reused while the entry exists.
    """
    cache: dict[int, tuple[Thresholds, T]] = {}

    def cached(t: Thresholds) -> T:
        hit = cache.get(id(t))
        if hit is not None and hit[0] is t:
            return hit[1]
        if len(cache) >= _PER_THRESHOLDS_CACHE_SIZE:
            cache.clear()
        value = build(t)
        cache[id(t)] = (t, value)
        return value

    cached.__doc__ = build.__doc__
    return cached


class LookbackSettings(Protocol):
    """The settings the engine reads (``service.settings.Settings`` has them)."""

    @property
    def lookback_days(self) -> int: ...

    @property
    def imaging_lookback_days(self) -> int: ...


def thresholds_from_settings(settings: LookbackSettings) -> Thresholds:
    """Thresholds with every setting the engine reads applied: ``LIVER_CDS_LOOKBACK_DAYS``
    and ``LIVER_CDS_IMAGING_LOOKBACK_DAYS``.

    Typed by the two attributes it reads, so the clinical engine does not import the
    service's settings module (any object with them will do, e.g. in tests).
    """
    changes = {
        name: getattr(settings, name)
        for name in ("lookback_days", "imaging_lookback_days")
        if getattr(settings, name) != getattr(DEFAULT_THRESHOLDS, name)
    }
    return replace(DEFAULT_THRESHOLDS, **changes) if changes else DEFAULT_THRESHOLDS
