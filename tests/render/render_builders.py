"""Hand-built engine outputs for the renderer's tests (no engine needed).

Each builder returns a plausible :class:`Assessment` for one row of clinical-rules.md §3;
keyword arguments replace fields so a test states only what it is about.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import fields, replace
from datetime import UTC, datetime
from typing import Any

from service.clinical.model import (
    Assessment,
    DataQualityNote,
    Evidence,
    Facts,
    MissingItem,
    OfferedOption,
    Score,
    ScoreInput,
    Scores,
)
from service.render.cards import RenderContext

AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
LAB_DAY = datetime(2026, 10, 20, 8, 0, tzinfo=UTC)
IMAGING_DAY = datetime(2026, 10, 14, 11, 0, tzinfo=UTC)
PATIENT = "pat-123"


def counter_uuids() -> Callable[[], str]:
    """Deterministic, distinct uuids: 00000000-0000-4000-8000-000000000001, ..."""
    numbers = itertools.count(1)
    return lambda: f"00000000-0000-4000-8000-{next(numbers):012d}"


def context(**overrides: Any) -> RenderContext:
    values: dict[str, Any] = {"patient_id": PATIENT, "new_uuid": counter_uuids()}
    values.update(overrides)
    return RenderContext(**values)


def child_pugh(points: int = 5, category: str = "A", *, assumed_ascites: bool = False) -> Score:
    return Score(
        name="Child-Pugh",
        value=points,
        category=category,
        inputs=(
            ScoreInput("bilirubin", "1.1 mg/dL", LAB_DAY, 1, source="Observation/bili-1"),
            ScoreInput("albumin", "3.9 g/dL", LAB_DAY, 1, source="Observation/alb-1"),
            ScoreInput("inr", "1.1", LAB_DAY, 1, source="Observation/inr-1"),
            ScoreInput(
                "ascites",
                "mild (severity not recorded)" if assumed_ascites else "none",
                None,
                2 if assumed_ascites else 1,
                assumed=assumed_ascites,
            ),
            ScoreInput("encephalopathy", "none", None, 1),
        ),
    )


def scores(**overrides: Any) -> Scores:
    base = Scores(
        child_pugh=child_pugh(),
        albi=Score(
            "ALBI",
            -2.873,
            "1",
            (
                ScoreInput("bilirubin", "18.8 umol/L", LAB_DAY),
                ScoreInput("albumin", "39 g/L", LAB_DAY),
            ),
        ),
        meld=Score("MELD", 8, None, (ScoreInput("creatinine", "0.9 mg/dL", LAB_DAY),)),
    )
    return replace(base, **overrides)


def colorectal_right(**overrides: Any) -> Assessment:
    """Rule 21: colorectal metastases confined to the right lobe, Child-Pugh A, ECOG 0."""
    facts = Facts(
        patient_id=PATIENT,
        evaluated_at=AT,
        tumour_kind="secondary",
        liver_conditions=("Condition/liver-met-1",),
        confirmed=True,
        primary_site="colorectal",
        distribution="right",
        lesion_count=2,
        largest_cm=2.4,
        ecog=0,
        age=61,
        evidence=(
            Evidence(
                "tumour_kind",
                "secondary",
                IMAGING_DAY,
                ("Condition/liver-met-1",),
            ),
            Evidence("primary_site", "colorectal", None, ("Condition/crc-1",)),
            Evidence(
                "distribution", "right (segments VI, VII)", IMAGING_DAY, ("Condition/liver-met-1",)
            ),
            Evidence("lesion_count", "2", IMAGING_DAY, ("Observation/count-1",)),
            Evidence("largest_cm", "2.4 cm", IMAGING_DAY, ("Observation/size-1",)),
            Evidence("ecog", "0", LAB_DAY, ("Observation/ecog-1",)),
        ),
    )
    base = Assessment(
        facts=facts,
        verdict="resectable",
        rule="21",
        options=(
            OfferedOption("resection-right-hepatectomy", True, rule="21"),
            OfferedOption("mdt-review", True, rule="21"),
            OfferedOption("ablation", False, rule="21"),
            OfferedOption("systemic-therapy", False, "perioperative", rule="21"),
        ),
        scores=scores(
            fong=Score(
                "Fong",
                1,
                "low",
                (
                    ScoreInput("lesion count", "2", IMAGING_DAY, 1),
                    ScoreInput("largest size", "2.4 cm", IMAGING_DAY, 0),
                ),
                unknown_inputs=("cea",),
            )
        ),
    )
    return _apply(base, overrides)


def hcc_cirrhosis_child_b(**overrides: Any) -> Assessment:
    """Rule 9: HCC, Child-Pugh B, cirrhosis, within Milan, small for ablation."""
    facts = Facts(
        patient_id=PATIENT,
        evaluated_at=AT,
        tumour_kind="hcc",
        liver_conditions=("Condition/hcc-1",),
        confirmed=True,
        distribution="left",
        single_segment=True,
        segment="III",
        lesion_count=1,
        largest_cm=2.8,
        cirrhosis=True,
        ecog=1,
        symptoms=frozenset({"ascites"}),
        evidence=(
            Evidence("tumour_kind", "hcc", IMAGING_DAY, ("Condition/hcc-1",)),
            Evidence("distribution", "left (segment III)", IMAGING_DAY, ("Condition/hcc-1",)),
            Evidence("cirrhosis", "present", None, ("Condition/cirr-1",)),
            Evidence("ecog", "1 (from Karnofsky 80)", LAB_DAY, ("Observation/kps-1",)),
        ),
    )
    base = Assessment(
        facts=facts,
        verdict="not-resectable",
        rule="9",
        options=(
            OfferedOption("transplant-evaluation", True, rule="9"),
            OfferedOption("mdt-review", True, rule="9"),
            OfferedOption("ablation", False, rule="9"),
            OfferedOption("tace", False, rule="9"),
            OfferedOption("systemic-therapy", False, rule="9"),
            OfferedOption(
                "best-supportive-care",
                False,
                "symptom relief",
                rule="addition:best-supportive-care",
            ),
        ),
        scores=scores(
            child_pugh=child_pugh(8, "B", assumed_ascites=True),
            meld_na=Score("MELD-Na", 14, None, (ScoreInput("sodium", "131 mmol/L", LAB_DAY),)),
            bclc=Score("BCLC", "A", None, ()),
            fong=Score("Fong", 2, "low", ()),
        ),
        assumptions=("Ascites severity not recorded: scored as mild (2 points).",),
        risk_modifiers=frozenset({"cirrhosis", "child-pugh-b", "ascites"}),
    )
    return _apply(base, overrides)


def indeterminate_missing(**overrides: Any) -> Assessment:
    """Rule 5: HCC with ECOG and liver sites missing, INR out of date, FLR unknown."""
    facts = Facts(
        patient_id=PATIENT,
        evaluated_at=AT,
        tumour_kind="hcc",
        liver_conditions=("Condition/hcc-2", "Condition/hcc-3"),
        confirmed=True,
        largest_cm=4.0,
        stale={"inr": datetime(2026, 3, 2, tzinfo=UTC)},
        evidence=(Evidence("tumour_kind", "hcc", IMAGING_DAY, ("Condition/hcc-2",)),),
        data_quality=(
            DataQualityNote("Observation/bad-unit", "bilirubin unit 'mmol' unknown; not used"),
        ),
    )
    base = Assessment(
        facts=facts,
        verdict="indeterminate",
        rule="5",
        options=(OfferedOption("mdt-review", True, rule="5"),),
        scores=Scores(),
        missing=(
            MissingItem("distribution", True),
            MissingItem("lesion-count", True),
            MissingItem(
                "child-pugh", True, stale_since=datetime(2026, 3, 2, tzinfo=UTC), detail="INR"
            ),
            MissingItem("ecog", True),
            MissingItem("flr", False),
        ),
        data_quality=facts.data_quality,
    )
    return _apply(base, overrides)


def no_malignancy() -> Assessment:
    """Rule 0: no current liver malignancy."""
    return Assessment(facts=Facts(patient_id=PATIENT, evaluated_at=AT), verdict=None, rule="0")


def _apply(base: Assessment, overrides: dict[str, Any]) -> Assessment:
    """Replace fields; a name only Facts has (e.g. ``distribution``) goes to the facts."""
    assessment_fields = {f.name for f in fields(Assessment)}
    facts_fields = {k: overrides.pop(k) for k in list(overrides) if k not in assessment_fields}
    facts = replace(base.facts, **facts_fields) if facts_fields else base.facts
    return replace(base, facts=facts, **overrides)


def all_examples() -> list[Assessment]:
    return [colorectal_right(), hcc_cirrhosis_child_b(), indeterminate_missing()]


def walk(value: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    """Every (JSONPath-ish, value) pair of a JSON value, containers included."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, f"{path}[{index}]")
