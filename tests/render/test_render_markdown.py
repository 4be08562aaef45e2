"""The Markdown helpers keep engine values inert and card content free of HTML."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from service.render import markdown as md


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2.0 mg/dL", "2.0 mg/dL"),
        ("1 (from Karnofsky 80)", "1 (from Karnofsky 80)"),
        ("<b>x</b> & y", "< b>x< /b> & y"),
        ("&gt; 11 &amp; &#60;", "& gt; 11 & amp; & #60;"),
        ("MELD > 11, size < 3 cm", "MELD > 11, size < 3 cm"),
        ("- item", "\\- item"),
        ("> quote", "\\> quote"),
        ("3. item", "3\\. item"),
        ("-2.86", "-2.86"),
        ("[a](http://e.x)", "\\[a\\](http:\\/\\/e.x)"),
        ("*bold* _it_ `code` a|b ~s~", "\\*bold\\* \\_it\\_ \\`code\\` a\\|b \\~s\\~"),
        ("line one\n# heading\r\n- item", "line one # heading - item"),
        ("see www.example.org or a@b.org", "see www\\.example.org or a\\@b.org"),
        ("back\\slash", "back\\\\slash"),
    ],
)
def test_text_escapes_what_markdown_or_html_would_interpret(value: str, expected: str) -> None:
    assert md.text(value) == expected


def test_find_html_spots_tags_comments_and_entities_but_not_comparisons() -> None:
    assert md.find_html("a <b>bold</b> word") == "<b"
    assert md.find_html("</div>") == "</d"
    assert md.find_html("<!-- hidden -->") == "<!"
    assert md.find_html("pain&nbsp;fever") == "&nbsp;"
    assert md.find_html("&#60;") == "&#60;"
    assert md.find_html("lesions < 3 cm and <3 cm, A & B") is None


def test_references_are_kept_only_when_well_formed() -> None:
    assert md.reference("Observation/abc-1.2") == "Observation/abc-1.2"
    assert md.reference("Observation/<x>") == "Observation/< x>"
    assert md.reference("Bundle entry 7") == "Bundle entry 7"


def test_links_encode_parentheses_and_plain_text_restores_them() -> None:
    url = "https://doi.org/10.1016/S1470-2045(24)00660-0"
    link = md.link("COLLISION [2025]", url)
    assert link == "[COLLISION \\[2025\\]](https://doi.org/10.1016/S1470-2045%2824%2900660-0)"
    assert md.plain(f"- {md.link('COLLISION', url)}") == f"- COLLISION ({url})"


def test_plain_text_undoes_emphasis_escapes_and_entities() -> None:
    assert md.plain("**ECOG**: " + md.text("<2> & *x*")) == "ECOG: <2> & *x*"


def test_day_is_the_calendar_date() -> None:
    assert md.day(datetime(2026, 3, 2, 23, 59, tzinfo=UTC)) == "2026-03-02"
    assert md.day(date(2026, 3, 2)) == "2026-03-02"
    assert md.day(None) == ""
