"""Card wording that depends only on ``cards/``, worked out once per loaded content.

Every hook call used to redo work whose result depends on the card YAML alone: escaping
option labels for Markdown, turning risk phrases into sentences, filling the action
description with an option's label, picking the override reasons of a card kind, choosing
which sources a combination of rules, scores and options cites. :func:`prepared` does that
once per :class:`~service.render.content.CardContent` (that is, per ``cards_dir``: content
is loaded once and cached) and the renderers read the results. Nothing here depends on a
patient.

Shared, never mutated: the cards hold some prepared dicts and lists themselves (a
proposal's ``code``, the override reasons, the source links, the topic), so every response
carries the same objects instead of fresh copies. That is safe because nothing changes a
card once rendered: the response is serialised (``service.app``, orjson), the audit reads
its uuids (``service.protocol.audit.card_ids``), and no caller (``service.pipeline``,
``service.smart``) edits a card. Code that must change a card copies it first
(``copy.deepcopy``); nothing in this module is ever mutated after :class:`Prepared` is built.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from service.codesystems import CARD_TOPIC_SYSTEM, TREATMENT_OPTION_SYSTEM
from service.render import markdown as md
from service.render import proposals, schema, templates
from service.render.content import CardContent, OptionContent, SourceContent

_UNSAFE_PLAIN = re.compile(r"[^\w\s./,+%()]")
"""Characters dropped from an unknown engine qualifier before it reaches a plain-text label."""


def sentence(text: str) -> str:
    """``text`` on one line, starting with a capital and ending with a full stop."""
    text = " ".join(text.split())
    if not text:
        return text
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


@dataclass(frozen=True)
class OptionRisks:
    """An option's risks as the compact card names them, already made into sentences."""

    modifiers: tuple[tuple[str, str], ...]
    """(risk modifier, sentence) for each modifier the option has, in the order of
    :data:`schema.RISK_MODIFIERS` (the first that applies to the patient leads)."""
    modifier_set: frozenset[str]
    """The modifiers of :attr:`modifiers`: most patients have none of them, which one
    set operation tells."""
    by_disease: Mapping[str, str]
    """Disease key (``hcc`` or a primary site) -> the first risk for that disease."""
    leading: str
    """The option's leading risk, or ``""``."""

    def leading_for(self, risk_modifiers: frozenset[str], disease: str | None) -> str:
        """The risk named with the option: a patient-specific modifier first, then the first
        risk for this tumour kind, else the leading one (``""`` when the option has none)."""
        if not self.modifier_set.isdisjoint(risk_modifiers):
            for modifier, text in self.modifiers:
                if modifier in risk_modifiers:
                    return text
        specific = self.by_disease.get(disease or "")
        return specific if specific is not None else self.leading

    def patient_specific(self, risk_modifiers: frozenset[str]) -> bool:
        """Whether one of the option's modifiers applies to the patient."""
        return not self.modifier_set.isdisjoint(risk_modifiers)


def option_risks(text: OptionContent) -> OptionRisks:
    """The sentences :class:`OptionRisks` holds for ``text``."""
    modifiers = tuple(
        (m, sentence(text.modifiers[m])) for m in schema.RISK_MODIFIERS if m in text.modifiers
    )
    return OptionRisks(
        modifiers=modifiers,
        modifier_set=frozenset(m for m, _text in modifiers),
        by_disease={key: sentence(risks[0]) for key, risks in text.by_disease.items() if risks},
        leading=sentence(text.leading) if text.leading else "",
    )


@dataclass(frozen=True)
class OptionWording:
    """An offered option with its qualifier: everything a card says about it."""

    text: OptionContent
    codings: tuple[Mapping[str, str], ...]
    """The proposal's codings: the treatment-option Coding, then the option's own."""
    qualifier: str
    """The qualifier as plain text (card content, or the engine's code made readable)."""
    label: str
    """The suggestion's label: the option's suggestion text and the qualifier."""
    display: str
    """The option's label and qualifier: the proposal's ``code.text``."""
    description: str
    """The action's description (``texts.action_description`` with ``display``)."""
    code: dict[str, Any]
    """The proposal's ``code``: :attr:`codings` and :attr:`display` (shared, never
    mutated: module docstring)."""
    name_md: str
    """The option's name in the compact detail (label and qualifier, Markdown-safe)."""
    risks: OptionRisks


def option_content(content: CardContent, code: str) -> OptionContent:
    """The wording of option ``code``; for a code ``cards/`` does not know, its plain text."""
    found = content.options.get(code)
    if found is not None:
        return found
    plain = " ".join(str(code).split()) or "option"
    return OptionContent(plain, plain, plain, "", plain, (), {}, ())


def plain_qualifier(content: CardContent, qualifier: str | None) -> str:
    """The qualifier as plain text (card content, or the engine's code made readable)."""
    if not qualifier:
        return ""
    known = content.qualifiers.get(qualifier)
    if known is not None:
        return known
    readable = qualifier.replace("-", " ").replace("_", " ")
    return " ".join(_UNSAFE_PLAIN.sub("", readable).split())


def option_wording(content: CardContent, code: str, qualifier: str | None) -> OptionWording:
    """The wording of option ``code`` offered with ``qualifier`` (worked out, not looked up:
    :meth:`Prepared.wording` looks up the known ones)."""
    text = option_content(content, code)
    plain = plain_qualifier(content, qualifier)
    display = text.label + (f" ({plain})" if plain else "")
    name_md = md.text(text.label) + (f", {md.text(plain)}" if plain else "")
    treatment = {"system": TREATMENT_OPTION_SYSTEM, "code": code, "display": text.label}
    codings = (treatment, *text.codings)
    return OptionWording(
        text=text,
        codings=codings,
        qualifier=plain,
        label=text.suggestion + (f" ({plain})" if plain else ""),
        display=display,
        description=templates.fill(content.texts["action_description"], {"label": display}),
        code=proposals.proposal_code(codings, display),
        name_md=name_md,
        risks=option_risks(text),
    )


@dataclass(frozen=True)
class Citations:
    """What a card cites for one combination of rules, scores, options and heuristics."""

    sources: tuple[SourceContent, ...]
    """:func:`service.render.cards.cited_sources`, in ``sources.yaml`` order."""
    url: str | None
    """The source's ``url`` of the card: the deciding rule's guideline, else the rule set's
    documentation."""
    links: tuple[dict[str, str], ...]
    """The card's ``absolute`` links: each cited source with a URL, each URL once (shared,
    never mutated: module docstring)."""


CitationKey = tuple[
    str, str | None, str | None, tuple[tuple[str, str], ...], tuple[bool, ...], tuple[str, ...]
]
"""(deciding rule, tumour kind, primary site, (code, rule) of each offered option, whether
each score of :data:`schema.SCORE_KEYS` was computed, heuristics): everything
:class:`Citations` depends on."""

_CITATION_CACHE_MAX: Final = 1024
"""Distinct citation keys kept per content (a few dozen occur; the bound only caps memory)."""


class Prepared:
    """The card content's patient-independent wording, worked out once (module docstring)."""

    def __init__(self, content: CardContent) -> None:
        self.content = content
        self.wordings: Mapping[tuple[str, str], OptionWording] = {
            (code, qualifier): option_wording(content, code, qualifier)
            for code in content.options
            for qualifier in ("", *content.qualifiers)
        }
        """(option code, engine qualifier or ``""``) -> wording, for every known pair."""
        self.override_reasons: Mapping[str, list[dict[str, str]]] = {
            kind: _override_reasons(content, kind) for kind in schema.CARD_KINDS
        }
        """Card kind -> the override-reason Codings it offers (shared, never mutated)."""
        self.topics: Mapping[str, dict[str, str]] = {
            code: {"system": CARD_TOPIC_SYSTEM, "code": code, "display": display}
            for code, display in content.topics.items()
        }
        """Card topic code -> the ``source.topic`` Coding (shared, never mutated)."""
        self.options_heading = f"**{content.card['options_heading']}**"
        self.footer = templates.fill(
            content.card["footer"], {"label": md.text(content.source_label)}
        )
        """The compact detail's last line (the rule set's label)."""
        self._citations: dict[CitationKey, Citations] = {}
        self._lock = threading.Lock()

    def wording(self, code: str, qualifier: str | None) -> OptionWording:
        """The wording of ``code`` offered with ``qualifier``."""
        found = self.wordings.get((code, qualifier or ""))
        return found if found is not None else option_wording(self.content, code, qualifier)

    def override_reason_codings(self, kind: str) -> list[dict[str, str]]:
        """The override-reason Codings a card of ``kind`` offers (shared, never mutated)."""
        reasons = self.override_reasons.get(kind)
        if reasons is None:  # not a kind of schema.CARD_KINDS: whichever reasons name it
            reasons = _override_reasons(self.content, kind)
        return reasons

    def citations(self, key: CitationKey) -> Citations:
        """The :class:`Citations` for ``key``, remembered (bounded) once worked out."""
        found = self._citations.get(key)
        if found is None:
            found = _citations(self.content, key)
            with self._lock:
                if len(self._citations) >= _CITATION_CACHE_MAX:
                    self._citations.clear()
                self._citations[key] = found
        return found


def _override_reasons(content: CardContent, kind: str) -> list[dict[str, str]]:
    """The override-reason Codings (each with ``display``) of a card of ``kind``."""
    return [
        {"system": r.system, "code": r.code, "display": r.display}
        for r in content.override_reasons
        if kind in r.cards
    ]


def _citations(content: CardContent, key: CitationKey) -> Citations:
    """The sources cited by the deciding rule, the shown scores, offered options, heuristics.

    ``tumour_kinds`` and ``primary_sites`` restrict a source to the rules that applied: a
    primary site counts only for metastases (an hcc patient with a colorectal metastasis
    follows the hcc rules, so colorectal-only sources are not cited).
    """
    rule, tumour_kind, primary_site, options, computed, heuristic_names = key
    rules = {rule, *(option_rule for _code, option_rule in options if option_rule)}
    offered = {code for code, _rule in options}
    heuristics = set(heuristic_names)
    scores = {key for key, done in zip(schema.SCORE_KEYS, computed, strict=True) if done}
    # shown: BCLC only for hcc, Fong only for colorectal metastases
    if tumour_kind != "hcc":
        scores.discard("bclc")
    if not (tumour_kind == "secondary" and primary_site == "colorectal"):
        scores.discard("fong")
    sources = []
    for source in content.sources:
        if source.tumour_kinds and tumour_kind not in source.tumour_kinds:
            continue
        if source.primary_sites and not (
            tumour_kind == "secondary" and primary_site in source.primary_sites
        ):
            continue  # e.g. COLLISION is about colorectal metastases, not an hcc patient's
        if (
            source.rules & rules
            or source.scores & scores
            or source.options & offered
            or source.heuristics & heuristics
        ):
            sources.append(source)
    url = next(
        (s.url for s in sources if s.url is not None and rule in s.rules),
        content.documentation_url,
    )
    seen: set[str] = set()
    links = []
    for source in sources:  # each URL once, with the first source's label
        if source.url is not None and source.url not in seen:
            seen.add(source.url)
            links.append({"label": source.label, "url": source.url, "type": "absolute"})
    return Citations(tuple(sources), url, tuple(links))


_PREPARED: dict[int, tuple[CardContent, Prepared]] = {}
_PREPARED_MAX: Final = 16
"""As many as :func:`service.render.content.load_content` caches."""


def prepared(content: CardContent) -> Prepared:
    """The :class:`Prepared` wording of ``content``, made on first use.

    Keyed by identity (content holds dicts, so it is not hashable); the entry keeps the
    content alive, so its id cannot be reused by other content while the entry exists. A
    reloaded directory (``content.clear_cache()`` in tests) is new content and is prepared
    anew.
    """
    entry = _PREPARED.get(id(content))
    if entry is not None and entry[0] is content:
        return entry[1]
    made = Prepared(content)
    if len(_PREPARED) >= _PREPARED_MAX:
        _PREPARED.clear()
    _PREPARED[id(content)] = (content, made)
    return made
