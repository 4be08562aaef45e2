"""Small, safe Markdown building blocks for card ``detail`` text.

Card wording comes from ``cards/`` (checked at load: no HTML); values come from the
engine (numbers, codes, resource references). Any value interpolated into Markdown goes
through :func:`text` so that it can neither inject HTML (the CDS Hooks sandbox renders raw
HTML) nor Markdown structure (links, emphasis, tables, autolinks).
"""

from __future__ import annotations

import re
from datetime import date, datetime

_HTML_TAG = re.compile(r"<\s*/?\s*[A-Za-z!?]")
"""The start of an HTML tag, comment, declaration or processing instruction."""

_HTML_ENTITY = re.compile(r"&(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#[xX][0-9A-Fa-f]+);")

_MD_PUNCTUATION = re.compile(r"([\\`*_\[\]|~@])")
"""Characters that start inline Markdown (emphasis, code, links, table cells, strike,
e-mail autolinks). Values sit mid-line, so line-start syntax (``#``, ``-``, ``1.``) is inert."""

_INERT = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;-+/()%'=?#!^$\"{}°µ"
)
"""Characters that mean nothing inline in GFM (a value made only of these is kept as is)."""

_INERT_TEXT = re.compile("[" + re.escape("".join(sorted(_INERT))) + "]*")
"""``_INERT_TEXT.fullmatch(s)`` is ``_INERT.issuperset(s)``, several times cheaper: a set
test looks every character up as a one-character string, the regex reads a bitmap."""

_AUTOLINK = re.compile(r"(?i)\b(https?|ftp)://|\bwww\.")

_REFERENCE = re.compile(r"^[A-Za-z]{1,64}/[A-Za-z0-9\-.]{1,64}$")
"""A relative FHIR reference whose id follows the FHIR id rule."""


def find_html(value: str) -> str | None:
    """The first HTML-looking fragment in ``value`` (tag or entity), or ``None``."""
    match = _HTML_TAG.search(value) or _HTML_ENTITY.search(value)
    return match.group(0) if match else None


_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
"""``<`` where HTML would start a tag, comment or declaration (``<b``, ``</``, ``<!``)."""

_BLOCK_START = re.compile(r"^(?:>|[#+*-]+(?=\s|$)|=+\s*$|\d{1,9}(?=[.)](?:\s|$)))")
"""Text that would start a block (quote, heading, list) at the start of a line or bullet."""


def text(value: object) -> str:
    """Render an engine value as inert Markdown text that also reads right as plain text.

    Some EHRs show ``detail`` unrendered, so nothing becomes an HTML entity: a ``<`` that
    would open a tag gets a space after it (``< b>``, which neither Markdown nor HTML reads
    as a tag), an ``&`` that would start an entity likewise (``& gt;``); ``>`` and a ``<``
    before a digit or space are inert mid-line and stay. Whitespace (including newlines)
    collapses to single spaces and a leading block marker is escaped, so a value cannot
    start a block; inline Markdown punctuation is backslash-escaped; URL-like text is broken
    up so GFM does not autolink it.
    """
    raw = str(value)
    if (
        _INERT_TEXT.fullmatch(raw)
        and "//" not in raw
        and "www." not in raw.lower()
        and not _BLOCK_START.match(raw)
    ):
        return raw  # the common case (numbers, units, codes): nothing to escape
    raw = " ".join(raw.split())
    raw = _TAG_START.sub("< ", raw)
    raw = _HTML_ENTITY.sub(lambda m: "& " + m.group(0)[1:], raw)
    raw = _MD_PUNCTUATION.sub(r"\\\1", raw)
    start = _BLOCK_START.match(raw)
    if start is not None:  # escape the marker's punctuation: "\\- x", "\\> x", "3\\. x"
        at = start.end() if raw[:1].isdigit() else 0
        raw = raw[:at] + "\\" + raw[at:]
    return _AUTOLINK.sub(_break_autolink, raw)


def _break_autolink(match: re.Match[str]) -> str:
    found = match.group(0)
    if found.lower().startswith("www"):
        return found[:3] + "\\."
    return found.replace("/", "\\/")


def reference(value: str) -> str:
    """A FHIR reference such as ``Observation/abc``: kept as is when well formed."""
    return value if _REFERENCE.match(value) else text(value)


def link(label: str, url: str) -> str:
    """A Markdown link; ``url`` must come from checked card content (https, no spaces).

    Parentheses in the URL (DOIs have them) are percent-encoded so that every Markdown
    renderer, not only GFM's balanced-parenthesis rule, ends the link in the right place.
    """
    target = url.replace("(", "%28").replace(")", "%29")
    return f"[{text(label)}]({target})"


def day(value: datetime | date | None) -> str:
    """Calendar day (``YYYY-MM-DD``) of a timestamp, or empty when unknown."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    return value.isoformat()


_ESCAPED = re.compile(r"\\([\\`*_\[\]|~@.!#()/:+\-{}<>])")
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))
_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")


def plain(markdown: str) -> str:
    """Markdown as a terminal shows it: links as ``label (url)``, no emphasis or escapes."""
    out = _LINK.sub(lambda m: f"{m.group(1)} ({_unquote_parens(m.group(2))})", markdown)
    out = out.replace("**", "")
    out = _ESCAPED.sub(r"\1", out)
    for entity, char in _ENTITIES:
        out = out.replace(entity, char)
    return out


def _unquote_parens(url: str) -> str:
    return url.replace("%28", "(").replace("%29", ")")
