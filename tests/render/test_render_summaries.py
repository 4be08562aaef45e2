"""Summaries stay within 139 characters and free of HTML for EVERY combination of the
template variables, not only for the examples and fixtures.

Two steps, each exhaustive:
1. every value the engine can produce (tumour kind x primary site, distribution x single
   segment x segment x surface, Child-Pugh class, option, rule) maps to a phrase of cards/;
2. every summary template, filled with every combination of those phrases, fits.
"""

from __future__ import annotations

import itertools
import re
from typing import get_args

import pytest

from render import render_builders as b
from service.clinical.model import (
    OPTION_CODES,
    VERDICTS,
    Distribution,
    MissingItem,
    OfferedOption,
    PrimarySite,
    Score,
    TumourKind,
)
from service.render import templates
from service.render.cards import (
    disease_key,
    distribution_phrase,
    headline_option,
    summary,
)
from service.render.content import (
    RULE_VERDICTS,
    SEGMENTS,
    CardContent,
    load_content,
    summary_templates,
    summary_values,
)
from service.render.data_needed import data_needed_summary
from service.render.markdown import find_html
from service.render.schema import MISSING_FACTS

LIMIT = 139
LEFTOVER_BRACE = re.compile(r"[{}]")


@pytest.fixture(scope="module")
def content() -> CardContent:
    return load_content()


def test_every_tumour_kind_and_primary_site_has_a_disease_phrase(content: CardContent) -> None:
    for kind, site in itertools.product(
        (*get_args(TumourKind), None, "junk"), (*get_args(PrimarySite), None, "junk")
    ):
        assert disease_key(kind, site) in content.diseases, (kind, site)


def test_every_distribution_has_a_phrase_among_the_enumerated_ones(content: CardContent) -> None:
    phrases = set(summary_values(content)["distribution"])
    segments = (*SEGMENTS, "IVa", "ivb", "IX", "", None)
    for distribution, single, segment, surface in itertools.product(
        get_args(Distribution), (True, False), segments, (True, False)
    ):
        facts = b.colorectal_right(
            distribution=distribution, single_segment=single, segment=segment, surface=surface
        ).facts
        assert distribution_phrase(content, facts) in phrases, (distribution, single, segment)


def test_every_template_combination_fits_and_has_no_html(content: CardContent) -> None:
    values = summary_values(content)
    combinations = 0
    for where, (template, reasons) in summary_templates(content).items():
        domain = {**values, "reason": reasons}
        names = sorted(set(templates.fields(template)))
        for chosen in itertools.product(*(domain[name] for name in names)):
            text = templates.fill(template, dict(zip(names, chosen, strict=True)))
            combinations += 1
            assert len(text) <= LIMIT, f"{where}: {len(text)} characters: {text!r}"
            assert find_html(text) is None, f"{where}: HTML in {text!r}"
            assert not LEFTOVER_BRACE.search(text), f"{where}: unfilled {text!r}"
    assert combinations > 10_000  # the product really was enumerated


def test_every_rule_and_headline_option_renders_a_fitting_summary(content: CardContent) -> None:
    """Through the renderer itself: each rule with its verdict (and an unknown rule for each
    verdict) x each headline option x each Child-Pugh class, longest disease and place."""
    pairs = [*RULE_VERDICTS.items(), *(("99", v) for v in VERDICTS)]
    for (rule, verdict), code, cp in itertools.product(pairs, OPTION_CODES, ("A", "B", "C", None)):
        assessment = b.colorectal_right(
            verdict=verdict,
            rule=rule,
            options=(OfferedOption(code, True, rule=rule), OfferedOption("mdt-review", True)),
            scores=b.scores(child_pugh=None if cp is None else Score("Child-Pugh", 7, cp)),
            tumour_kind="secondary",
            primary_site="pancreas",
            single_segment=True,
            segment="VIII",
        )
        text = summary(content, assessment)
        assert len(text) <= LIMIT and find_html(text) is None, text
        assert not text.endswith("…"), "the safety truncation must never be needed"


def test_the_summary_names_the_first_recommended_option_other_than_mdt(
    content: CardContent,
) -> None:
    assessment = b.colorectal_right(
        options=(
            OfferedOption("mdt-review", True),
            OfferedOption("resection-right-hepatectomy", True),
            OfferedOption("ablation", False),
        )
    )
    assert headline_option(assessment) == "resection-right-hepatectomy"
    only_mdt = b.colorectal_right(options=(OfferedOption("mdt-review", True),))
    assert headline_option(only_mdt) == "mdt-review"


def test_the_spec_example_summary_says_possible_never_certain(content: CardContent) -> None:
    """cards.md's example, in v2 wording: "may be removable by ...", never certain."""
    assert summary(content, b.colorectal_right()) == (
        "Colorectal liver metastases confined to right lobe: may be removable by right "
        "hepatectomy (Child-Pugh A)"
    )


def test_every_set_of_missing_items_fits_the_data_needed_summary(content: CardContent) -> None:
    facts = list(MISSING_FACTS)
    checked = 0
    for size in range(1, len(facts) + 1):
        for chosen in itertools.combinations(facts, size):
            for essential in (True, False):
                for stale in (True, False):
                    items = [
                        MissingItem(f, essential, stale_since=b.LAB_DAY if stale else None)  # type: ignore[arg-type]
                        for f in chosen
                    ]
                    text = data_needed_summary(content, items)
                    checked += 1
                    assert len(text) <= LIMIT, text
                    assert find_html(text) is None, text
                    assert not text.endswith("…"), text
    assert checked == (2 ** len(facts) - 1) * 4
