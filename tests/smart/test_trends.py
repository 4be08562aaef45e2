"""The trend plots' data: the lookback window, stale points, the value the scores used,
canonical units, and which tumour marker is plotted."""

from __future__ import annotations

from datetime import timedelta

from clinical import builders as b

from service.smart import trends

from .records import evaluated

PID = b.PID
WINDOW = 90


def bilirubin(rid: str, value: float, days_before: float, unit: str = "mg/dL") -> dict:
    return b.lab_obs(rid, "1975-2", value, unit, when=b.AT - timedelta(days=days_before))


def base() -> list[dict]:
    return [r for r in b.colorectal_right(PID) if r["id"] != "bili"]


async def test_points_before_the_window_are_stale_and_the_latest_in_window_is_used() -> None:
    resources = [
        *base(),
        bilirubin("b-old", 2.5, WINDOW + 30),
        bilirubin("b-edge-out", 2.0, WINDOW, unit="mg/dL"),
        bilirubin("b-in", 1.2, WINDOW - 1),
        bilirubin("b-latest", 0.9, 3),
    ]
    # One second before the window opens is outside it (the engine compares time < start).
    resources[-3]["effectiveDateTime"] = b.iso(b.AT - timedelta(days=WINDOW, seconds=1))
    record = await evaluated(resources, PID, b.AT, lookback_days=WINDOW)
    data = trends.build_trends(record.assessment, record.selection, lookback_days=WINDOW)
    assert data.window_start == b.AT - timedelta(days=WINDOW) and data.window_end == b.AT
    (bili,) = [t for t in data.trends if t.lab == "bilirubin"]
    assert [(p.source, p.stale, p.used) for p in bili.points] == [
        ("Observation/b-old", True, False),
        ("Observation/b-edge-out", True, False),
        ("Observation/b-in", False, False),
        ("Observation/b-latest", False, True),
    ]
    used = record.assessment.facts.labs["bilirubin"]
    assert (used.source, used.value) == ("Observation/b-latest", 0.9)


async def test_a_value_exactly_at_the_window_start_is_in_the_window() -> None:
    record = await evaluated([*base(), bilirubin("b", 1.0, WINDOW)], PID, b.AT)
    data = trends.build_trends(record.assessment, record.selection, lookback_days=WINDOW)
    (point,) = next(t for t in data.trends if t.lab == "bilirubin").points
    assert not point.stale and point.used


async def test_only_stale_values_are_plotted_but_none_is_used() -> None:
    record = await evaluated([*base(), bilirubin("b", 1.0, 200)], PID, b.AT)
    data = trends.build_trends(record.assessment, record.selection, lookback_days=WINDOW)
    (point,) = next(t for t in data.trends if t.lab == "bilirubin").points
    assert point.stale and not point.used
    assert "bilirubin" in record.assessment.facts.stale


async def test_values_are_in_the_engines_canonical_unit_and_future_ones_are_left_out() -> None:
    resources = [
        *base(),
        bilirubin("si", 34.2, 10, unit="umol/L"),
        bilirubin("future", 5.0, -2),
    ]
    record = await evaluated(resources, PID, b.AT)
    data = trends.build_trends(record.assessment, record.selection, lookback_days=WINDOW)
    bili = next(t for t in data.trends if t.lab == "bilirubin")
    assert bili.unit == "mg/dL"
    assert [(p.source, p.value) for p in bili.points] == [("Observation/si", 2.0)]
    assert bili.points[0].original == "34.2 umol/L"


async def test_every_liver_lab_is_listed_even_without_values_and_cea_for_colorectal() -> None:
    record = await evaluated(base(), PID, b.AT)
    data = trends.build_trends(record.assessment, record.selection, lookback_days=WINDOW)
    labs = [t.lab for t in data.trends]
    assert labs == ["bilirubin", "albumin", "inr", "platelets", "creatinine", "cea"]
    assert next(t for t in data.trends if t.lab == "platelets").points == ()


async def test_afp_is_plotted_for_hepatocellular_carcinoma() -> None:
    resources = [r for r in base() if r["resourceType"] != "Condition"]
    resources.append(b.condition("hcc", b.ICD, "C22.0", sites=[b.site(b.SEG["VI"])]))
    record = await evaluated(resources, PID, b.AT)
    data = trends.build_trends(record.assessment, record.selection, lookback_days=WINDOW)
    assert [t.lab for t in data.trends][-1] == "afp"


async def test_json_for_the_page_carries_the_window_and_flags() -> None:
    record = await evaluated([*base(), bilirubin("b", 1.0, 200)], PID, b.AT)
    data = trends.build_trends(record.assessment, record.selection, lookback_days=WINDOW)
    payload = data.to_json()
    assert payload["windowStart"] == (b.AT - timedelta(days=WINDOW)).timestamp()
    assert payload["lookbackDays"] == WINDOW
    bili = next(t for t in payload["trends"] if t["lab"] == "bilirubin")
    assert bili["points"] == [
        {
            "t": (b.AT - timedelta(days=200)).timestamp(),
            "v": 1.0,
            "stale": True,
            "used": False,
            "date": (b.AT - timedelta(days=200)).date().isoformat(),
        }
    ]
