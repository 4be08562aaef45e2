"""Scores of clinical-rules.md §4 against worked examples, boundaries included.

Expected values are worked by hand from the formulas in the spec (shown in comments), not
taken from the code.
"""

from __future__ import annotations

from typing import Any

import pytest

from service.clinical.facts import extract_facts
from service.clinical.model import Facts
from service.clinical.scores import albi, bclc, child_pugh, fong, meld, meld_na

from .builders import AT, NORMAL_LABS, PID, facts, hcc, lab, lab_obs, patient


def with_labs(**values: float) -> Facts:
    labs = dict(NORMAL_LABS)
    for name, value in values.items():
        labs[name] = lab(value)
    return facts(labs=labs)


def from_resources(*resources: dict[str, Any]) -> Facts:
    return extract_facts([patient(), *resources], patient_id=PID, at=AT)


# --- Child-Pugh ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bilirubin", "points"), [(1.9, 1), (2.0, 2), (2.5, 2), (3.0, 2), (3.1, 3)]
)
def test_child_pugh_bilirubin_boundaries_in_middle_band(bilirubin: float, points: int) -> None:
    cp = child_pugh(with_labs(bilirubin=bilirubin))
    assert cp is not None
    assert cp.inputs[0].name == "bilirubin" and cp.inputs[0].points == points


@pytest.mark.parametrize(("albumin", "points"), [(3.6, 1), (3.5, 2), (2.8, 2), (2.7, 3)])
def test_child_pugh_albumin_boundaries_in_middle_band(albumin: float, points: int) -> None:
    cp = child_pugh(with_labs(albumin=albumin))
    assert cp is not None and cp.inputs[1].points == points


@pytest.mark.parametrize(("inr", "points"), [(1.6, 1), (1.7, 2), (2.3, 2), (2.4, 3)])
def test_child_pugh_inr_boundaries_in_middle_band(inr: float, points: int) -> None:
    cp = child_pugh(with_labs(inr=inr))
    assert cp is not None and cp.inputs[2].points == points


@pytest.mark.parametrize(
    ("labs", "ascites", "total", "cls"),
    [
        ({}, None, 5, "A"),
        ({"bilirubin": 2.0}, None, 6, "A"),  # 2+1+1+1+1
        ({"bilirubin": 2.0, "albumin": 3.5}, None, 7, "B"),  # 2+2+1+1+1
        ({"bilirubin": 3.0, "albumin": 2.8, "inr": 2.3}, 3, 10, "C"),  # 2+2+2+3+1
        ({"bilirubin": 3.1, "albumin": 2.7}, 2, 10, "C"),  # 3+3+1+2+1
        ({"bilirubin": 2.0, "albumin": 3.0, "inr": 1.8}, 3, 10, "C"),  # 2+2+2+3+1
        ({"bilirubin": 2.0, "albumin": 3.0, "inr": 1.8}, 2, 9, "B"),  # 2+2+2+2+1
    ],
)
def test_child_pugh_class(
    labs: dict[str, float], ascites: int | None, total: int, cls: str
) -> None:
    f = facts(labs=with_labs(**labs).labs, ascites_points=ascites)
    cp = child_pugh(f)
    assert cp is not None and (cp.value, cp.category) == (total, cls)


def test_child_pugh_needs_bilirubin_albumin_and_inr() -> None:
    for missing in ("bilirubin", "albumin", "inr"):
        labs = {k: v for k, v in NORMAL_LABS.items() if k != missing}
        assert child_pugh(facts(labs=labs)) is None


def test_child_pugh_assumed_mild_ascites_is_stated() -> None:
    cp = child_pugh(facts(ascites_points=2, ascites_assumed=True))
    assert cp is not None and cp.value == 6
    ascites = next(i for i in cp.inputs if i.name == "ascites")
    assert ascites.assumed and ascites.points == 2
    assert cp.note is not None and "assumed mild" in cp.note


# --- rule set v2: unrounded values, SI values on the SI bands (clinical-rules §4) -------------


def cp_from(bilirubin: tuple[float, str], albumin: tuple[float, str] = (42, "g/L")) -> Facts:
    return from_resources(
        lab_obs("b", "1975-2", bilirubin[0], bilirubin[1]),
        lab_obs("a", "1751-7", albumin[0], albumin[1]),
        lab_obs("i", "6301-6", 1.0, "{INR}"),
    )


@pytest.mark.parametrize(
    ("umol", "points"),
    [(33, 1), (33.9, 1), (34, 2), (51, 2), (51.3, 3), (52, 3)],
)
def test_bilirubin_in_umol_per_l_is_scored_on_the_si_bands_v2(umol: float, points: int) -> None:
    # < 34 / 34-51 / > 51 umol/L, boundaries in the middle band, in the reported unit.
    # v1 scored 52 umol/L (3.04 mg/dL, shown 3.0) as 2 points: Child-Pugh B read as A.
    cp = child_pugh(cp_from((umol, "umol/L")))
    assert cp is not None and cp.inputs[0].points == points
    assert "umol/L bands" in cp.inputs[0].value


@pytest.mark.parametrize(("mg_dl", "points"), [(1.99, 1), (2.0, 2), (3.0, 2), (3.01, 3)])
def test_bilirubin_in_mg_per_dl_is_compared_unrounded_v2(mg_dl: float, points: int) -> None:
    # 1.99 shows as 2.0 mg/dL but is below 2; 3.01 shows as 3.0 but is above 3.
    cp = child_pugh(cp_from((mg_dl, "mg/dL")))
    assert cp is not None and cp.inputs[0].points == points
    assert "mg/dL bands" in cp.inputs[0].value


@pytest.mark.parametrize(
    ("g_l", "points"), [(36, 1), (35.5, 1), (35, 2), (28, 2), (27.9, 3), (27, 3)]
)
def test_albumin_in_g_per_l_is_scored_on_the_si_bands_v2(g_l: float, points: int) -> None:
    # > 35 / 28-35 / < 28 g/L, boundaries in the middle band.
    cp = child_pugh(cp_from((1.0, "mg/dL"), (g_l, "g/L")))
    assert cp is not None and cp.inputs[1].points == points
    assert "g/L bands" in cp.inputs[1].value


@pytest.mark.parametrize(("g_dl", "points"), [(3.51, 1), (3.5, 2), (2.8, 2), (2.79, 3)])
def test_albumin_in_g_per_dl_is_compared_unrounded_v2(g_dl: float, points: int) -> None:
    cp = child_pugh(cp_from((1.0, "mg/dL"), (g_dl, "g/dL")))
    assert cp is not None and cp.inputs[1].points == points


def test_hcc_bilirubin_52_umol_per_l_is_child_pugh_b_v2() -> None:
    # clinical-rules §7: "bilirubin 52 umol/L scored 2 points, so a Child-Pugh B patient was
    # resectable". 3 (bilirubin > 51) + 2 (albumin 30 g/L) + 1 + 1 + 1 = 8 -> B.
    cp = child_pugh(cp_from((52, "umol/L"), (30, "g/L")))
    assert cp is not None and (cp.value, cp.category) == (8, "B")


# --- ALBI --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bili_umol", "alb_g_l", "value", "grade"),
    [
        (10, 38.4, -2.60, "1"),  # 0.66*1 - 0.085*38.4 = -2.604
        (10, 38.2, -2.59, "2"),  # 0.66 - 3.247 = -2.587
        (100, 31.9, -1.39, "2"),  # 0.66*2 - 2.7115 = -1.3915
        (100, 31.8, -1.38, "3"),  # 1.32 - 2.703 = -1.383
        (17.104, 40, -2.59, "2"),  # 0.66*1.2331 - 3.4 = -2.586
        # Graded on the unrounded value, as the cut-offs read: shown -2.60 / -1.39, not better.
        (16.3, 40, -2.60, "2"),  # 0.66*1.21219 - 3.4 = -2.59996
        (57.83, 30, -1.39, "3"),  # 0.66*1.76215 - 2.55 = -1.38698
    ],
)
def test_albi_grades(bili_umol: float, alb_g_l: float, value: float, grade: str) -> None:
    f = from_resources(
        lab_obs("b", "1975-2", bili_umol, "umol/L"),
        lab_obs("a", "1751-7", alb_g_l, "g/L"),
    )
    score = albi(f)
    assert score is not None and (score.value, score.category) == (value, grade)


# --- MELD and MELD-Na --------------------------------------------------------------------------


def meld_facts(cr: float, bili: float, inr: float, na: float | None = None) -> Facts:
    labs = {
        "creatinine": lab(cr),
        "bilirubin": lab(bili),
        "inr": lab(inr, ""),
        "albumin": lab(4.0, "g/dL"),
    }
    if na is not None:
        labs["sodium"] = lab(na, "mmol/L")
    return facts(labs=labs)


@pytest.mark.parametrize(
    ("cr", "bili", "inr", "expected"),
    [
        (1.0, 1.0, 1.0, 6),  # 10 * 0.643 = 6.43
        (0.5, 0.3, 0.9, 6),  # each < 1 set to 1
        (2.0, 3.0, 1.5, 22),  # 10*(0.6634 + 0.4153 + 0.4541 + 0.643) = 21.76
        (5.0, 3.0, 1.5, 28),  # creatinine capped at 4: 10*(1.3267+0.4153+0.4541+0.643) = 28.39
        (4.0, 30.0, 6.0, 40),  # 10*(1.3267 + 1.2857 + 2.0068 + 0.643) = 52.6 -> 40
    ],
)
def test_meld(cr: float, bili: float, inr: float, expected: int) -> None:
    score = meld(meld_facts(cr, bili, inr))
    assert score is not None and score.value == expected


@pytest.mark.parametrize(
    ("bili", "na", "expected"),
    [
        (3.0, 130, 26),  # MELD 22 (cr 2, inr 1.5): 22 + 1.32*7 - 0.033*22*7 = 26.16
        (3.0, 120, 29),  # Na bounded to 125: 22 + 15.84 - 8.712 = 29.13
        (3.0, 140, 22),  # Na bounded to 137: no change
    ],
)
def test_meld_na_above_11(bili: float, na: float, expected: int) -> None:
    score = meld_na(meld_facts(2.0, bili, 1.5, na))
    assert score is not None and score.value == expected


def test_meld_na_only_when_meld_above_11() -> None:
    # bilirubin 3.8, creatinine 1, INR 1: MELD = 10*(0.378*ln 3.8 + 0.643) = 11.48 -> 11.
    eleven = meld_na(meld_facts(1.0, 3.8, 1.0, 125))
    assert eleven is not None and eleven.value == 11
    assert eleven.note is not None and "only when MELD > 11" in eleven.note
    # bilirubin 3.9: 10*(0.378*ln 3.9 + 0.643) = 11.57 -> 12; 12 + 15.84 - 4.752 = 23.09.
    twelve = meld_na(meld_facts(1.0, 3.9, 1.0, 125))
    assert twelve is not None and twelve.value == 23
    assert meld_na(meld_facts(1.0, 3.9, 1.0, None)) is None
    assert meld_na(meld_facts(1.0, 1.0, 1.0, None)) is not None  # MELD 6: no sodium needed


# --- Fong --------------------------------------------------------------------------------------


def test_fong_all_five_factors_high() -> None:
    f = facts(
        lesion_count=2,
        largest_cm=6.0,
        node_positive_primary=True,
        disease_free_interval_months=6.0,
        labs={**NORMAL_LABS, "cea": lab(250, "ng/mL")},
    )
    score = fong(f)
    assert score is not None and (score.value, score.category) == (5, "high")
    assert all(i.points == 1 for i in score.inputs)


def test_fong_boundaries_score_zero() -> None:
    # CEA exactly 200 (not > 200), largest exactly 5 cm (not > 5), DFI exactly 12 (not < 12)
    f = facts(
        lesion_count=1,
        largest_cm=5.0,
        node_positive_primary=False,
        disease_free_interval_months=12.0,
        labs={**NORMAL_LABS, "cea": lab(200, "ng/mL")},
    )
    score = fong(f)
    assert score is not None and (score.value, score.category) == (0, "low")


def test_fong_lists_unknown_factors_and_needs_count_size_cea() -> None:
    f = facts(lesion_count=3, largest_cm=2.0, labs={**NORMAL_LABS, "cea": lab(5, "ng/mL")})
    score = fong(f)
    assert score is not None and score.value == 1
    assert set(score.unknown_inputs) == {"node-positive primary", "disease-free interval"}
    assert fong(facts(lesion_count=3, largest_cm=2.0)) is None  # no CEA
    assert fong(facts(primary_site="breast", labs={**NORMAL_LABS, "cea": lab(5)})) is None


def test_fong_low_high_boundary() -> None:
    two = facts(
        lesion_count=2,
        largest_cm=6.0,
        node_positive_primary=False,
        disease_free_interval_months=24.0,
        labs={**NORMAL_LABS, "cea": lab(5)},
    )
    three = facts(
        lesion_count=2,
        largest_cm=6.0,
        node_positive_primary=True,
        disease_free_interval_months=24.0,
        labs={**NORMAL_LABS, "cea": lab(5)},
    )
    s2, s3 = fong(two), fong(three)
    assert s2 is not None and (s2.value, s2.category) == (2, "low")
    assert s3 is not None and (s3.value, s3.category) == (3, "high")


# --- BCLC --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "stage"),
    [
        ({"lesion_count": 1, "largest_cm": 2.0}, "0"),
        ({"lesion_count": 1, "largest_cm": 2.1}, "A"),
        ({"lesion_count": 1, "largest_cm": 2.0, "ecog": 1}, "C"),
        ({"lesion_count": 3, "largest_cm": 3.0}, "A"),
        ({"lesion_count": 3, "largest_cm": 3.1}, "B"),
        ({"lesion_count": 4, "largest_cm": 2.0}, "B"),
        ({"macrovascular_invasion": True}, "C"),
        ({"extrahepatic_disease": True}, "C"),
        ({"ecog": 3}, "D"),
    ],
)
def test_bclc(changes: dict[str, Any], stage: str) -> None:
    f = hcc(**changes)
    score = bclc(f, child_pugh(f))
    assert score is not None and score.value == stage


def test_bclc_child_pugh_c_is_d_and_b_is_not_0() -> None:
    from .builders import CP_B_LABS, CP_C_LABS

    c = hcc(labs=CP_C_LABS)
    score = bclc(c, child_pugh(c))
    assert score is not None and score.value == "D"
    b = hcc(labs=CP_B_LABS, lesion_count=1, largest_cm=1.5)
    score = bclc(b, child_pugh(b))
    assert score is not None and score.value == "A"
    assert bclc(facts(), child_pugh(facts())) is None  # secondary: no BCLC


def test_scores_show_inputs_with_value_unit_and_date() -> None:
    f = from_resources(
        lab_obs("b", "1975-2", 34.2, "umol/L"),
        lab_obs("a", "1751-7", 4.0, "g/dL"),
        lab_obs("i", "6301-6", 1.1, "{INR}"),
    )
    cp = child_pugh(f)
    assert cp is not None
    bili = cp.inputs[0]
    assert bili.value == (
        "2.0 mg/dL (reported 34.2 umol/L); scored on the < 34 / 34-51 / > 51 umol/L bands"
    )
    assert bili.date is not None and bili.source == "Observation/b"
