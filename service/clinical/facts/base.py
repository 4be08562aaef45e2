"""What every fact group shares: the builder of evidence and notes, the Conditions indexed
once, lab names and display helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Final, get_args

import msgspec

from service.clinical.model import (
    DataQualityNote,
    Evidence,
    LabName,
)
from service.fhir.read import (
    ConditionRead,
    Selection,
)

LAB_UNITS_HIGHER_IS_WORSE: Final = frozenset({"bilirubin", "inr", "creatinine", "afp", "cea"})
"""For two results at the same instant the worse one is kept (deterministic, conservative)."""


LAB_ORDER: Final[tuple[LabName, ...]] = get_args(LabName)
"""The labs in the model's order (``LabName``), so the list is written once."""


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


def completed_years(birth: date, at: datetime) -> int:
    """Completed years at ``at`` (the age a clinician counts on a calendar)."""
    d = at.astimezone(UTC).date()
    return d.year - birth.year - ((d.month, d.day) < (birth.month, birth.day))


def format_value(kind: str, value: float, unit: str) -> str:
    """``2.0 mg/dL``, ``1.3`` (INR), ``95 10^9/L`` — at the reporting precision."""
    text = f"{value:.1f}" if kind in _PRECISION_1 else f"{value:g}"
    return f"{text} {unit}".strip()


@dataclass
class Builder:
    """What every fact group writes besides its record: evidence lines, notes, assumptions."""

    evidence: list[Evidence] = field(default_factory=list)
    notes: list[DataQualityNote] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)

    def add(self, fact: str, value: str, date: datetime | None, *sources: str) -> None:
        """One evidence line; its sources without repeats, in order (most have one)."""
        unique = sources if len(sources) < 2 else tuple(dict.fromkeys(sources))
        self.evidence.append(Evidence(fact, value, date, unique))


class ConditionIndex(msgspec.Struct, frozen=True, gc=False):
    """The selection's Conditions as the fact groups read them."""

    current: tuple[ConditionRead, ...]
    """Current Conditions (fhir-mapping §1)."""
    usable: tuple[ConditionRead, ...]
    """Every Condition not refuted or entered in error, whatever its clinical status."""
    by_id: dict[str, ConditionRead]
    linked_unclassified: frozenset[str]
    """Ids of this patient's usable Conditions the rules do not read that a related-primary
    link names (primary site ``other``)."""
    current_by_tag: dict[str, tuple[ConditionRead, ...]]
    """The current Conditions under each of their tags, in order."""

    def with_tag(self, tag: str) -> tuple[ConditionRead, ...]:
        """The current Conditions with ``tag`` (looked up, not a scan: the fact groups ask
        for about ten tags)."""
        return self.current_by_tag.get(tag, ())


def index_conditions(sel: Selection) -> ConditionIndex:
    current = tuple(c for c in sel.conditions if c.current)
    by_tag: dict[str, list[ConditionRead]] = {}
    for c in current:
        for tag in c.tags:
            by_tag.setdefault(tag, []).append(c)
    return ConditionIndex(
        current=current,
        usable=tuple(c for c in sel.conditions if c.usable),
        by_id={c.id: c for c in sel.conditions if c.id is not None},
        linked_unclassified=sel.linked_unclassified,
        current_by_tag={tag: tuple(found) for tag, found in by_tag.items()},
    )


def refs_text(refs: list[str], limit: int = 5) -> str:
    unique = list(dict.fromkeys(refs))
    text = ", ".join(unique[:limit])
    if len(unique) > limit:
        text += f" and {len(unique) - limit} more"
    return text


def with_original(text: str, original: str | None) -> str:
    return f"{text} (reported {original})" if original else text
