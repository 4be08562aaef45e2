"""The full assessment as the page shows it: everything the compact card leaves out.

Built from the hook's own :class:`Assessment` and the card wording of ``cards/``
(:func:`service.render.content.load_content`), so the page and the card never disagree
and a clinician edits the wording in one place. Only plain values leave this module;
the Jinja2 template escapes every one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from service.clinical.model import Assessment, Evidence, Score
from service.render import templates
from service.render.cards import cited_sources, shown_scores, summary
from service.render.content import CardContent, SourceContent, load_content
from service.settings import Settings
from service.smart import board, liver_map, trends
from service.smart.record import EvaluatedRecord


@dataclass(frozen=True)
class Row:
    label: str
    value: str
    date: datetime | None = None
    sources: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class ScoreView:
    label: str
    value: str
    inputs: tuple[Row, ...]
    unknown: tuple[str, ...]
    note: str


@dataclass(frozen=True)
class OptionView:
    code: str
    label: str
    qualifier: str
    recommended: bool
    rule: str
    description: str
    risks: tuple[str, ...]
    for_this_patient: tuple[str, ...]
    sources: tuple[SourceContent, ...]


@dataclass(frozen=True)
class FullView:
    """Everything the page renders for one patient."""

    patient_id: str
    banner: str
    evaluated_at: datetime
    ruleset_version: str
    has_assessment: bool
    summary: str
    verdict: str
    verdict_code: str
    rule: str
    rule_text: str
    explanation: str
    notes: tuple[str, ...]
    facts: tuple[Row, ...]
    scores: tuple[ScoreView, ...]
    options: tuple[OptionView, ...]
    missing: tuple[Row, ...]
    assumptions: tuple[str, ...]
    data_quality: tuple[str, ...]
    sources: tuple[SourceContent, ...]
    liver: liver_map.LiverMap
    liver_svg: str
    resection: liver_map.Resection | None
    imaging_lookback_days: int
    option_labels: dict[str, str]
    """Option code -> its label in ``cards/`` (for the resections of the map)."""
    trends: trends.TrendData
    board_summary: str
    service_request: dict[str, Any]

    @property
    def service_request_json(self) -> str:
        return orjson.dumps(self.service_request, option=orjson.OPT_INDENT_2).decode()

    @property
    def trends_json(self) -> dict[str, Any]:
        return self.trends.to_json()


def _humanise(name: str) -> str:
    return name.replace("_", " ").replace("-", " ")


def _value(value: float | int | str) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _fact_row(content: CardContent, evidence: Evidence) -> Row:
    label = content.facts.get(evidence.fact) or _humanise(evidence.fact)
    known = content.fact_values.get(evidence.fact, {}).get(evidence.value)
    return Row(label, known or evidence.value, evidence.date, evidence.sources)


def _score_view(content: CardContent, key: str, score: Score) -> ScoreView:
    text = content.scores[key]
    value = templates.fill(text.value, {"value": _value(score.value)})
    if score.category is not None and text.category is not None:
        value += ", " + templates.fill(text.category, {"category": score.category})
    inputs = tuple(
        Row(
            label=content.facts.get(i.name) or _humanise(i.name),
            value=i.value,
            date=i.date,
            sources=(i.source,) if i.source else (),
            note=" · ".join(
                part
                for part in (
                    f"{i.points} points" if i.points is not None else "",
                    "assumed" if i.assumed else "",
                )
                if part
            ),
        )
        for i in score.inputs
    )
    unknown = tuple(content.facts.get(n) or _humanise(n) for n in score.unknown_inputs)
    return ScoreView(text.label, value, inputs, unknown, score.note or text.note or "")


def _options(
    content: CardContent, assessment: Assessment, sources: list[SourceContent]
) -> tuple[OptionView, ...]:
    modifiers = assessment.risk_modifiers
    out = []
    for option in sorted(assessment.options, key=lambda o: not o.recommended):
        text = content.options.get(option.code)
        if text is None:
            continue
        qualifier = ""
        if option.qualifier:
            qualifier = content.qualifiers.get(option.qualifier) or _humanise(option.qualifier)
        rule = option.rule
        if rule.startswith("addition:"):
            rule = content.additions.get(rule.removeprefix("addition:")) or rule
        out.append(
            OptionView(
                code=option.code,
                label=text.label,
                qualifier=qualifier,
                recommended=option.recommended,
                rule=rule,
                description=text.description,
                risks=text.risks,
                for_this_patient=tuple(v for m, v in text.modifiers.items() if m in modifiers),
                sources=tuple(s for s in sources if option.code in s.options),
            )
        )
    return tuple(out)


def _missing(content: CardContent, assessment: Assessment) -> tuple[Row, ...]:
    rows = []
    for item in assessment.missing:
        known = content.missing.get(item.fact)
        label = known.label if known is not None else _humanise(item.fact)
        if item.stale_since is not None:
            status = "out of date"
        elif known is not None and known.missing:
            status = known.missing
        else:
            status = "not recorded"
        note = "essential" if item.essential else "would refine"
        if item.detail:
            note += f"; {item.detail}"
        rows.append(Row(label, status, item.stale_since, (), note))
    return tuple(rows)


def build_view(record: EvaluatedRecord, settings: Settings) -> FullView:
    """The page's content for an evaluated record."""
    content = load_content(settings.cards_dir)
    assessment = record.assessment
    facts = assessment.facts
    verdict_code = assessment.verdict or "indeterminate"
    has_assessment = assessment.verdict is not None
    sources = cited_sources(content, assessment) if has_assessment else []
    rule = content.rules.get(assessment.rule)
    liver = liver_map.build_map(
        assessment, record.selection, imaging_lookback_days=settings.imaging_lookback_days
    )
    resection = liver.resections[0] if liver.resections else None
    trend_data = trends.build_trends(
        assessment, record.selection, lookback_days=settings.lookback_days
    )
    view = FullView(
        patient_id=record.patient_id,
        banner=record.banner,
        evaluated_at=facts.evaluated_at,
        ruleset_version=content.version,
        has_assessment=has_assessment,
        summary=summary(content, assessment) if has_assessment else "",
        verdict=content.topics.get(verdict_code, verdict_code),
        verdict_code=verdict_code,
        rule=assessment.rule,
        rule_text=rule.text if rule is not None else content.texts["reason_unknown"],
        explanation=content.verdict_explanations.get(verdict_code, ""),
        notes=tuple(content.notes.get(n) or n for n in dict.fromkeys(assessment.notes)),
        facts=tuple(_fact_row(content, e) for e in facts.evidence),
        scores=tuple(_score_view(content, k, s) for k, s in shown_scores(assessment)),
        options=_options(content, assessment, sources),
        missing=_missing(content, assessment),
        assumptions=assessment.assumptions,
        data_quality=tuple(f"{n.resource}: {n.problem}" for n in assessment.data_quality),
        sources=tuple(sources),
        liver=liver,
        liver_svg=liver_map.svg(liver, resection=resection),
        resection=resection,
        imaging_lookback_days=settings.imaging_lookback_days,
        option_labels={code: option.label for code, option in content.options.items()},
        trends=trend_data,
        board_summary="",
        service_request={},
    )
    text = board.summary_text(view)
    return _with_board(view, text, board.mdt_service_request(view, content, text, assessment))


def _with_board(view: FullView, text: str, request: dict[str, Any]) -> FullView:
    from dataclasses import replace

    return replace(view, board_summary=text, service_request=request)
