"""Card ``detail`` Markdown to safe HTML, for the demo page (``POST /demo/markdown``).

A CDS Hooks card's ``detail`` is GitHub-flavoured Markdown written by a CDS service, and an
EHR must never let it put markup or script into its page. The demo page shows cards the way
the CDS Hooks sandbox does (CommonMark with the GitHub tables, strikethrough and bare-URL
links), but safely, in three layers:

1. markdown-it-py parses with raw HTML off: ``<script>`` in a card is shown as text.
2. Links are kept only for absolute ``http``, ``https`` and ``mailto`` URLs; any other
   link (``javascript:``, ``data:``, relative) becomes its plain label. Images become links
   to the image: an EHR page should not load remote images named by card text.
3. nh3 (the Rust ammonia sanitiser) then cleans the HTML with an allow-list of the tags and
   attributes the renderer can produce, whatever a parser bug might let through.

On top of that the page's Content-Security-Policy forbids inline script and foreign origins.

Headings move down three levels (``#`` becomes ``<h4>``) so that a card's own headings sit
below the card's ``<h3>`` summary; each keeps its Markdown level as class ``md-h1`` ... .
"""

from __future__ import annotations

import functools
from typing import Final

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

HEADING_OFFSET: Final = 3
LINK_SCHEMES: Final = frozenset({"http", "https", "mailto"})
MAX_MARKDOWN_CHARS: Final = 16 * 1024
"""Longest detail rendered; a longer one is cut. The service's longest detail is about 5.5 k
characters; rendering costs about 9 µs a character at worst (measured: 16 k ``[`` in 0.14 s)."""

_TAGS: Final = frozenset(
    {
        "p", "br", "hr", "h4", "h5", "h6", "strong", "em", "s", "code", "pre", "blockquote",
        "ul", "ol", "li", "a", "span", "table", "thead", "tbody", "tr", "th", "td",
    }
)  # fmt: skip
_ATTRIBUTES: Final = {
    "a": {"href", "title", "target"},
    "ol": {"start"},
}
_ALIGN_CLASSES: Final = frozenset({"md-align-left", "md-align-center", "md-align-right"})
_CLASSES: Final = {
    "span": {"md-unsafe-link"},
    "th": _ALIGN_CLASSES,
    "td": _ALIGN_CLASSES,
    **{f"h{n}": {f"md-h{level}" for level in range(1, 7)} for n in (4, 5, 6)},
}


@functools.cache
def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(_TAGS),
        clean_content_tags={"script", "style"},
        attributes={tag: set(names) for tag, names in _ATTRIBUTES.items()},
        url_schemes=set(LINK_SCHEMES),
        url_relative="deny",
        allowed_classes={tag: set(names) for tag, names in _CLASSES.items()},
        link_rel="noopener noreferrer",
    )


@functools.cache
def _parser() -> MarkdownIt:
    # "gfm-like": CommonMark plus tables, strikethrough and linkify (bare URLs), as the
    # sandbox's react-markdown with remark-gfm; html=False whatever the preset says.
    parser = MarkdownIt("gfm-like", {"html": False, "linkify": True, "typographer": False})
    # Every link is parsed as a link (markdown-it would leave a javascript: one as its raw
    # source text); _make_safe then keeps only the allowed ones, as a label otherwise.
    parser.validateLink = lambda url: True  # type: ignore[method-assign]
    parser.core.ruler.push("liver_cds_safe", _make_safe)
    return parser


def render(markdown: str) -> str:
    """``markdown`` as sanitised HTML (a fragment for ``innerHTML``)."""
    html = _parser().render(markdown[:MAX_MARKDOWN_CHARS])
    return _cleaner().clean(html)


def link_is_safe(href: str) -> bool:
    """An absolute ``http``, ``https`` or ``mailto`` URL (after markdown-it normalised it)."""
    scheme, colon, rest = href.partition(":")
    if not colon or not rest:
        return False
    return scheme.strip().lower() in LINK_SCHEMES and not any(ch.isspace() for ch in scheme)


def _make_safe(state: object) -> None:
    """The core rule run after parsing: headings moved down, table alignment as a class
    (the page's CSP allows no style attribute), links allow-listed, images turned into links."""
    tokens: list[Token] = state.tokens  # type: ignore[attr-defined]
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            level = int(token.tag[1])
            token.tag = f"h{min(6, level + HEADING_OFFSET)}"
            if token.type == "heading_open":
                token.attrSet("class", f"md-h{level}")
        elif token.type in ("th_open", "td_open") and token.attrs.get("style"):
            align = str(token.attrs.pop("style")).removeprefix("text-align:")
            token.attrSet("class", f"md-align-{align}")
        if token.children:
            token.children = _safe_inline(token.children)


def _safe_inline(children: list[Token]) -> list[Token]:
    out: list[Token] = []
    in_link = in_unsafe_link = not_a_link = False  # links do not nest in CommonMark
    for index, token in enumerate(children):
        if token.type == "link_open" and not _gfm_autolink(token, children[index + 1 :]):
            not_a_link = True  # a bare "name.md" linkify-it took for a domain: text, as on GitHub
            continue
        if token.type == "link_close" and not_a_link:
            not_a_link = False
            continue
        if token.type == "link_open":
            in_link = True
        elif token.type == "link_close":
            in_link = False
        if token.type == "image":
            out.extend(_image_as_label(token) if in_link else _image_as_link(token))
        elif token.type == "link_open" and not link_is_safe(str(token.attrGet("href") or "")):
            out.append(_unsafe_link_open())
            in_unsafe_link = True
        elif token.type == "link_close" and in_unsafe_link:
            out.append(Token("span_close", "span", -1))
            in_unsafe_link = False
        else:
            if token.type == "link_open" and not str(token.attrGet("href")).startswith("mailto:"):
                token.attrSet("target", "_blank")
            out.append(token)
    return out


def _gfm_autolink(link: Token, rest: list[Token]) -> bool:
    """Whether a link is one GitHub shows as a link: any written link, and of the bare
    URLs linkify-it finds only those GitHub links too (starting with a scheme or ``www.``,
    or an e-mail address), not a bare ``host.tld`` such as ``clinical-rules.md``."""
    if link.markup != "linkify":
        return True
    text = rest[0].content if rest and rest[0].type == "text" else ""
    lowered = text.lower()
    return lowered.startswith(("http://", "https://", "mailto:", "www.")) or "@" in text


def _unsafe_link_open() -> Token:
    span = Token("span_open", "span", 1)
    span.attrSet("class", "md-unsafe-link")
    return span


def _image_as_label(image: Token) -> list[Token]:
    """An image inside a link: its alt text (or URL) only, as links can not nest."""
    label = Token("text", "", 0)
    label.content = image.content or str(image.attrGet("src") or "")
    return [label]


def _image_as_link(image: Token) -> list[Token]:
    """``![alt](src)`` as ``[alt](src)``: the label is the alt text (or the URL)."""
    src = str(image.attrGet("src") or "")
    (label,) = _image_as_label(image)
    if not link_is_safe(src):
        return [_unsafe_link_open(), label, Token("span_close", "span", -1)]
    link = Token("link_open", "a", 1)
    link.attrSet("href", src)
    link.attrSet("target", "_blank")
    return [link, label, Token("link_close", "a", -1)]
