"""The scores of clinical-rules.md §4, each returned with its inputs (value, unit, date).

A score is ``None`` when its required inputs are not known; the card shows each computed
score with the values it used so a clinician can check it by hand. All cut-offs come from
:class:`~service.clinical.thresholds.Thresholds`.
"""

from __future__ import annotations

import math
from typing import Final, NamedTuple

from service.clinical.facts import format_value
from service.clinical.model import Facts, Measurement, Score, ScoreInput, Scores
from service.clinical.thresholds import DEFAULT_THRESHOLDS, Thresholds, per_thresholds

BILIRUBIN_UMOL_PER_MG_DL: Final = 17.104
ALBUMIN_G_L_PER_G_DL: Final = 10.0


def round_half_up(x: float, digits: int = 0) -> float:
    """Arithmetic rounding (2.5 -> 3, -2.605 -> -2.61), not Python's banker's rounding."""
    factor = 10.0**digits
    return math.copysign(math.floor(abs(x) * factor + 0.5 + 1e-9) / factor, x)


def _lab_input(
    name: str, kind: str, m: Measurement, points: int | None = None, band: str | None = None
) -> ScoreInput:
    """The input as shown: the value (and what was reported), and for a score with bands
    the band it was scored on (``"scored on the < 34 / 34-51 / > 51 umol/L bands"``)."""
    value = format_value(kind, m.value, m.unit)
    if m.original:
        value += f" (reported {m.original})"
    if band:
        value += f"; scored on the {band}"
    return ScoreInput(name, value, m.date, points, False, m.source)


def _band(value: float, low: float, high: float, higher_is_worse: bool) -> int:
    """Points 1/2/3 with both boundaries in the middle band."""
    if higher_is_worse:
        return 1 if value < low else (2 if value <= high else 3)
    return 1 if value > high else (2 if value >= low else 3)


def _band_text(low: float, high: float, unit: str, higher_is_worse: bool) -> str:
    """The bands in words for the card (``"< 2 / 2-3 / > 3 mg/dL bands"``)."""
    if higher_is_worse:
        text = f"< {low:g} / {low:g}-{high:g} / > {high:g}"
    else:
        text = f"> {high:g} / {low:g}-{high:g} / < {low:g}"
    return f"{text} {unit}".rstrip() + " bands"


class _Bands(NamedTuple):
    """One Child-Pugh lab's bands in one unit, with their wording for the card."""

    low: float
    high: float
    unit: str
    text: str


class _LabBands(NamedTuple):
    """A Child-Pugh lab's canonical bands, and its SI bands when it has its own (v2)."""

    higher_is_worse: bool
    canonical: _Bands
    si: _Bands | None


@per_thresholds
def _child_pugh_bands(t: Thresholds) -> dict[str, _LabBands]:
    """The Child-Pugh bands of each lab, built (and worded) once per :class:`Thresholds`.

    They depend on the thresholds only, not on the patient: built once, instead of the
    band dicts rebuilt and six numbers formatted again for every lab of every call.
    """

    def bands(low: float, high: float, unit: str, worse: bool) -> _Bands:
        return _Bands(low, high, unit, _band_text(low, high, unit, worse))

    return {
        "bilirubin": _LabBands(
            True,
            bands(t.cp_bilirubin_low, t.cp_bilirubin_high, "mg/dL", True),
            bands(t.cp_bilirubin_low_umol_l, t.cp_bilirubin_high_umol_l, "umol/L", True),
        ),
        "albumin": _LabBands(
            False,
            bands(t.cp_albumin_low, t.cp_albumin_high, "g/dL", False),
            bands(t.cp_albumin_low_g_l, t.cp_albumin_high_g_l, "g/L", False),
        ),
        "inr": _LabBands(True, bands(t.cp_inr_low, t.cp_inr_high, "", True), None),
    }


def _cp_lab_points(lab: _LabBands, m: Measurement) -> tuple[int, str]:
    """Points of a Child-Pugh lab, and the band used, in words for the card.

    Rule set v2 (clinical-rules §4): every value unrounded; one reported in SI units
    (bilirubin umol/L, albumin g/L) is scored on the SI bands in its own unit (bilirubin
    < 34 / 34-51 / > 51 umol/L; albumin > 35 / 28-35 / < 28 g/L), any other unit is
    converted to the canonical unit and compared unrounded. Boundaries are in the middle
    band. Rounding is for display only: 33.9 umol/L is 1 point although it reads 2.0 mg/dL.
    """
    si = lab.si
    if si is not None and m.reported_unit == si.unit and m.reported_value is not None:
        bands, value = si, m.reported_value
    else:
        bands, value = lab.canonical, m.exact
    return _band(value, bands.low, bands.high, lab.higher_is_worse), bands.text


def child_pugh(facts: Facts, t: Thresholds = DEFAULT_THRESHOLDS) -> Score | None:
    """Child-Pugh (1973): needs bilirubin, albumin and INR within the lookback window."""
    labs = facts.labs
    bili, alb, inr = labs.get("bilirubin"), labs.get("albumin"), labs.get("inr")
    if bili is None or alb is None or inr is None:
        return None
    bands = _child_pugh_bands(t)
    pb, bb = _cp_lab_points(bands["bilirubin"], bili)
    pa, ba = _cp_lab_points(bands["albumin"], alb)
    pi, bi = _cp_lab_points(bands["inr"], inr)
    pas = facts.ascites_points or 1
    pen = facts.encephalopathy_points or 1
    total = pb + pa + pi + pas + pen
    cls = "C" if total >= t.cp_class_c_min else ("B" if total >= t.cp_class_b_min else "A")
    assumed = []
    if facts.ascites_assumed:
        assumed.append("ascites")
    if facts.encephalopathy_assumed:
        assumed.append("encephalopathy")
    return Score(
        name="Child-Pugh",
        value=total,
        category=cls,
        inputs=(
            _lab_input("bilirubin", "bilirubin", bili, pb, bb),
            _lab_input("albumin", "albumin", alb, pa, ba),
            _lab_input("INR", "inr", inr, pi, bi),
            ScoreInput(
                "ascites",
                _grade_text(facts.ascites_points, facts.ascites_assumed),
                None,
                pas,
                facts.ascites_assumed,
            ),
            ScoreInput(
                "encephalopathy",
                _grade_text(facts.encephalopathy_points, facts.encephalopathy_assumed),
                None,
                pen,
                facts.encephalopathy_assumed,
            ),
        ),
        note=(f"{' and '.join(assumed)} severity not recorded: assumed mild" if assumed else None),
    )


def _grade_text(points: int | None, assumed: bool) -> str:
    if points is None:
        return "none"
    if points == 2:
        return "mild (assumed)" if assumed else "mild"
    return "moderate or severe"


def albi(facts: Facts, t: Thresholds = DEFAULT_THRESHOLDS) -> Score | None:
    """ALBI (JCO 2015) = 0.66 log10(bilirubin umol/L) - 0.085 albumin g/L.

    Computed from the unrounded converted values (ALBI is defined in SI units) and graded on
    the unrounded result, exactly as the cut-offs read ("grade 1 <= -2.60 < grade 2"): a
    result of -2.5999 is grade 2, although it is shown rounded to two decimals as -2.60.
    Grading the rounded value would move every such boundary case to the better grade.
    """
    bili, alb = facts.labs.get("bilirubin"), facts.labs.get("albumin")
    if bili is None or alb is None:
        return None
    bili_umol = (bili.unrounded if bili.unrounded is not None else bili.value) * (
        BILIRUBIN_UMOL_PER_MG_DL
    )
    alb_gl = (alb.unrounded if alb.unrounded is not None else alb.value) * ALBUMIN_G_L_PER_G_DL
    if bili_umol <= 0:
        return None
    exact = 0.66 * math.log10(bili_umol) - 0.085 * alb_gl
    grade = "1" if exact <= t.albi_grade1_max else ("2" if exact <= t.albi_grade2_max else "3")
    value = round_half_up(exact, 2)
    return Score(
        name="ALBI",
        value=value,
        category=grade,
        inputs=(
            ScoreInput(
                "bilirubin",
                f"{round_half_up(bili_umol, 1):g} umol/L",
                bili.date,
                source=bili.source,
            ),
            ScoreInput("albumin", f"{round_half_up(alb_gl, 1):g} g/L", alb.date, source=alb.source),
        ),
    )


_MeldRaw = tuple[int, tuple[ScoreInput, ...]]
"""MELD and the lab inputs it was computed from (MELD-Na starts from the same)."""


def _meld_raw(facts: Facts, t: Thresholds) -> _MeldRaw | None:
    labs = facts.labs
    cr, bili, inr = labs.get("creatinine"), labs.get("bilirubin"), labs.get("inr")
    if cr is None or bili is None or inr is None:
        return None
    cr_v = min(max(cr.value, 1.0), t.meld_creatinine_cap)
    bili_v = max(bili.value, 1.0)
    inr_v = max(inr.value, 1.0)
    raw = 10 * (0.957 * math.log(cr_v) + 0.378 * math.log(bili_v) + 1.120 * math.log(inr_v) + 0.643)
    meld = int(min(max(round_half_up(raw), t.meld_min), t.meld_max))
    inputs = (
        _lab_input("creatinine", "creatinine", cr),
        _lab_input("bilirubin", "bilirubin", bili),
        _lab_input("INR", "inr", inr),
    )
    return meld, inputs


def meld(facts: Facts, t: Thresholds = DEFAULT_THRESHOLDS) -> Score | None:
    """MELD: inputs in mg/dL, each < 1 set to 1, creatinine capped at 4, rounded, 6-40."""
    return _meld_score(_meld_raw(facts, t))


def _meld_score(found: _MeldRaw | None) -> Score | None:
    if found is None:
        return None
    value, inputs = found
    return Score(
        name="MELD",
        value=value,
        inputs=inputs,
        note="values below 1 are set to 1; creatinine is capped at 4 mg/dL",
    )


def meld_na(facts: Facts, t: Thresholds = DEFAULT_THRESHOLDS) -> Score | None:
    """MELD-Na (OPTN): MELD + 1.32 (137 - Na) - 0.033 MELD (137 - Na), Na bounded 125-137,
    applied only when MELD > 11 (otherwise MELD-Na equals MELD and sodium is not needed)."""
    return _meld_na_score(facts, _meld_raw(facts, t), t)


def _meld_na_score(facts: Facts, found: _MeldRaw | None, t: Thresholds) -> Score | None:
    if found is None:
        return None
    base, inputs = found
    meld_input = ScoreInput("MELD", str(base))
    if base <= t.meld_na_applies_above:
        return Score(
            name="MELD-Na",
            value=base,
            inputs=(meld_input, *inputs),
            note=f"sodium correction applies only when MELD > {t.meld_na_applies_above}",
        )
    na = facts.labs.get("sodium")
    if na is None:
        return None
    na_v = min(max(na.value, t.sodium_low), t.sodium_high)
    gap = t.sodium_high - na_v
    value = int(round_half_up(base + 1.32 * gap - 0.033 * base * gap))
    return Score(
        name="MELD-Na",
        value=value,
        inputs=(meld_input, *inputs, _lab_input("sodium", "sodium", na)),
        note=f"sodium bounded {t.sodium_low:g}-{t.sodium_high:g} mmol/L",
    )


def fong(facts: Facts, t: Thresholds = DEFAULT_THRESHOLDS) -> Score | None:
    """Fong clinical risk score (colorectal): shown when count, size and CEA are known."""
    if facts.tumour_kind != "secondary" or facts.primary_site != "colorectal":
        return None
    cea = facts.labs.get("cea")
    if facts.lesion_count is None or facts.largest_cm is None or cea is None:
        return None
    inputs: list[ScoreInput] = []
    unknown: list[str] = []
    points = 0
    if facts.node_positive_primary is None:
        unknown.append("node-positive primary")
    else:
        p = int(facts.node_positive_primary)
        points += p
        inputs.append(
            ScoreInput(
                "node-positive primary", "yes" if facts.node_positive_primary else "no", points=p
            )
        )
    dfi = facts.disease_free_interval_months
    if dfi is None:
        unknown.append("disease-free interval")
    else:
        p = int(dfi < t.fong_dfi_months)
        points += p
        inputs.append(ScoreInput("disease-free interval", f"{dfi:.0f} months", points=p))
    p = int(facts.lesion_count > 1)
    points += p
    count = facts.observed.get("lesion_count")
    inputs.append(
        ScoreInput(
            "number of tumours",
            str(facts.lesion_count),
            count.date if count else None,
            p,
            source=count.source if count else None,
        )
    )
    p = int(cea.value > t.fong_cea)
    points += p
    inputs.append(_lab_input("CEA", "cea", cea, p))
    p = int(facts.largest_cm > t.fong_size_cm)
    points += p
    size = facts.observed.get("largest_cm")
    inputs.append(
        ScoreInput(
            "largest tumour",
            f"{facts.largest_cm:g} cm",
            size.date if size else None,
            p,
            source=size.source if size else None,
        )
    )
    return Score(
        name="Fong",
        value=points,
        category="high" if points >= t.fong_high_min else "low",
        inputs=tuple(inputs),
        unknown_inputs=tuple(unknown),
        note="unknown factors counted as 0 points" if unknown else None,
    )


def bclc(facts: Facts, cp: Score | None, t: Thresholds = DEFAULT_THRESHOLDS) -> Score | None:
    """BCLC stage (hcc), simplified as clinical-rules.md §4 says; informational only."""
    if facts.tumour_kind != "hcc":
        return None
    cp_class = cp.category if cp is not None else None
    ecog = facts.ecog
    inputs = (
        ScoreInput("Child-Pugh class", cp_class or "unknown"),
        ScoreInput("ECOG", "unknown" if ecog is None else str(ecog)),
        ScoreInput("number of tumours", _or_unknown(facts.lesion_count)),
        ScoreInput(
            "largest tumour", "unknown" if facts.largest_cm is None else f"{facts.largest_cm:g} cm"
        ),
        ScoreInput("macrovascular invasion", "yes" if facts.macrovascular_invasion else "no"),
        ScoreInput("extrahepatic disease", "yes" if facts.extrahepatic_disease else "no"),
    )
    unknown = tuple(i.name for i in inputs if i.value == "unknown")

    def stage(letter: str) -> Score:
        return Score(name="BCLC", value=letter, inputs=inputs, unknown_inputs=unknown)

    if cp_class == "C" or (ecog is not None and ecog >= t.ecog_not_resectable):
        return stage("D")
    if cp_class is None or ecog is None:
        return None
    if facts.macrovascular_invasion or facts.extrahepatic_disease or ecog >= 1:
        return stage("C")
    n, size = facts.lesion_count, facts.largest_cm
    if n is None or size is None:
        return None
    if n == 1 and size <= t.bclc_very_early_max_cm and cp_class == "A" and ecog == 0:
        return stage("0")
    if n == 1 or (2 <= n <= t.bclc_early_max_lesions and size <= t.bclc_early_multiple_max_cm):
        return stage("A")
    return stage("B")


def _or_unknown(value: int | None) -> str:
    return "unknown" if value is None else str(value)


def compute_scores(facts: Facts, t: Thresholds = DEFAULT_THRESHOLDS) -> Scores:
    """Every score of §4. MELD's computation and its inputs are shared with MELD-Na (the
    two used to compute and format the same three labs twice)."""
    cp = child_pugh(facts, t)
    raw_meld = _meld_raw(facts, t)
    return Scores(
        child_pugh=cp,
        albi=albi(facts, t),
        meld=_meld_score(raw_meld),
        meld_na=_meld_na_score(facts, raw_meld, t),
        fong=fong(facts, t),
        bclc=bclc(facts, cp, t),
    )
