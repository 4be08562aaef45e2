"""`liver-cds evaluate FILE --cards` shows cards the way a clinician sees them."""

from __future__ import annotations

from render import render_builders as b
from service.render.cards import render_cards
from service.render.terminal import format_cards_for_terminal


def test_no_cards() -> None:
    assert format_cards_for_terminal([]) == "No cards.\n"


def test_cards_read_like_the_ehr_shows_them() -> None:
    cards = render_cards(
        b.indeterminate_missing(), b.context(smart_app_url="https://smart.example.org/launch")
    )
    text = format_cards_for_terminal(cards)
    first, second = text.split("== Card 2 of 2")
    assert first.startswith("== Card 1 of 2 | INFO | Resectability indeterminate ==\n")
    assert cards[0]["summary"] in first
    assert "Resectability indeterminate (rule 5):" in first
    assert "**" not in text and "&lt;" not in text
    assert "[recommended] Propose referral for liver MDT review" in first
    assert "create ServiceRequest (draft, proposal): Liver MDT review" in first
    assert "[SMART app]: https://smart.example.org/launch" in first
    assert "Override reasons: Already reviewed by the MDT" in first
    assert second.startswith(" | INFO | Data needed ==")
    assert "[recommended] Propose liver panel with INR" in second
    assert "out of date: latest from 2026-03-02" in second


def test_long_lines_are_wrapped_under_their_list_marker() -> None:
    text = format_cards_for_terminal(render_cards(b.hcc_cirrhosis_child_b(), b.context()))
    for line in text.splitlines():
        if not line.lstrip().startswith(("create ", "Override reasons")):
            assert len(line) <= 100, line
    assert "\n  3. Thermal ablation (may be considered). For this patient:" in text
    assert "\n     " in text  # the option's continuation sits under its text, not the number
