"""Assessment -> CDS Hooks 2.0 cards (shared/spec/cards.md).

One assessment card whenever the engine gave a verdict, plus one data-needed card when a
fact is missing or out of date; no cards at all for rule 0. All wording comes from
``cards/`` (:mod:`service.render.content`); this module only chooses and assembles it.
Values from the engine are numbers, codes and references; any of them that reaches the
Markdown detail goes through :func:`service.render.markdown.text`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from service import uuids
from service.clinical.model import (
    Assessment,
    Evidence,
    Facts,
    Score,
)
from service.render import compact, proposals, schema, templates
from service.render import markdown as md
from service.render.content import (
    RULE_VERDICTS,
    SEGMENTS,
    SUMMARY_MAX,
    CardContent,
    SourceContent,
    load_content,
)
from service.render.data_needed import data_needed_card
from service.render.prepared import (
    CitationKey,
    OptionWording,
    option_content,
    plain_qualifier,
    prepared,
)

INDICATORS: dict[str, str] = {
    "resectable": "info",
    "potentially-resectable": "info",
    "not-resectable": "warning",
    "indeterminate": "info",
}
"""cards.md: warning only for not-resectable."""


@dataclass(frozen=True)
class RenderContext:
    """What rendering needs beyond the assessment."""

    patient_id: str
    smart_app_url: str = ""
    new_uuid: Callable[[], str] = field(default=uuids.new_uuid)
    cards_dir: str = ""
    """``Settings.cards_dir``: the card content directory; empty means the shipped ``cards/``."""


def render_cards(assessment: Assessment, ctx: RenderContext) -> list[dict[str, Any]]:
    """The ``cards`` array of the response (empty when the assessment has no cards)."""
    if assessment.verdict is None:
        return []
    content = load_content(ctx.cards_dir)
    cards = [assessment_card(assessment, ctx, content)]
    if assessment.missing:
        cards.append(data_needed_card(assessment, ctx.patient_id, ctx.new_uuid, content))
    return cards


# --- the summary -------------------------------------------------------------------------


def disease_key(tumour_kind: str | None, primary_site: str | None) -> str:
    """Key of ``diseases`` in ruleset.yaml for a tumour kind and primary site."""
    if tumour_kind == "secondary":
        site = primary_site if primary_site in schema.PRIMARY_SITES else "unknown"
        return f"secondary-{site}"
    if tumour_kind in ("hcc", "other-liver-primary"):
        return tumour_kind
    return "unknown"


def normalised_segment(segment: str | None) -> str | None:
    """Couinaud segment I..VIII (IVa and IVb count as IV), or ``None``."""
    if segment is None:
        return None
    value = segment.strip().upper()
    if value in ("IVA", "IVB"):
        value = "IV"
    return value if value in SEGMENTS else None


def distribution_phrase(content: CardContent, facts: Facts) -> str:
    """The ``{distribution}`` phrase: diffuse, single segment, left surface, or the side."""
    phrases = content.distributions
    if facts.distribution == "diffuse":
        return phrases["diffuse"]
    segment = normalised_segment(facts.segment) if facts.single_segment else None
    if segment is not None:
        return templates.fill(phrases["single-segment"], {"segment": segment})
    if facts.distribution == "caudate":
        return phrases["caudate"]
    if facts.single_section and facts.section is not None and facts.section in content.sections:
        return templates.fill(
            phrases["single-section"], {"section": content.sections[facts.section]}
        )
    if facts.distribution == "left" and facts.surface:
        return phrases["left-surface"]
    return phrases.get(facts.distribution, phrases["unknown"])


def headline_option(assessment: Assessment) -> str:
    """The option the summary names: the first recommended one other than MDT review; for a
    (potentially) resectable verdict with none, the first resection or augmentation offered
    (so the summary names what the options hold, cards.md v2)."""
    for option in assessment.options:
        if option.recommended and option.code != "mdt-review":
            return option.code
    if assessment.verdict in compact.SURGICAL_VERDICTS:
        ordered = sorted(assessment.options, key=lambda o: o.code not in compact.RESECTION_OPTIONS)
        for option in ordered:
            if option.code in compact.RESECTION_OPTIONS:
                return option.code
    return "mdt-review"


def summary_reason(content: CardContent, assessment: Assessment) -> str:
    """The summary's ``{reason}``: the deciding rule's, or the previous liver resection when
    it made a resectable row potentially resectable (clinical-rules.md §3, additions)."""
    downgraded = (
        assessment.verdict == "potentially-resectable"
        and RULE_VERDICTS.get(assessment.rule) == "resectable"
        and assessment.facts.prior_liver_resection != "none"
    )
    if downgraded:
        return content.texts["reason_previous_resection"]
    return content.reason(assessment.rule)


def summary(content: CardContent, assessment: Assessment) -> str:
    """The assessment card's summary (at most 139 characters, checked at load)."""
    verdict = assessment.verdict or "indeterminate"
    facts = assessment.facts
    cp = assessment.scores.child_pugh
    cp_class = cp.category if cp is not None and cp.category in ("A", "B", "C") else "unknown"
    option = content.options.get(headline_option(assessment))
    values = {
        "disease": content.diseases[disease_key(facts.tumour_kind, facts.primary_site)],
        "distribution": distribution_phrase(content, facts),
        "option": option.summary if option is not None else content.options["mdt-review"].summary,
        "child_pugh": content.child_pugh[cp_class],
        "reason": summary_reason(content, assessment),
    }
    text = templates.fill(content.summary_template(verdict, assessment.rule), values)
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"


# --- the assessment card ------------------------------------------------------------------


def assessment_card(
    assessment: Assessment, ctx: RenderContext, content: CardContent
) -> dict[str, Any]:
    """The assessment card; what depends only on ``cards/`` comes prepared
    (:mod:`service.render.prepared`), every dict and list of the card is new."""
    verdict = assessment.verdict or "indeterminate"
    ready = prepared(content)
    citations = ready.citations(_citation_key(assessment))
    source: dict[str, Any] = {"label": content.source_label}
    if citations.url:
        source["url"] = citations.url
    source["topic"] = ready.topics[verdict]
    wordings = _wordings(content, assessment)
    card: dict[str, Any] = {
        "uuid": ctx.new_uuid(),
        "summary": summary(content, assessment),
        "indicator": INDICATORS[verdict],
        "detail": compact.compact_detail(content, assessment, wordings),
        "source": source,
    }
    suggestions = option_suggestions(content, assessment, ctx)
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = "any"
    reasons = ready.override_reason_codings("assessment")
    if reasons:
        card["overrideReasons"] = reasons
    links = list(citations.links)  # the sources appear here only, never in the detail
    if ctx.smart_app_url:
        links.append(
            {
                "label": content.smart_link_label,
                "url": ctx.smart_app_url,
                "type": "smart",
                "appContext": smart_app_context(content),
            }
        )
    if links:
        card["links"] = links
    return card


def smart_app_context(content: CardContent) -> str:
    """``appContext`` of the ``smart`` link: the view to open and the rule set that made
    the card, never patient data (the app takes the patient from its own launch)."""
    context = {"view": "full-assessment", "ruleset": content.version}
    return json.dumps(context, separators=(",", ":"))


def override_reasons(content: CardContent, kind: str) -> list[dict[str, str]]:
    """The override-reason Codings offered on a card of ``kind`` (each with ``display``)."""
    return prepared(content).override_reason_codings(kind)


def shown_scores(assessment: Assessment) -> list[tuple[str, Score]]:
    """Scores for the card: BCLC only for hcc, Fong only for colorectal metastases."""
    facts = assessment.facts
    scores = assessment.scores
    hcc = facts.tumour_kind == "hcc"
    colorectal = facts.tumour_kind == "secondary" and facts.primary_site == "colorectal"
    out = []
    for key in schema.SCORE_KEYS:
        score = getattr(scores, key)
        if score is None or (key == "bclc" and not hcc) or (key == "fong" and not colorectal):
            continue
        out.append((key, score))
    return out


def cited_sources(content: CardContent, assessment: Assessment) -> list[SourceContent]:
    """Sources cited by the deciding rule, the shown scores, offered options, heuristics
    (:func:`service.render.prepared.Prepared.citations`: worked out once per combination)."""
    return list(prepared(content).citations(_citation_key(assessment)).sources)


def _citation_key(assessment: Assessment) -> CitationKey:
    """Everything the card's citations depend on, as plain tuples (cheap to build and hash):
    which scores were computed (which of them are shown follows from the tumour kind and
    primary site, also in the key)."""
    facts = assessment.facts
    scores = assessment.scores
    return (
        assessment.rule,
        facts.tumour_kind,
        facts.primary_site,
        tuple([(o.code, o.rule) for o in assessment.options]),
        tuple([getattr(scores, key) is not None for key in schema.SCORE_KEYS]),
        assessment.heuristics,
    )


def option_suggestions(
    content: CardContent, assessment: Assessment, ctx: RenderContext
) -> list[dict[str, Any]]:
    """One suggestion per offered option, recommended first, otherwise in the table's order."""
    ready = prepared(content)
    ordered = sorted(assessment.options, key=lambda o: not o.recommended)
    reasons = proposals.reason_references(assessment.facts.liver_conditions)
    patient = proposals.for_patient(ctx.patient_id, reasons, content.texts["more_conditions"])
    out = []
    for option in ordered:
        wording = ready.wording(option.code, option.qualifier)
        resource = proposals.proposal(wording.code, patient)
        out.append(
            proposals.suggestion(
                ctx.new_uuid, wording.label, option.recommended, wording.description, resource
            )
        )
    return out


def _wordings(content: CardContent, assessment: Assessment) -> dict[str, OptionWording]:
    """Option code -> its wording with its qualifier, for the compact detail (one per code:
    the last offer of a code gives the qualifier)."""
    ready = prepared(content)
    return {o.code: ready.wording(o.code, o.qualifier) for o in assessment.options}


# --- the detail (GitHub-flavoured Markdown) ----------------------------------------------


def full_detail(content: CardContent, assessment: Assessment) -> str:
    """Everything behind the card, as Markdown: each fact used with its sources, every
    option with all its risks, the scores with their inputs, assumptions, data-quality notes
    and the citations. Not on the card (it is too long for an EHR sidebar): for the full
    view and for review. Long lists are not capped here; the caller bounds its page.
    """
    sources = cited_sources(content, assessment)
    sections = [
        _why(content, assessment),
        _facts_used(content, assessment),
        _options(content, assessment),
        _scores(content, assessment),
        _bullets(
            content.texts["assumptions_heading"], (md.text(a) for a in assessment.assumptions)
        ),
        _bullets(content.texts["data_quality_heading"], _data_quality(content, assessment)),
        _sources(content, sources),
    ]
    return "\n\n".join(section for section in sections if section)


def _why(content: CardContent, assessment: Assessment) -> str:
    verdict = assessment.verdict or "indeterminate"
    rule = content.rules.get(assessment.rule)
    texts = content.texts
    first = templates.fill(
        texts["verdict_line"],
        {
            "verdict": content.topics[verdict],
            "rule": md.text(assessment.rule),
            "rule_text": rule.text if rule is not None else texts["reason_unknown"],
        },
    )
    lines = [first, "", content.verdict_explanations[verdict]]
    bullets = [f"- {note}" for note in _notes(content, assessment)]
    for name in assessment.heuristics:
        known = content.heuristics.get(name)
        bullets.append(
            "- " + templates.fill(texts["heuristic_line"], {"text": known or md.text(name)})
        )
    if assessment.missing:
        bullets.append("- " + texts["data_needed_pointer"])
    if bullets:
        lines += ["", *bullets]
    return "\n".join(lines)


def _notes(content: CardContent, assessment: Assessment) -> list[str]:
    """The engine's clinical notes, each once: a key of ``notes`` in ruleset.yaml gets the
    card wording, any other note is shown as the engine wrote it.

    The engine words the notes for the facts it flags (both hcc and metastases found, FLR
    threshold applied; presumed macrovascular invasion is an assumption), so the renderer
    does not restate those flags itself.
    """
    out = []
    for note in dict.fromkeys(assessment.notes):
        out.append(content.notes.get(note) or md.text(note))
    return out


def _evidence(assessment: Assessment) -> list[Evidence]:
    """The evidence behind the verdict: the facts the rules consulted, in that order
    (all evidence when the engine did not say which it consulted)."""
    evidence = assessment.facts.evidence
    if not assessment.facts_used:
        return list(evidence)
    order = {name: index for index, name in enumerate(assessment.facts_used)}
    used = [e for e in evidence if e.fact in order]
    return sorted(used, key=lambda e: order[e.fact])


def _facts_used(content: CardContent, assessment: Assessment) -> str:
    lines = []
    for evidence in _evidence(assessment):
        label = content.facts.get(evidence.fact) or md.text(_humanise(evidence.fact))
        provenance = [md.day(evidence.date)] if evidence.date is not None else []
        provenance += [md.reference(ref) for ref in evidence.sources[: compact.LIST_CAP]]
        if len(evidence.sources) > compact.LIST_CAP:  # 10,000 duplicate Conditions happen
            more = len(evidence.sources) - compact.LIST_CAP
            provenance.append(templates.fill(content.card["more"], {"count": f"{more:,}"}))
        known = content.fact_values.get(evidence.fact, {}).get(evidence.value)
        line = f"- **{label}**: {known or md.text(evidence.value)}"
        if provenance:
            line += f" ({'; '.join(provenance)})"
        lines.append(line)
    return _section(content.texts["facts_heading"], lines)


def _options(content: CardContent, assessment: Assessment) -> str:
    texts = content.texts
    modifiers = [m for m in schema.RISK_MODIFIERS if m in assessment.risk_modifiers]
    lines = []
    ordered = sorted(assessment.options, key=lambda o: not o.recommended)
    for number, option in enumerate(ordered, start=1):
        text = option_content(content, option.code)
        qualifier = plain_qualifier(content, option.qualifier)
        name = f"**{text.label}**" + (f", {md.text(qualifier)}" if qualifier else "")
        status = [texts["recommended"] if option.recommended else texts["offered"]]
        if option.rule.startswith("addition:"):
            added = content.additions.get(option.rule.removeprefix("addition:"))
            status.append(added or md.text(option.rule))
        elif option.rule:
            status.append(templates.fill(texts["offered_by_rule"], {"rule": md.text(option.rule)}))
        line = f"{number}. {name} ({'; '.join(status)})"
        if text.description:
            line += f": {text.description}"
        lines.append(line)
        all_risks = text.risks_for(compact.disease_risk_key(assessment.facts))
        if all_risks:
            risks = templates.fill(texts["risks"], {"risks": ", ".join(all_risks)})
        else:
            risks = texts["no_risks"]
        lines.append(f"   - {risks}")
        specific = [_sentence(text.modifiers[m]) for m in modifiers if m in text.modifiers]
        if specific:
            joined = " ".join(specific)
            lines.append("   - " + templates.fill(texts["for_this_patient"], {"text": joined}))
    return _section(texts["options_heading"], lines)


def _scores(content: CardContent, assessment: Assessment) -> str:
    texts = content.texts
    lines = []
    for key, score in shown_scores(assessment):
        text = content.scores[key]
        value = templates.fill(text.value, {"value": _value(score.value)})
        if score.category is not None and text.category is not None:
            value += ", " + templates.fill(text.category, {"category": md.text(score.category)})
        parts = [f"- **{text.label}**: {value}."]
        inputs = [_score_input(content, i) for i in score.inputs]
        if inputs:
            parts.append("; ".join(inputs) + ".")
        if score.unknown_inputs:
            unknown = ", ".join(md.text(_label(content, n)) for n in score.unknown_inputs)
            parts.append(templates.fill(texts["unknown_inputs"], {"items": unknown}) + ".")
        if score.note and not _said_in(score.note, assessment.assumptions):
            parts.append(_sentence(md.text(score.note)))
        if text.note:
            parts.append(text.note)
        lines.append(" ".join(parts))
    return _section(texts["scores_heading"], lines)


def _score_input(content: CardContent, item: Any) -> str:
    texts = content.texts
    out = f"{md.text(_label(content, item.name))} {md.text(item.value)}"
    if item.date is not None:
        out += f" ({md.day(item.date)})"
    if item.points is not None:
        key = "point" if item.points == 1 else "points"
        out += ": " + templates.fill(texts[key], {"points": str(item.points)})
    if item.assumed and "assumed" not in str(item.value).lower():
        out += f" ({texts['assumed']})"
    return out


FULL_LIST_CAP = 20
"""Data-quality notes listed in the full detail before "and N more"."""


def _data_quality(content: CardContent, assessment: Assessment) -> list[str]:
    notes = list(dict.fromkeys((*assessment.data_quality, *assessment.facts.data_quality)))
    out = [f"{md.reference(n.resource)}: {md.text(n.problem)}" for n in notes[:FULL_LIST_CAP]]
    if len(notes) > FULL_LIST_CAP:
        more = len(notes) - FULL_LIST_CAP
        out.append(templates.fill(content.card["more"], {"count": f"{more:,}"}))
    return out


def _sources(content: CardContent, sources: list[SourceContent]) -> str:
    lines = []
    for source in sources:
        name = md.link(source.label, source.url) if source.url else md.text(source.label)
        lines.append(f"- {name}: {source.citation}")
    lines.append(
        "- "
        + templates.fill(content.texts["ruleset_line"], {"label": md.text(content.source_label)})
    )
    return _section(content.texts["sources_heading"], lines)


def _bullets(heading: str, items: Iterable[str]) -> str:
    return _section(heading, [f"- {item}" for item in items])


def _section(heading: str, lines: list[str]) -> str:
    if not lines:
        return ""
    return f"**{heading}**\n\n" + "\n".join(lines)


def _label(content: CardContent, name: str) -> str:
    """A fact or score-input name as the card shows it."""
    return content.facts.get(name) or content.facts.get(name.lower()) or _humanise(name)


def _humanise(name: str) -> str:
    text = " ".join(str(name).replace("_", " ").replace("-", " ").split())
    return text[:1].upper() + text[1:]


def _said_in(note: str, texts: Iterable[str]) -> bool:
    """Whether ``note`` opens one of ``texts`` (a score note repeating an assumption)."""
    start = note.strip().rstrip(".").lower()
    return bool(start) and any(t.strip().lower().startswith(start) for t in texts)


def _sentence(text: str) -> str:
    """``text`` starting with a capital and ending with a full stop."""
    text = text.strip()
    if not text:
        return text
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _value(value: float | int | str) -> str:
    """A score's value: integers as they are, other numbers to two decimals."""
    if isinstance(value, bool):
        return md.text(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.2f}"  # ALBI is read to two decimals, -2.00 included
    return md.text(value)
