"""Card Markdown as the demo page shows it: CommonMark with GitHub tables, strikethrough and
bare-URL links (as the CDS Hooks sandbox), never raw HTML, links only to http, https and
mailto, images only as links; and ``POST /demo/markdown``, the route the page calls.

These run everywhere; tests/ops/test_demo_browser.py checks the same vectors in Chromium.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from service.demo import MARKDOWN_BODY_LIMIT, MARKDOWN_MAX_ITEMS, demo_routes
from service.demo_markdown import MAX_MARKDOWN_CHARS, link_is_safe, render
from service.settings import Settings

RENDERED = [
    ("plain & <b>bold</b>", "<p>plain &amp; &lt;b&gt;bold&lt;/b&gt;</p>\n"),
    (
        "**a** and *b* and `c<d>` and ~~e~~",
        "<p><strong>a</strong> and <em>b</em> and <code>c&lt;d&gt;</code> and <s>e</s></p>\n",
    ),
    ("snake_case_word and 2 * 3 * 4", "<p>snake_case_word and 2 * 3 * 4</p>\n"),
    ("\\*not emphasis\\*", "<p>*not emphasis*</p>\n"),
    (
        '[x](https://e.org/a "T")',
        '<p><a href="https://e.org/a" title="T" target="_blank" rel="noopener noreferrer">'
        "x</a></p>\n",
    ),
    (
        "[m](mailto:mdt@example.org)",
        '<p><a href="mailto:mdt@example.org" rel="noopener noreferrer">m</a></p>\n',
    ),
    ("1. one\n2. two", "<ol>\n<li>one</li>\n<li>two</li>\n</ol>\n"),
    ("3. three\n4. four", '<ol start="3">\n<li>three</li>\n<li>four</li>\n</ol>\n'),
    ("# Title", '<h4 class="md-h1">Title</h4>\n'),
    ("### Deep\n#### Deeper", '<h6 class="md-h3">Deep</h6>\n<h6 class="md-h4">Deeper</h6>\n'),
    ("line one  \nline two", "<p>line one<br>\nline two</p>\n"),
    ("line one\nline two", "<p>line one\nline two</p>\n"),
    ("> quoted", "<blockquote>\n<p>quoted</p>\n</blockquote>\n"),
    (
        "```\n<script>x</script>\n```",
        "<pre><code>&lt;script&gt;x&lt;/script&gt;\n</code></pre>\n",
    ),
    ("```python\nx = 1\n```", "<pre><code>x = 1\n</code></pre>\n"),
    ("---", "<hr>\n"),
    (
        "| Fact | Value |\n|---|---:|\n| ECOG | 0 |",
        '<table>\n<thead>\n<tr>\n<th>Fact</th>\n<th class="md-align-right">Value</th>\n'
        '</tr>\n</thead>\n<tbody>\n<tr>\n<td>ECOG</td>\n<td class="md-align-right">0</td>\n'
        "</tr>\n</tbody>\n</table>\n",
    ),
    (
        "see https://e.org/x or www.example.org",
        '<p>see <a href="https://e.org/x" target="_blank" rel="noopener noreferrer">'
        'https://e.org/x</a> or <a href="http://www.example.org" target="_blank" '
        'rel="noopener noreferrer">www.example.org</a></p>\n',
    ),
    # A bare host name is text, as on GitHub (linkify-it alone would link "rules.md").
    ("see clinical-rules.md or example.com", "<p>see clinical-rules.md or example.com</p>\n"),
    (
        "<https://example.org/bclc>",
        '<p><a href="https://example.org/bclc" target="_blank" rel="noopener noreferrer">'
        "https://example.org/bclc</a></p>\n",
    ),
    # Entity references decode to text, never to markup; unknown ones stay as written.
    (
        "MELD &gt; 11 &amp; &#60;script&#x3E; &bogus;",
        "<p>MELD &gt; 11 &amp; &lt;script&gt; &amp;bogus;</p>\n",
    ),
    ("`&gt;` in code", "<p><code>&amp;gt;</code> in code</p>\n"),
]

UNSAFE_LINK = '<p><span class="md-unsafe-link">x</span></p>\n'

HOSTILE = [
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt&#58;alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html,<script>alert(1)</script>)",
    "[x](file:///etc/passwd)",
    "[x](/relative/path)",
    "[x](//evil.example/path)",
    "[x](#fragment)",
    "![x](javascript:alert(1))",
    "![x](data:image/png;base64,iVBORw0KGgo=)",
]


@pytest.mark.parametrize(("markdown", "html"), RENDERED)
def test_card_markdown_renders_as_commonmark_with_github_tables(markdown: str, html: str) -> None:
    assert render(markdown) == html


@pytest.mark.parametrize("markdown", HOSTILE)
def test_a_link_to_anything_but_http_https_or_mailto_is_its_label_only(markdown: str) -> None:
    assert render(markdown) == UNSAFE_LINK


@pytest.mark.parametrize(
    "markdown",
    [
        '<img src=x onerror="window.__pwned = true">',
        "<script>window.__pwned = true</script>",
        '<a href="javascript:alert(1)">a</a>',
        "<svg onload=alert(1)>",
        "![x](data:image/svg+xml,<svg onload=alert(1)>)",
        "<iframe src=https://evil.example></iframe>",
        '<div style="background:url(javascript:alert(1))">x</div>',
        "<!-- comment --><style>body{}</style>",
        "<javascript:alert(1)>",
        "[a](<javascript:alert(1)>)",
        "[a]: javascript:alert(1)\n\n[a]",
        "  <b>indented html</b>",
        "* <b>in a list</b>\n\n> <i>in a quote</i>",
        "| <b>h</b> |\n|---|\n| <script>x</script> |",
    ],
)
def test_raw_html_is_text_and_no_script_or_handler_survives(markdown: str) -> None:
    html = render(markdown)
    for tag, attrs in elements(html):
        names = {name for name, _ in attrs}
        if tag == "a":  # a bare URL inside the text, linked
            assert names <= {"href", "target", "rel"}, (markdown, html)
            assert link_is_safe(dict(attrs)["href"] or ""), (markdown, html)
        elif tag == "span":
            assert attrs == [("class", "md-unsafe-link")], (markdown, html)
        else:
            assert tag in {
                "p",
                "ul",
                "li",
                "blockquote",
                "table",
                "thead",
                "tbody",
                "tr",
                "th",
                "td",
            }
            assert not attrs, (markdown, html)
    assert "<!--" not in html


def elements(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every element of ``html`` as a browser would parse it: (tag, attributes)."""
    found: list[tuple[str, list[tuple[str, str | None]]]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, attrs))

    Collector().feed(html)
    return found


def test_an_image_becomes_a_link_never_an_img() -> None:
    assert render("![logo](https://e.org/i.png)") == (
        '<p><a href="https://e.org/i.png" target="_blank" rel="noopener noreferrer">logo</a></p>\n'
    )
    # inside a link it is the alt text only: links do not nest
    assert render("[a ![i](https://e.org/i.png)](https://x.org)") == (
        '<p><a href="https://x.org" target="_blank" rel="noopener noreferrer">a i</a></p>\n'
    )


def test_link_schemes() -> None:
    assert link_is_safe("https://e.org") and link_is_safe("HTTP://e.org")
    assert link_is_safe("mailto:a@b.org")
    assert not link_is_safe("javascript:alert(1)") and not link_is_safe("https:")
    assert not link_is_safe("/path") and not link_is_safe("")


def test_a_very_long_detail_is_cut_not_refused() -> None:
    html = render("a" * (MAX_MARKDOWN_CHARS + 10))
    assert html.count("a") == MAX_MARKDOWN_CHARS


# --- the route the page calls ------------------------------------------------------------


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=demo_routes(Settings(fixtures_dir=str(tmp_path))))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def test_the_route_renders_each_detail_in_order(client: httpx.AsyncClient) -> None:
    texts = ["**a**", "", "[x](javascript:alert(1))"]
    response = await client.post("/demo/markdown", json={"markdown": texts})
    assert response.status_code == 200
    assert response.json() == {"html": [render(text) for text in texts]}
    assert response.json()["html"][2] == UNSAFE_LINK


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"", 400, "empty"),
        (b"{", 400, "not valid JSON"),
        (b"[]", 400, "'markdown' must be a list"),
        (b'{"markdown": "x"}', 400, "'markdown' must be a list"),
        (b'{"markdown": [1]}', 400, "strings"),
        (b'{"markdown": [' + b'"x",' * MARKDOWN_MAX_ITEMS + b'"x"]}', 400, "at most"),
        (b'{"markdown": [[[[["x"]]]]]}', 400, "deep"),
        (b'{"markdown": ["' + b"x" * MARKDOWN_BODY_LIMIT + b'"]}', 413, "larger than"),
    ],
)
async def test_a_bad_request_is_a_4xx_naming_the_problem(
    client: httpx.AsyncClient, body: bytes, status: int, message: str
) -> None:
    response = await client.post(
        "/demo/markdown", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status
    assert message in response.json()["error"]


@pytest.mark.parametrize(("enabled", "status"), [(True, 200), (False, 404)])
async def test_the_service_serves_the_route_only_while_the_demo_is_on(
    enabled: bool, status: int
) -> None:
    from app_harness import make_settings, running_app

    async with running_app(make_settings(demo_enabled=enabled)) as running:
        response = await running.client.post("/demo/markdown", json={"markdown": ["*x*"]})
    assert response.status_code == status
    if enabled:
        assert response.json() == {"html": ["<p><em>x</em></p>\n"]}
