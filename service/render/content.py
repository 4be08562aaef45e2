"""Card wording loaded from ``cards/`` and checked once, at start-up.

Clinicians edit YAML in ``cards/`` (see docs/cards.md). :func:`load_content` reads
every file, checks its structure against :mod:`service.render.schema`, then checks what a
schema cannot: placeholders, HTML, the 139-character summary limit over every combination of
phrases, and references between files. All problems are reported together, each naming the
file and the key, so a wording change that breaks a limit fails loudly at start-up instead
of producing a bad card. The result is cached per directory: rendering never re-validates.

``LIVER_CDS_CARDS_DIR`` (``Settings.cards_dir``) points at another directory; empty means
the ``cards/`` directory of this repository, found relative to the package (this works for
a source checkout and an editable install, ``pip install -e .``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from service.clinical.model import OPTION_CODES, VERDICTS
from service.render import markdown, nonadherence, schema, templates

SUMMARY_MAX = 139
"""CDS Hooks: summary is "<140-character"."""

SEGMENTS: tuple[str, ...] = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII")

RULE_VERDICTS: dict[str, str] = {
    **dict.fromkeys(("1", "1a", "2", "4a", "5"), "indeterminate"),
    **dict.fromkeys(("3", "4", "6", "7", "7a", "8", "9", "10", "11", "12"), "not-resectable"),
    **dict.fromkeys(("12a", "15", "16a", "17", "18", "23"), "not-resectable"),
    **dict.fromkeys(
        ("12b", "13", "13a", "16", "19", "19a", "20", "20a", "22"), "potentially-resectable"
    ),
    **dict.fromkeys(("14", "21"), "resectable"),
}
"""The verdict each rule of clinical-rules.md §3 gives (used to check summary lengths)."""


class ContentError(ValueError):
    """The card content cannot be used; the message lists every problem found."""

    def __init__(self, directory: Path, problems: list[str]) -> None:
        self.directory = directory
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"card content in {directory} is invalid ({len(problems)} problems):\n{lines}"
        )


@dataclass(frozen=True)
class OptionContent:
    code: str
    label: str
    summary: str
    description: str
    suggestion: str
    risks: tuple[str, ...]
    modifiers: Mapping[str, str]
    codings: tuple[Mapping[str, str], ...]
    leading: str = ""
    """The risk the compact card names first when no patient-specific modifier applies."""
    by_disease: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Risks shown only for one tumour kind: ``hcc`` or a primary site (``colorectal``)."""

    def risks_for(self, disease: str | None) -> tuple[str, ...]:
        """Every risk of this option for a patient whose disease key is ``disease``."""
        return (*self.risks, *self.by_disease.get(disease or "", ()))


@dataclass(frozen=True)
class RuleContent:
    reason: str
    text: str
    summary: str | None
    """Summary template overriding the verdict's, or ``None``."""


@dataclass(frozen=True)
class ScoreContent:
    label: str
    value: str
    category: str | None
    note: str | None


@dataclass(frozen=True)
class SourceContent:
    id: str
    label: str
    citation: str
    url: str | None
    tumour_kinds: frozenset[str]
    primary_sites: frozenset[str]
    rules: frozenset[str]
    scores: frozenset[str]
    options: frozenset[str]
    heuristics: frozenset[str]


@dataclass(frozen=True)
class MissingContent:
    fact: str
    label: str
    short: str
    why: str
    why_essential: str
    why_refine: str
    missing: str | None
    """Status when the fact is absent, instead of the default "not recorded"."""
    order: str | None
    action: str | None
    why_liver_disease: str | None = None
    """Instead of ``why`` (and its ranked variants) for a patient with cirrhosis or HCC,
    where a rule applies that does not apply without (e.g. Child-Pugh B and resection)."""


@dataclass(frozen=True)
class OrderContent:
    code: str
    display: str
    text: str
    suggestion: str
    codings: tuple[Mapping[str, str], ...]


@dataclass(frozen=True)
class OverrideReason:
    code: str
    display: str
    cards: frozenset[str]
    system: str
    """The service's own code system, or HL7's non-adherence reason codes (``hl7:``)."""


@dataclass(frozen=True)
class CardContent:
    """Everything the renderer says, as loaded from one ``cards/`` directory."""

    directory: Path
    version: str
    source_label: str
    """``source_label`` with the version filled in ("Liver CDS resectability rules v2026.12")."""
    documentation_url: str | None
    smart_link_label: str
    topics: Mapping[str, str]
    verdict_summaries: Mapping[str, str]
    verdict_explanations: Mapping[str, str]
    rules: Mapping[str, RuleContent]
    additions: Mapping[str, str]
    heuristics: Mapping[str, str]
    notes: Mapping[str, str]
    diseases: Mapping[str, str]
    distributions: Mapping[str, str]
    child_pugh: Mapping[str, str]
    facts: Mapping[str, str]
    fact_values: Mapping[str, Mapping[str, str]]
    scores: Mapping[str, ScoreContent]
    texts: Mapping[str, str]
    card: Mapping[str, str]
    """Wording of the compact assessment card (``card`` in ruleset.yaml)."""
    sections: Mapping[str, str]
    findings: Mapping[str, str]
    extrahepatic_sites: Mapping[str, str]
    portal_hypertension: Mapping[str, str]
    not_assessed: Mapping[str, str]
    options: Mapping[str, OptionContent]
    qualifiers: Mapping[str, str]
    sources: tuple[SourceContent, ...]
    data_summary_essential: str
    data_summary_refine: str
    data_texts: Mapping[str, str]
    missing: Mapping[str, MissingContent]
    orders: Mapping[str, OrderContent]
    override_system: str
    override_reasons: tuple[OverrideReason, ...]

    def summary_template(self, verdict: str, rule: str) -> str:
        """The summary template for a verdict decided by ``rule`` (rule override first)."""
        found = self.rules.get(rule)
        if found is not None and found.summary is not None and RULE_VERDICTS.get(rule) == verdict:
            return found.summary
        return self.verdict_summaries[verdict]

    def reason(self, rule: str) -> str:
        found = self.rules.get(rule)
        return found.reason if found is not None else self.texts["reason_unknown"]


def default_cards_dir() -> Path:
    """``cards/`` of this repository (``service/`` sits next to it)."""
    return Path(__file__).resolve().parents[2] / "cards"


def load_content(cards_dir: str | Path = "") -> CardContent:
    """The checked card content of ``cards_dir`` (empty: :func:`default_cards_dir`).

    Cached per directory; raises :class:`ContentError` naming every problem.
    """
    return _load_cached(str(cards_dir))


@functools.lru_cache(maxsize=16)
def _load_cached(cards_dir: str) -> CardContent:
    directory = Path(cards_dir).expanduser() if cards_dir else default_cards_dir()
    return _load(directory.resolve())


def clear_cache() -> None:
    """Forget loaded content (tests that edit a copy of ``cards/`` in place)."""
    _load_cached.cache_clear()


# --- reading -----------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (a silent overwrite hides an edit)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, int) and not isinstance(key, bool):
            key = str(key)
        if not isinstance(key, str):
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} must be text (quote it)", key_node.start_mark
            )
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node)
    return result


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read(directory: Path, name: str, problems: list[str]) -> Any:
    path = directory / name
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.load(handle, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except FileNotFoundError:
        problems.append(f"{name}: file missing")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        problems.append(f"{name}: {where}{problem}")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{name}: cannot read ({exc})")
    return None


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _schema_problems(name: str, data: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema.FILES[name])
    found = []
    for error in validator.iter_errors(data):
        found.append(f"{name}: {_path(error.absolute_path)}: {error.message}")
    return sorted(found)


def _strings(data: Any, parts: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(data, str):
        yield parts, data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _strings(value, (*parts, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _strings(value, (*parts, index))


def _load(directory: Path) -> CardContent:
    if not directory.is_dir():
        raise ContentError(
            directory,
            ["directory not found; set LIVER_CDS_CARDS_DIR to the cards/ directory"],
        )
    problems: list[str] = []
    raw = {name: _read(directory, name, problems) for name in schema.FILES}
    if problems:
        raise ContentError(directory, problems)
    for name, data in raw.items():
        problems.extend(_schema_problems(name, data))
        for parts, value in _strings(data):
            fragment = markdown.find_html(value)
            if fragment is not None:
                problems.append(
                    f"{name}: {_path(parts)}: contains HTML {fragment!r}; "
                    "cards must not contain HTML (write '< 3' with a space, or words)"
                )
    if problems:
        raise ContentError(directory, problems)
    content = _build(directory, raw)
    problems.extend(_check(content, raw))
    if problems:
        raise ContentError(directory, problems)
    return content


def _build(directory: Path, raw: Mapping[str, Any]) -> CardContent:
    ruleset = raw["ruleset.yaml"]
    groups = raw["risks.yaml"]["groups"]
    options: dict[str, OptionContent] = {}
    for code in OPTION_CODES:
        entry = raw["options.yaml"]["options"][code]
        group = groups.get(
            entry.get("risk_group", ""), {"risks": [], "leading": "", "modifiers": {}}
        )
        options[code] = OptionContent(
            code=code,
            label=entry["label"],
            summary=entry["summary"],
            description=entry["description"],
            suggestion=entry["suggestion"],
            risks=tuple(group["risks"]),
            modifiers=dict(group["modifiers"]),
            codings=tuple(entry.get("codings", ())),
            leading=group["leading"],
            by_disease={k: tuple(v) for k, v in group.get("by_disease", {}).items()},
        )
    sources = tuple(
        SourceContent(
            id=key,
            label=entry["label"],
            citation=entry["citation"],
            url=entry.get("url"),
            tumour_kinds=frozenset(entry.get("tumour_kinds", ())),
            primary_sites=frozenset(entry.get("primary_sites", ())),
            rules=frozenset(entry["cited_by"].get("rules", ())),
            scores=frozenset(entry["cited_by"].get("scores", ())),
            options=frozenset(entry["cited_by"].get("options", ())),
            heuristics=frozenset(entry["cited_by"].get("heuristics", ())),
        )
        for key, entry in raw["sources.yaml"]["sources"].items()
    )
    data_needed = raw["data-needed.yaml"]
    missing = {
        fact: MissingContent(
            fact=fact,
            label=entry["label"],
            short=entry["short"],
            why=entry["why"],
            why_essential=entry.get("why_essential", entry["why"]),
            why_refine=entry.get("why_refine", entry["why"]),
            why_liver_disease=entry.get("why_liver_disease"),
            missing=entry.get("missing"),
            order=entry.get("order"),
            action=entry.get("action"),
        )
        for fact, entry in data_needed["items"].items()
    }
    orders = {
        code: OrderContent(
            code=code,
            display=entry["display"],
            text=entry["text"],
            suggestion=entry["suggestion"],
            codings=tuple(entry.get("codings", ())),
        )
        for code, entry in data_needed["orders"].items()
    }
    overrides = raw["override-reasons.yaml"]
    version = ruleset["version"]
    source_label = ruleset["source_label"]
    with contextlib.suppress(KeyError, ValueError, IndexError):  # _check names file and key
        source_label = templates.fill(source_label, {"version": version})
    return CardContent(
        directory=directory,
        version=version,
        source_label=source_label,
        documentation_url=ruleset.get("documentation_url") or None,
        smart_link_label=ruleset["smart_link_label"],
        topics=dict(ruleset["topics"]),
        verdict_summaries={v: ruleset["verdicts"][v]["summary"] for v in VERDICTS},
        verdict_explanations={v: ruleset["verdicts"][v]["explanation"] for v in VERDICTS},
        rules={
            key: RuleContent(
                reason=entry["reason"], text=entry["text"], summary=entry.get("summary")
            )
            for key, entry in ruleset["rules"].items()
        },
        additions=dict(ruleset["additions"]),
        heuristics=dict(ruleset["heuristics"]),
        notes=dict(ruleset["notes"]),
        diseases=dict(ruleset["diseases"]),
        distributions=dict(ruleset["distributions"]),
        child_pugh=dict(ruleset["child_pugh"]),
        facts=dict(ruleset["facts"]),
        fact_values={k: dict(v) for k, v in ruleset["fact_values"].items()},
        scores={
            key: ScoreContent(
                label=entry["label"],
                value=entry["value"],
                category=entry.get("category"),
                note=entry.get("note"),
            )
            for key, entry in ((k, ruleset["scores"][k]) for k in schema.SCORE_KEYS)
        },
        texts=dict(ruleset["texts"]),
        card=dict(ruleset["card"]),
        sections=dict(ruleset["sections"]),
        findings=dict(ruleset["findings"]),
        extrahepatic_sites=dict(ruleset["extrahepatic_sites"]),
        portal_hypertension=dict(ruleset["portal_hypertension"]),
        not_assessed=dict(ruleset["not_assessed"]),
        options=options,
        qualifiers=dict(raw["options.yaml"]["qualifiers"]),
        sources=sources,
        data_summary_essential=data_needed["summary"]["essential"],
        data_summary_refine=data_needed["summary"]["refine"],
        data_texts=dict(data_needed["texts"]),
        missing=missing,
        orders=orders,
        override_system=overrides["system"],
        override_reasons=tuple(
            OverrideReason(
                code=entry["code"],
                display=entry["display"],
                cards=frozenset(entry.get("cards", schema.CARD_KINDS)),
                system=section["system"],
            )
            for section in (overrides, *([overrides["hl7"]] if "hl7" in overrides else []))
            for entry in section["reasons"]
        ),
    )


# --- checks a schema cannot express -------------------------------------------------------


def summary_templates(content: CardContent) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every summary template of the assessment card: key -> (template, its reasons).

    ``reasons`` are the values ``{reason}`` can take with that template: a rule's own
    reason for a rule override; for a verdict's template, the reasons of the rules that
    give that verdict without an override, plus the fallback for an unknown rule.
    """
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for verdict in VERDICTS:
        reasons = [
            rule.reason
            for key, rule in content.rules.items()
            if RULE_VERDICTS.get(key) == verdict and rule.summary is None
        ]
        reasons.append(content.texts["reason_unknown"])
        if verdict == "potentially-resectable":  # a resectable rule after a liver resection
            reasons.append(content.texts["reason_previous_resection"])
        out[f"ruleset.yaml: verdicts.{verdict}.summary"] = (
            content.verdict_summaries[verdict],
            tuple(reasons),
        )
    for key, rule in content.rules.items():
        if rule.summary is not None:
            out[f"ruleset.yaml: rules.{key}.summary"] = (rule.summary, (rule.reason,))
    return out


def summary_values(content: CardContent) -> dict[str, tuple[str, ...]]:
    """Every value each summary placeholder can take (``reason`` excepted: per template)."""
    templated = ("single-segment", "single-section")
    distributions = [text for key, text in content.distributions.items() if key not in templated]
    fills = [
        (content.distributions["single-segment"], {"segment": segment}) for segment in SEGMENTS
    ] + [
        (content.distributions["single-section"], {"section": section})
        for section in content.sections.values()
    ]
    for template, values in fills:
        try:
            distributions.append(templates.fill(template, values))
        except (KeyError, ValueError, IndexError):
            distributions.append(template)
    return {
        "disease": tuple(content.diseases.values()),
        "distribution": tuple(distributions),
        "option": tuple(option.summary for option in content.options.values()),
        "child_pugh": tuple(content.child_pugh.values()),
    }


def data_needed_summaries(content: CardContent) -> dict[str, str]:
    """The data-needed summary templates: key -> template (field ``{items}``)."""
    return {
        "data-needed.yaml: summary.essential": content.data_summary_essential,
        "data-needed.yaml: summary.refine": content.data_summary_refine,
    }


MORE_ITEMS = " and {count} more"
"""Appended to the data-needed summary's ``{items}`` when not every item fits."""


def longest_items(content: CardContent) -> str:
    """``{items}`` at its longest that the summary must always fit: the longest single
    item and the count of all the others (the renderer lists as many as fit, then the
    count, :func:`service.render.data_needed.data_needed_summary`)."""
    shorts = [item.short for item in content.missing.values()]
    longest = max(shorts, key=len, default="")
    return longest + MORE_ITEMS.format(count=max(len(shorts) - 1, 0))


def _template_problems(where: str, template: str, allowed: tuple[str, ...]) -> list[str]:
    try:
        templates.check(template, allowed)
    except templates.TemplateError as exc:
        return [f"{where}: {exc}"]
    return []


def _check(content: CardContent, raw: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    ruleset = raw["ruleset.yaml"]

    # Placeholders: each template uses only its own fields; other texts are shown as written.
    problems += _template_problems(
        "ruleset.yaml: source_label", ruleset["source_label"], ("version",)
    )
    for key, allowed in schema.RULESET_TEXTS.items():
        problems += _template_problems(f"ruleset.yaml: texts.{key}", content.texts[key], allowed)
    for key, allowed in schema.DATA_NEEDED_TEXTS.items():
        problems += _template_problems(
            f"data-needed.yaml: texts.{key}", content.data_texts[key], allowed
        )
    for key, allowed in schema.CARD_TEXTS.items():
        problems += _template_problems(f"ruleset.yaml: card.{key}", content.card[key], allowed)
    for key, text in content.distributions.items():
        allowed = {"single-segment": ("segment",), "single-section": ("section",)}.get(key, ())
        problems += _template_problems(f"ruleset.yaml: distributions.{key}", text, allowed)
    for key, score in content.scores.items():
        problems += _template_problems(f"ruleset.yaml: scores.{key}.value", score.value, ("value",))
        if score.category is not None:
            problems += _template_problems(
                f"ruleset.yaml: scores.{key}.category", score.category, ("category",)
            )
    summaries = summary_templates(content)
    for where, (template, _reasons) in summaries.items():
        problems += _template_problems(where, template, schema.SUMMARY_FIELDS)
    for where, template in data_needed_summaries(content).items():
        problems += _template_problems(where, template, ("items",))
    if problems:
        return problems

    # Summaries: at most 139 characters for every combination of phrases.
    values = summary_values(content)
    for where, (template, reasons) in summaries.items():
        problems += _length_problem(
            where, templates.longest(template, {**values, "reason": reasons})
        )
    items = longest_items(content)
    for where, template in data_needed_summaries(content).items():
        problems += _length_problem(where, templates.fill(template, {"items": items}))

    # References between files.
    groups = raw["risks.yaml"]["groups"]
    for code, entry in raw["options.yaml"]["options"].items():
        group = entry.get("risk_group")
        if group is not None and group not in groups:
            problems.append(
                f"options.yaml: options.{code}.risk_group: unknown group {group!r} "
                f"(risks.yaml has {', '.join(sorted(groups))})"
            )
    for fact, item in content.missing.items():
        if item.order is not None and item.order not in content.orders:
            problems.append(
                f"data-needed.yaml: items.{fact}.order: unknown order {item.order!r} "
                f"(orders: {', '.join(sorted(content.orders))})"
            )
        if item.order is None and item.action is None:
            problems.append(f"data-needed.yaml: items.{fact}: give an `order` or an `action`")
    known_rules = set(schema.RULE_IDS) | {f"addition:{name}" for name in content.additions}
    for source in content.sources:
        for rule in sorted(source.rules - known_rules):
            problems.append(
                f"sources.yaml: sources.{source.id}.cited_by.rules: unknown rule {rule!r}"
            )
    codes = [reason.code for reason in content.override_reasons]
    for code in schema.REQUIRED_OVERRIDE_CODES:
        if code not in codes:
            problems.append(f"override-reasons.yaml: reasons: required code {code!r} missing")
    for code in sorted({c for c in codes if codes.count(c) > 1}):
        problems.append(f"override-reasons.yaml: reasons: code {code!r} listed twice")
    for reason in content.override_reasons:
        expected = nonadherence.DISPLAYS.get(reason.code)
        if reason.system == nonadherence.SYSTEM and reason.display != expected:
            problems.append(
                f"override-reasons.yaml: hl7.reasons: {reason.code!r}: display must be the "
                f"code system's, {expected!r}"
            )
    return problems


def _length_problem(where: str, longest: str) -> list[str]:
    if len(longest) <= SUMMARY_MAX:
        return []
    return [
        f"{where}: summary can reach {len(longest)} characters (limit {SUMMARY_MAX}), "
        f"e.g. {longest!r}; shorten the template or its longest phrases"
    ]
