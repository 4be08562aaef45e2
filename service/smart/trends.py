"""The data of the full view's lab trend plots, read the way the engine reads labs.

Every value comes from :func:`service.fhir.read.select` (the engine's own reader), so a
plotted value is in the engine's canonical unit (fhir-mapping.md §5) and a value the
engine skipped is not plotted either. The window is the engine's: a lab dated before
``at - lookback_days`` is stale (``facts.py`` compares ``time < window_start``), a lab
dated after ``at`` is not used at all and not plotted. The point the engine used (the
latest one inside the window) is marked, so the plot and the score tables agree.

The browser draws the plots (uPlot, vendored under ``service/static/smart/vendor``)
from :meth:`TrendData.to_json`; this module is the part that decides what is shown, and
the unit tests check it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from service.clinical.model import Assessment
from service.fhir.read import Selection

PLOTTED: Final[tuple[tuple[str, str], ...]] = (
    ("bilirubin", "Bilirubin"),
    ("albumin", "Albumin"),
    ("inr", "INR"),
    ("platelets", "Platelets"),
    ("creatinine", "Creatinine"),
    ("afp", "AFP"),
    ("cea", "CEA"),
)
"""Labs plotted, in display order (AFP or CEA: see :func:`tumour_marker_labs`)."""


@dataclass(frozen=True)
class TrendPoint:
    time: datetime
    value: float
    stale: bool
    """Dated before the lookback window: the engine does not use it."""
    used: bool
    """The value the engine used for this lab (the latest inside the window)."""
    source: str
    original: str | None = None


@dataclass(frozen=True)
class Trend:
    lab: str
    label: str
    unit: str
    points: tuple[TrendPoint, ...]
    """Oldest first."""

    @property
    def latest(self) -> TrendPoint | None:
        return self.points[-1] if self.points else None


@dataclass(frozen=True)
class TrendData:
    window_start: datetime
    window_end: datetime
    lookback_days: int
    trends: tuple[Trend, ...]

    def to_json(self) -> dict[str, Any]:
        """What the page's script draws: times in epoch seconds, flags per point."""
        return {
            "windowStart": self.window_start.timestamp(),
            "windowEnd": self.window_end.timestamp(),
            "lookbackDays": self.lookback_days,
            "trends": [
                {
                    "lab": t.lab,
                    "label": t.label,
                    "unit": t.unit,
                    "points": [
                        {
                            "t": p.time.timestamp(),
                            "v": p.value,
                            "stale": p.stale,
                            "used": p.used,
                            "date": p.time.date().isoformat(),
                        }
                        for p in t.points
                    ],
                }
                for t in self.trends
            ],
        }


def tumour_marker_labs(assessment: Assessment, selection: Selection) -> tuple[str, ...]:
    """AFP for hepatocellular carcinoma, CEA for colorectal metastases; any marker with
    recorded values is shown too, and AFP when nothing decides (the data-needed card asks
    for AFP)."""
    facts = assessment.facts
    recorded = {o.kind for o in selection.observations if o.kind in ("afp", "cea")}
    wanted: set[str] = set(recorded)
    if facts.tumour_kind == "hcc":
        wanted.add("afp")
    elif facts.tumour_kind == "secondary" and facts.primary_site == "colorectal":
        wanted.add("cea")
    if not wanted:
        wanted.add("afp")
    return tuple(lab for lab in ("afp", "cea") if lab in wanted)


def build_trends(assessment: Assessment, selection: Selection, *, lookback_days: int) -> TrendData:
    """The trend of every plotted lab of this patient (labs without a value included,
    so the page can say "no values recorded")."""
    at = assessment.facts.evaluated_at
    window_start = at - timedelta(days=lookback_days)
    used_sources: dict[str, str] = {k: m.source for k, m in assessment.facts.labs.items()}
    shown = {"bilirubin", "albumin", "inr", "platelets", "creatinine"}
    shown |= set(tumour_marker_labs(assessment, selection))
    trends = []
    for lab, label in PLOTTED:
        if lab not in shown:
            continue
        observations = sorted(
            (
                o
                for o in selection.observations
                if o.kind == lab and o.quantity is not None and o.time <= at
            ),
            key=lambda o: o.time,
        )
        used = used_sources.get(lab)
        units = [o.quantity.unit for o in observations if o.quantity is not None]
        points = tuple(
            TrendPoint(
                time=o.time,
                value=o.quantity.value,
                stale=o.time < window_start,
                used=used == o.ref,
                source=o.ref,
                original=o.quantity.original,
            )
            for o in observations
            if o.quantity is not None
        )
        trends.append(Trend(lab=lab, label=label, unit=units[-1] if units else "", points=points))
    return TrendData(
        window_start=window_start,
        window_end=at,
        lookback_days=lookback_days,
        trends=tuple(trends),
    )
