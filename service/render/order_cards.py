"""Cards of the order-sign check: one per draft order that clinical-rules §8 flags.

The findings come from :func:`service.clinical.order_checks.check_orders`; the wording from
``cards/order-checks.yaml`` (a clinician edits it like the rest of ``cards/``), the source
label, option names and override reasons from the main card content, so an order card and
the assessment card of the same patient speak with one voice. An agreeing order gets no card.

A ``critical`` or ``warning`` card names the order and the stop, shows the facts that made
the stop hold (with values and dates) and offers, as suggestions, the options the
assessment does offer (the same draft proposals the patient-view card carries), except the
order itself and any option a critical stop holds for
(:func:`service.clinical.order_checks.alternatives`). An ``info``
card (indeterminate assessment) lists what data would decide it. Every card has
overrideReasons; none blocks anything (CDS Hooks has no blocking).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import jsonschema
import yaml

from service.clinical.model import VERDICTS, Assessment, Evidence
from service.clinical.order_checks import OrderFinding, alternatives
from service.codesystems import CARD_TOPIC_SYSTEM
from service.render import markdown as md
from service.render import templates
from service.render.cards import (
    RenderContext,
    option_suggestions,
    override_reasons,
)
from service.render.content import CardContent, ContentError, default_cards_dir, load_content

__all__ = ["OrderCheckContent", "load_order_content", "render_order_cards"]

FILE: Final = "order-checks.yaml"
TOPIC: Final = {
    "system": CARD_TOPIC_SYSTEM,
    "code": "order-check",
    "display": "Liver-directed order check",
}
MAX_SUMMARY: Final = 139
STOP_CODES: Final = (
    "failing-liver-or-performance",
    "jaundice",
    "previous-hemihepatectomy",
    "hemihepatectomy-child-pugh-b",
    "hemihepatectomy-hcc-portal-or-bilirubin",
    "resection-hcc-vascular-or-extrahepatic",
    "tace-child-pugh-8",
    "hemihepatectomy-flr",
    "embolisation-hcc-macrovascular",
    "transplant-hcc-extrahepatic",
)
"""The stops of ``service/clinical/order_checks.py``; each needs its wording."""

_TEXT: Final = {"type": "string", "minLength": 1}
_TEXT_KEYS: Final = (
    "facts_heading",
    "options_heading",
    "no_options",
    "not_offered",
    "indeterminate",
    "missing_heading",
    "advisory",
)
_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["summaries", "texts", "stops"],
    "properties": {
        "summaries": {
            "type": "object",
            "additionalProperties": False,
            "required": ["critical", "warning", "not-offered", "indeterminate"],
            "properties": {
                k: _TEXT for k in ("critical", "warning", "not-offered", "indeterminate")
            },
        },
        "texts": {
            "type": "object",
            "additionalProperties": False,
            "required": [*_TEXT_KEYS, "verdicts"],
            "properties": {
                **{key: _TEXT for key in _TEXT_KEYS},
                "verdicts": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": list(VERDICTS),
                    "properties": {verdict: _TEXT for verdict in VERDICTS},
                },
            },
        },
        "stops": {
            "type": "object",
            "additionalProperties": False,
            "required": list(STOP_CODES),
            "properties": {
                code: {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["title", "why", "source"],
                    "properties": {"title": _TEXT, "why": _TEXT, "source": _TEXT},
                }
                for code in STOP_CODES
            },
        },
    },
}


@dataclass(frozen=True)
class StopContent:
    title: str
    why: str
    source: str


@dataclass(frozen=True)
class OrderCheckContent:
    """The wording of ``cards/order-checks.yaml``, checked."""

    summaries: Mapping[str, str]
    texts: Mapping[str, str]
    verdicts: Mapping[str, str]
    stops: Mapping[str, StopContent]


def load_order_content(cards_dir: str | Path = "") -> OrderCheckContent:
    """The checked order-check wording of ``cards_dir``; raises ContentError when wrong."""
    return _load(str(cards_dir))


@functools.lru_cache(maxsize=16)
def _load(cards_dir: str) -> OrderCheckContent:
    directory = Path(cards_dir).expanduser() if cards_dir else default_cards_dir()
    path = directory / FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ContentError(directory, [f"{FILE}: cannot be read ({type(exc).__name__})"]) from None
    problems = [
        f"{FILE}: {'.'.join(str(p) for p in error.absolute_path) or '(top level)'}: {error.message}"
        for error in jsonschema.Draft202012Validator(_SCHEMA).iter_errors(raw)
    ]
    if problems:
        raise ContentError(directory, problems)
    texts = {k: v for k, v in raw["texts"].items() if k != "verdicts"}
    return OrderCheckContent(
        summaries=raw["summaries"],
        texts=texts,
        verdicts=raw["texts"]["verdicts"],
        stops={code: StopContent(**value) for code, value in raw["stops"].items()},
    )


def render_order_cards(
    findings: list[OrderFinding], assessment: Assessment, ctx: RenderContext
) -> list[dict[str, Any]]:
    """The ``cards`` of an order-sign response: one per flagged order, none when all agree."""
    flagged = [f for f in findings if f.indicator is not None]
    if not flagged:
        return []
    content = load_content(ctx.cards_dir)
    wording = load_order_content(ctx.cards_dir)
    return [_card(f, assessment, ctx, content, wording) for f in flagged]


def _card(
    finding: OrderFinding,
    assessment: Assessment,
    ctx: RenderContext,
    content: CardContent,
    wording: OrderCheckContent,
) -> dict[str, Any]:
    order = finding.order.label
    values = {
        "order": order,
        "stop": wording.stops[finding.stops[0].code].title if finding.stops else "",
        "rule": assessment.rule,
        "verdict": wording.verdicts.get(assessment.verdict or "", assessment.verdict or ""),
    }
    kind = finding.finding
    summary_key = {
        "critical-stop": "critical",
        "warning-stop": "warning",
        "not-offered": "not-offered",
        "indeterminate": "indeterminate",
    }[kind]
    summary = _shorten(templates.fill(wording.summaries[summary_key], values))
    card: dict[str, Any] = {
        "uuid": ctx.new_uuid(),
        "summary": summary,
        "indicator": finding.indicator,
        "detail": _detail(finding, assessment, content, wording, values),
        "source": {"label": content.source_label, "topic": dict(TOPIC)},
    }
    if kind != "indeterminate":
        instead = replace(assessment, options=alternatives(assessment, finding))
        suggestions = option_suggestions(content, instead, ctx)
        if suggestions:
            card["suggestions"] = suggestions
            card["selectionBehavior"] = "any"
    reasons = override_reasons(content, "order-check")
    if reasons:
        card["overrideReasons"] = reasons
    return card


def _detail(
    finding: OrderFinding,
    assessment: Assessment,
    content: CardContent,
    wording: OrderCheckContent,
    values: Mapping[str, str],
) -> str:
    texts = wording.texts
    parts: list[str] = []
    if finding.stops:
        for stop in finding.stops:
            text = wording.stops[stop.code]
            parts.append(
                f"**{md.text(_capital(text.title))}.** {md.text(text.why)} ({md.text(text.source)})"
            )
        facts = [fact for stop in finding.stops for fact in stop.facts]
        if facts:
            parts.append(_bullets(texts["facts_heading"], [_fact(f) for f in _unique(facts)]))
    elif finding.finding == "not-offered":
        reason = content.reason(assessment.rule)
        parts.append(md.text(templates.fill(texts["not_offered"], {**values, "reason": reason})))
    elif finding.finding == "indeterminate":
        parts.append(md.text(texts["indeterminate"]))
        missing = [
            _missing_line(content, m.fact, m.detail) for m in assessment.missing if m.essential
        ] or [_missing_line(content, m.fact, m.detail) for m in assessment.missing]
        if missing:
            parts.append(_bullets(texts["missing_heading"], missing))
    if finding.finding != "indeterminate":
        offered = [
            md.text(_option_label(content, o.code)) + (" (recommended)" if o.recommended else "")
            for o in alternatives(assessment, finding)
            if o.code != "mdt-review"
        ]
        parts.append(
            _bullets(texts["options_heading"], offered) if offered else md.text(texts["no_options"])
        )
    parts.append(md.text(texts["advisory"]))
    return "\n\n".join(parts)


def _fact(fact: Evidence) -> str:
    when = f" ({md.day(fact.date)})" if fact.date is not None else ""
    return f"{md.text(fact.fact)}: {md.text(fact.value)}{when}"


def _unique(facts: list[Evidence]) -> list[Evidence]:
    seen: dict[tuple[str, str], Evidence] = {}
    for fact in facts:
        seen.setdefault((fact.fact, fact.value), fact)
    return list(seen.values())


def _missing_line(content: CardContent, fact: str, detail: str) -> str:
    found = content.missing.get(fact)
    label = found.label if found is not None else fact
    return md.text(label + (f": {detail}" if detail else ""))


def _option_label(content: CardContent, code: str) -> str:
    found = content.options.get(code)
    return found.label if found is not None else code


def _bullets(heading: str, items: list[str]) -> str:
    return f"**{md.text(heading)}**\n\n" + "\n".join(f"- {item}" for item in items)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_SUMMARY else text[: MAX_SUMMARY - 1].rstrip() + "…"
