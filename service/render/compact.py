"""The assessment card's ``detail``: what a clinician reads in ten seconds (cards.md v2).

An EHR sidebar is narrow, so the card carries only what decides: the verdict and its rule,
the few facts that decided it (with values and dates), each offered option with its leading
risk, what the service did not assess, and what is missing or out of date. Score inputs,
every risk and the citations are in the full view (the SMART app) and the card's ``links``;
nothing here repeats them.

The detail must read right both as GitHub-flavoured Markdown and as plain text (some EHRs
show ``detail`` unrendered): the only Markdown used is bold for the verdict and the options
heading, ``-`` bullets and a numbered list. No links, no HTML, no entities.

Budget: at most :data:`MAX_LINES` lines and :data:`MAX_CHARS` characters for any
assessment. Every list that grows with the chart (data-quality notes, assumptions, missing
items) is cut to a fixed count with "and N more"; when a card still does not fit, the
options that are only "may be considered" are named on one line without their risks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from service.clinical.model import Assessment, Facts, Measurement
from service.render import markdown as md
from service.render import schema, templates
from service.render.content import CardContent, OptionContent
from service.render.prepared import OptionWording, option_risks, prepared

MAX_LINES = 25
MAX_CHARS = 2500
"""The compact card's budget (issue 14: read in ten seconds in an EHR sidebar)."""

LIST_CAP = 3
"""Items of a growing list named before "and N more"."""
NOTE_CHARS = 240
"""An engine note, assumption or data-quality text is cut to this many characters."""

NO_ASSESSMENT_RULES = frozenset({"1", "1a", "2"})
"""Rules that decide before the lesions are assessed: no location, function or findings."""
RESECTION_OPTIONS = frozenset(
    {
        "resection-right-hepatectomy",
        "resection-left-hepatectomy",
        "resection-local",
        "liver-augmentation",
    }
)
RESTATED_NOTES: tuple[str, ...] = (
    "Previous liver resection",
    "The future liver remnant is unknown",
    "Portal hypertension is not excluded",
)
"""Engine notes the card states itself, in the clinicians' wording from ``cards/``: the
previous resection (with its procedure and date), the unmeasured FLR before a
hemihepatectomy (rules 13a/20a), portal hypertension not excluded (rule 12b, with the platelet
count). Not repeated."""
SURGICAL_VERDICTS = frozenset({"resectable", "potentially-resectable"})


def disease_risk_key(facts: Facts) -> str | None:
    """Key of ``by_disease`` in risks.yaml: ``hcc`` or the metastases' primary site."""
    if facts.tumour_kind == "hcc":
        return "hcc"
    if facts.tumour_kind == "secondary":
        return facts.primary_site
    return None


def compact_detail(
    content: CardContent,
    assessment: Assessment,
    wordings: Mapping[str, OptionWording],
) -> str:
    """The assessment card's Markdown detail, within the budget.

    ``wordings`` maps each offered option's code to its wording with its qualifier (the
    renderer resolves them once for the whole card, :mod:`service.render.prepared`).
    """
    head = [_verdict_line(content, assessment)]
    head += [f"- {line}" for line in _fact_lines(content, assessment)]
    tail = _tail(content, assessment)
    full = _options(content, assessment, wordings, collapse=False)
    detail = _join(head, full, tail)
    if _fits(detail):
        return detail
    short = _options(content, assessment, wordings, collapse=True)
    detail = _join(head, short, tail)
    while not _fits(detail) and len(head) > 2:
        head = head[:-1]  # last resort: the least important fact lines go first
        detail = _join(head, short, tail)
    return detail if len(detail) <= MAX_CHARS else detail[: MAX_CHARS - 1] + "…"


def _fits(detail: str) -> bool:
    return len(detail) <= MAX_CHARS and detail.count("\n") + 1 <= MAX_LINES


def _join(head: list[str], options: list[str], tail: list[str]) -> str:
    blocks = ["\n".join(head)]
    if options:
        blocks.append("\n".join(options))
    if tail:
        blocks.append("\n".join(tail[:-1]) if len(tail) > 1 else "")
        blocks.append(tail[-1])
    return "\n\n".join(block for block in blocks if block)


# --- the verdict and the facts that decided it --------------------------------------------


def _verdict_line(content: CardContent, assessment: Assessment) -> str:
    verdict = assessment.verdict or "indeterminate"
    rule = content.rules.get(assessment.rule)
    return templates.fill(
        content.texts["verdict_line"],
        {
            "verdict": content.topics[verdict],
            "rule": md.text(assessment.rule),
            "rule_text": rule.text if rule is not None else content.texts["reason_unknown"],
        },
    )


def _fact_lines(content: CardContent, assessment: Assessment) -> list[str]:
    """The bullets under the verdict, most important first (the budget cuts from the end)."""
    facts = assessment.facts
    card = content.card
    lines: list[str] = []
    noted = " ".join(assessment.notes)
    if facts.unspecified_codes and not any(c in noted for c in facts.unspecified_codes):
        codes = ", ".join(md.text(c) for c in facts.unspecified_codes[:LIST_CAP])
        lines.append(templates.fill(card["unspecified_code"], {"codes": codes}))
    elif facts.liver_code_unstated and "C22.9" not in noted:  # the engine's note may say it
        lines.append(templates.fill(card["liver_code_unstated"], {"codes": "C22.9"}))
    assessed = assessment.rule not in NO_ASSESSMENT_RULES
    if assessed:
        where = _where(content, facts)
        if where:
            lines.append(where)
        lines.append(_liver(content, assessment))
        flr = _flr(content, assessment)
        if flr:
            lines.append(flr)
        findings = _findings(content, assessment)
        if findings:
            lines.append(findings)
        marker = _marker(facts)
        if marker:
            lines.append(marker)
        previous = _previous_surgery(content, assessment)
        if previous:
            lines.append(previous)
    lines += _notes(content, assessment)
    lines += _heuristics(content, assessment)
    if assessment.assumptions:
        lines.append(
            templates.fill(
                card["assumed"], {"text": _capped(content, list(assessment.assumptions))}
            )
        )
    quality = _data_quality(assessment)
    if quality:
        lines.append(templates.fill(card["data_quality"], {"text": _capped(content, quality)}))
    return lines


def _where(content: CardContent, facts: Facts) -> str:
    card = content.card
    parts = []
    place = _place(content, facts)
    if place:
        parts.append(place)
    lesions = []
    if facts.lesion_count is not None:
        lesions.append(
            card["one_lesion"]
            if facts.lesion_count == 1
            else templates.fill(card["lesions"], {"count": str(facts.lesion_count)})
        )
    if facts.largest_cm is not None:
        lesions.append(templates.fill(card["largest"], {"size": f"{facts.largest_cm:g} cm"}))
    if lesions:
        parts.append(", ".join(lesions))
    if not parts:
        return ""
    imaging = _imaging_date(facts)
    stale = [facts.stale[k] for k in IMAGING_FACTS if k in facts.stale]
    if imaging is not None:
        parts.append(templates.fill(card["imaging_date"], {"date": md.day(imaging)}))
    elif stale:  # a scan older than the imaging lookback: recorded, but out of date
        parts.append(templates.fill(card["imaging_stale"], {"date": md.day(max(stale))}))
    else:
        parts.append(card["no_imaging_date"])
    return templates.fill(card["where"], {"parts": "; ".join(parts)})


def _place(content: CardContent, facts: Facts) -> str:
    """Where the disease is: the section or segment when single, else the engine's wording."""
    if facts.single_segment and facts.segment:
        return md.text(f"segment {facts.segment}")
    if facts.single_section and facts.section is not None and facts.section in content.sections:
        return content.sections[facts.section]
    if facts.distribution == "caudate":
        return content.sections["caudate"]
    evidence = next((e for e in facts.evidence if e.fact == "distribution"), None)
    if evidence is not None:
        known = content.fact_values.get("distribution", {}).get(evidence.value)
        return known or md.text(evidence.value)
    if facts.distribution != "unknown":
        return content.fact_values.get("distribution", {}).get(
            facts.distribution, md.text(facts.distribution)
        )
    return ""


IMAGING_FACTS: tuple[str, ...] = ("lesion_count", "largest_cm", "flr_percent")
"""Facts read from imaging whose staleness ``Facts.stale`` records (the scan's date)."""


def _imaging_date(facts: Facts) -> datetime | None:
    if facts.imaging_date is not None:
        return facts.imaging_date
    dates = [
        m.date
        for key, m in facts.observed.items()
        if key in ("lesion_count", "largest_cm", "flr") and m.date is not None
    ]
    return max(dates) if dates else None


def _liver(content: CardContent, assessment: Assessment) -> str:
    card = content.card
    facts = assessment.facts
    parts = []
    cp = assessment.scores.child_pugh
    if cp is not None and cp.category is not None:
        parts.append(
            templates.fill(
                card["child_pugh"],
                {"category": md.text(cp.category), "points": md.text(cp.value)},
            )
        )
    else:
        parts.append(card["child_pugh_unknown"])
    bilirubin = facts.labs.get("bilirubin")
    if bilirubin is not None:
        text = templates.fill(card["bilirubin"], {"value": _measured(bilirubin)})
        if facts.bilirubin_above_normal:
            uln = facts.bilirubin_uln
            limit = f"{uln.value:g} {md.text(uln.unit)}" if uln is not None else "?"
            text += ", " + templates.fill(card["bilirubin_above_normal"], {"uln": limit})
        parts.append(text)
    if facts.jaundice:
        parts.append(card["jaundice"])
    parts.append(_ecog(content, facts))
    return templates.fill(card["liver"], {"parts": "; ".join(parts)})


def _ecog(content: CardContent, facts: Facts) -> str:
    card = content.card
    if facts.ecog is None:
        return card["ecog_unknown"]
    if facts.ecog_from_karnofsky is not None:
        text = templates.fill(
            card["ecog_from_karnofsky"],
            {"ecog": str(facts.ecog), "karnofsky": str(facts.ecog_from_karnofsky)},
        )
    else:
        text = templates.fill(card["ecog"], {"ecog": str(facts.ecog)})
    observed = facts.observed.get("ecog")
    if observed is not None and observed.date is not None:
        text += f" ({md.day(observed.date)})"
    return text


def _measured(measurement: Measurement) -> str:
    """A value as the EHR sent it when converted, with its date."""
    if measurement.original:
        value = md.text(measurement.original)
    else:
        value = f"{measurement.value:g} {md.text(measurement.unit)}".strip()
    if measurement.date is not None:
        value += f" ({md.day(measurement.date)})"
    return value


def _resection_in_view(assessment: Assessment) -> bool:
    """A resection or augmentation is offered, or the verdict is (potentially) resectable."""
    return assessment.verdict in SURGICAL_VERDICTS or bool(
        RESECTION_OPTIONS & set(assessment.offered)
    )


def _flr(content: CardContent, assessment: Assessment) -> str:
    card = content.card
    facts = assessment.facts
    if facts.flr_percent is None:
        if assessment.major_resection and _resection_in_view(assessment):
            return card["flr_unknown_major"]
        return ""
    if not _resection_in_view(assessment):
        return ""
    text = templates.fill(card["flr"], {"flr": f"{facts.flr_percent:g} %"})
    observed = facts.observed.get("flr")
    if observed is not None and observed.date is not None:
        text += f" ({md.day(observed.date)})"
    if assessment.flr_threshold is not None and not _noted(assessment, "FLR threshold"):
        threshold = templates.fill(
            card["flr_threshold"], {"threshold": f"{assessment.flr_threshold:g}"}
        )
        text += f"; {threshold}"
    return text


def _noted(assessment: Assessment, start: str) -> bool:
    """An engine note starts with ``start`` (it then says it; the card does not repeat it)."""
    return any(note.startswith(start) for note in assessment.notes)


def _findings(content: CardContent, assessment: Assessment) -> str:
    """Recorded and not-recorded findings, and how portal hypertension was judged."""
    facts = assessment.facts
    card = content.card
    names = content.findings
    present = {
        "extrahepatic_disease": facts.extrahepatic_disease,
        "cirrhosis": facts.cirrhosis,
        "macrovascular_invasion": facts.macrovascular_invasion,
    }
    recorded = []
    for key in schema.FINDINGS:
        if not present[key]:
            continue
        if key == "extrahepatic_disease" and facts.extrahepatic_sites:
            sites = ", ".join(
                content.extrahepatic_sites.get(site, md.text(site))
                for site in schema.EXTRAHEPATIC_SITES
                if site in facts.extrahepatic_sites
            )
            recorded.append(templates.fill(card["extrahepatic_sites"], {"sites": sites}))
        else:
            recorded.append(names[key])
    surgical = _resection_in_view(assessment)
    if not surgical and not recorded:
        return ""
    sentences = []
    if recorded:
        sentences.append(templates.fill(card["recorded"], {"items": ", ".join(recorded)}))
    absent = [names[key] for key in schema.FINDINGS if not present[key]]
    if absent and surgical:
        sentences.append(templates.fill(card["not_recorded"], {"items": ", ".join(absent)}))
    if surgical or facts.tumour_kind == "hcc" or facts.cirrhosis:
        sentences.append(_portal_hypertension(content, facts))
    return " ".join(sentences)


def _portal_hypertension(content: CardContent, facts: Facts) -> str:
    judgements = content.portal_hypertension
    state = facts.portal_hypertension
    basis = facts.portal_hypertension_basis
    contradicts = basis == "no-cirrhosis" and facts.cirrhosis  # never say both
    judgement = (None if contradicts else judgements.get(f"{state}/{basis}")) or judgements[state]
    platelets = facts.labs.get("platelets")
    if basis == "platelets" and platelets is not None:
        judgement += f"; platelets {_measured(platelets)}"
    return templates.fill(content.card["portal_hypertension"], {"judgement": judgement})


def _marker(facts: Facts) -> str:
    """AFP for HCC, CEA for colorectal metastases, with its date, when known."""
    if facts.tumour_kind == "hcc":
        name = "afp"
    elif facts.tumour_kind == "secondary" and facts.primary_site == "colorectal":
        name = "cea"
    else:
        return ""
    measurement = facts.labs.get(name)  # type: ignore[call-overload]
    if measurement is None:
        return ""
    return f"{name.upper()} {_measured(measurement)}"


def _previous_surgery(content: CardContent, assessment: Assessment) -> str:
    facts = assessment.facts
    card = content.card
    if facts.prior_liver_resection != "none":
        kind = facts.prior_liver_resection
        procedure = next(
            (e.value for e in facts.evidence if e.fact == "prior_liver_resection"), None
        )
        if procedure:
            what = md.text(procedure)
        elif kind == "hemihepatectomy":
            what = "hemihepatectomy (right or left hepatectomy or larger)"
        else:
            what = "liver resection"
        if facts.prior_liver_resection_date is not None:
            what += f" on {md.day(facts.prior_liver_resection_date)}"
        if facts.prior_liver_resection_source:
            what += f" ({md.reference(facts.prior_liver_resection_source)})"
        return templates.fill(card["previous_resection"], {"procedure": what})
    if not _resection_in_view(assessment):
        return ""
    if not facts.procedures_checked:
        return card["procedures_unchecked"]
    return card["previous_resection_none"]


def _notes(content: CardContent, assessment: Assessment) -> list[str]:
    """The engine's clinical notes, each once (card wording for a known key)."""
    out = []
    for note in dict.fromkeys(assessment.notes):
        if note.startswith(RESTATED_NOTES):
            continue
        out.append(_cut(content.notes.get(note) or md.text(note)))
    return out[:LIST_CAP]


def _heuristics(content: CardContent, assessment: Assessment) -> list[str]:
    out = []
    for name in assessment.heuristics:
        known = content.heuristics.get(name)
        out.append(
            templates.fill(content.texts["heuristic_line"], {"text": known or md.text(name)})
        )
    return [_cut(line) for line in out[:LIST_CAP]]


def _data_quality(assessment: Assessment) -> list[str]:
    seen: set[tuple[str, str]] = set()
    out = []
    for note in (*assessment.data_quality, *assessment.facts.data_quality):
        key = (note.resource, note.problem)
        if key in seen:
            continue
        seen.add(key)
        out.append(f"{md.reference(note.resource)}: {md.text(note.problem)}")
    return out


def _capped(content: CardContent, items: Sequence[str]) -> str:
    """The first item (cut to :data:`NOTE_CHARS`), then "and N more" for the rest."""
    first = _cut(md.text(items[0]).rstrip("."))
    if len(items) == 1:
        return first
    more = templates.fill(content.card["more"], {"count": f"{len(items) - 1:,}"})
    return f"{first}; {more}"


def _cut(text: str) -> str:
    return text if len(text) <= NOTE_CHARS else text[: NOTE_CHARS - 1].rstrip() + "…"


# --- the options -------------------------------------------------------------------------


def _options(
    content: CardContent,
    assessment: Assessment,
    wordings: Mapping[str, OptionWording],
    *,
    collapse: bool,
) -> list[str]:
    """The numbered options, recommended first, each with its leading risk.

    ``collapse``: only the recommended options get a line of their own; the others are named
    together on one line (the budget's fallback).
    """
    card = content.card
    texts = content.texts
    ordered = sorted(assessment.options, key=lambda o: not o.recommended)
    lines = [prepared(content).options_heading]
    others = []
    number = 0
    modifiers = assessment.risk_modifiers
    disease = disease_risk_key(assessment.facts)
    for option in ordered:
        wording = wordings[option.code]
        name = wording.name_md
        if collapse and not option.recommended:
            others.append(name)
            continue
        status = texts["recommended" if option.recommended else "offered"]
        risk = wording.risks.leading_for(modifiers, disease)
        number += 1
        if risk:
            specific = wording.risks.patient_specific(modifiers)
            key = "option_line_patient" if specific else "option_line"
            line = templates.fill(card[key], {"option": name, "status": status, "risk": risk})
        else:
            line = templates.fill(card["option_line_no_risk"], {"option": name, "status": status})
        lines.append(f"{number}. {line}")
    if others:
        lines.append(
            f"{number + 1}. " + templates.fill(card["also_offered"], {"options": "; ".join(others)})
        )
    return lines if len(lines) > 1 else []


def leading_risk(text: OptionContent, assessment: Assessment) -> str:
    """The risk named with an option: a patient-specific modifier first, then the first risk
    for this tumour kind (e.g. oxaliplatin liver injury for colorectal), else the leading one
    (:meth:`service.render.prepared.OptionRisks.leading_for`; the card uses the prepared
    sentences)."""
    risks = option_risks(text)
    return risks.leading_for(assessment.risk_modifiers, disease_risk_key(assessment.facts))


# --- what was not assessed, what is missing, the rule set -----------------------------------


def _tail(content: CardContent, assessment: Assessment) -> list[str]:
    """The closing lines: not assessed, missing (bullets), then the rule set line."""
    card = content.card
    bullets = []
    not_assessed = _not_assessed(content, assessment)
    if not_assessed:
        bullets.append(
            "- " + templates.fill(card["not_assessed"], {"items": ", ".join(not_assessed)})
        )
    if assessment.missing:
        names = _missing_names(content, assessment)
        bullets.append("- " + templates.fill(card["missing"], {"items": names}))
    return [*bullets, prepared(content).footer]


def _not_assessed(content: CardContent, assessment: Assessment) -> list[str]:
    if assessment.rule in NO_ASSESSMENT_RULES or assessment.verdict == "indeterminate":
        return []
    items = [content.not_assessed["margins"], content.not_assessed["vessels"]]
    if assessment.facts.flr_percent is None and _resection_in_view(assessment):
        items.append(content.not_assessed["flr"])
    return items


def _missing_names(content: CardContent, assessment: Assessment) -> str:
    names = list(
        dict.fromkeys(
            content.missing[m.fact].short if m.fact in content.missing else md.text(m.fact)
            for m in sorted(assessment.missing, key=lambda m: not m.essential)
        )
    )
    shown = ", ".join(names[: LIST_CAP + 1])
    if len(names) > LIST_CAP + 1:
        rest = len(names) - LIST_CAP - 1
        shown += " " + templates.fill(content.card["more"], {"count": str(rest)})
    return shown
