"""The repository stands alone: no link in its README or docs leaves it.

Every Markdown file of the repository is read the way GitHub shows it (CommonMark with the
GitHub autolinks: markdown-it-py's "gfm-like" preset), and every link in it (written links,
reference links, autolinks, bare URLs GitHub links, images, and ``href``/``src`` of raw HTML)
must be one of:

- a relative path that stays inside the repository and names a file or directory there
  (an ``#anchor`` alone, in the same file, too);
- a link to the service a reader runs locally (``http://127.0.0.1:8000/``, ``localhost``);
- a link to a public standard the project implements, or a persistent identifier of a
  published source it cites (:data:`PUBLIC_REFERENCES`).

So a reader who cloned the repository alone finds every document it points to; project
documents outside it (specifications, reference data) are never linked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

ROOT = Path(__file__).resolve().parent.parent
SKIPPED_DIRS = frozenset(
    {".git", ".venv", "node_modules", "build", "var", ".pytest_cache", ".mypy_cache"}
)

PUBLIC_REFERENCES = frozenset(
    {
        "cds-hooks.hl7.org",  # CDS Hooks (HL7)
        "sandbox.cds-hooks.org",  # the CDS Hooks community's public test EHR
        "hl7.org",
        "www.hl7.org",  # FHIR, US Core, SMART App Launch
        "build.fhir.org",
        "terminology.hl7.org",
        "loinc.org",
        "www.rfc-editor.org",
        "datatracker.ietf.org",  # RFCs (JWT, OAuth 2.0)
        "doi.org",  # cited publications, by DOI
    }
)
"""Hosts of public standards and of persistent identifiers of published sources."""
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})

_HTML_URL = re.compile(r"""\b(?:href|src)\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)


def markdown_files() -> list[Path]:
    return sorted(
        path
        for path in ROOT.rglob("*.md")
        if not SKIPPED_DIRS.intersection(path.relative_to(ROOT).parts)
        and not any(part.endswith(".egg-info") for part in path.relative_to(ROOT).parts)
    )


def _parser() -> MarkdownIt:
    return MarkdownIt("gfm-like", {"html": True, "linkify": True})


def _gfm_literal(link: Token, text: str) -> bool:
    """A bare URL GitHub links too (linkify-it also takes ``rules.md`` for a domain)."""
    if link.markup != "linkify":
        return True
    return text.lower().startswith(("http://", "https://", "mailto:", "www.")) or "@" in text


def links(text: str) -> Iterator[tuple[int, str]]:
    """(line, target) of every link in ``text``, as GitHub renders it."""
    for block in _parser().parse(text):
        line = block.map[0] + 1 if block.map else 0
        if block.type == "html_block":
            yield from ((line, url) for url in _HTML_URL.findall(block.content))
        children = block.children or []
        for index, token in enumerate(children):
            if token.type == "link_open":
                following = children[index + 1].content if index + 1 < len(children) else ""
                if _gfm_literal(token, following):
                    yield line, str(token.attrGet("href"))
            elif token.type == "image":
                yield line, str(token.attrGet("src"))
            elif token.type == "html_inline":
                yield from ((line, url) for url in _HTML_URL.findall(token.content))


def problem(source: Path, target: str) -> str | None:
    """Why ``target`` (a link in ``source``) leaves the repository, or ``None``."""
    parts = urlsplit(target)
    if parts.scheme in ("http", "https"):
        host = (parts.hostname or "").lower()
        if host in PUBLIC_REFERENCES or f"[{host}]" in LOCAL_HOSTS or host in LOCAL_HOSTS:
            return None
        return f"external link to {host} (not a public standard or a cited source)"
    if parts.scheme or parts.netloc:
        return f"{parts.scheme or 'network-path'} link"
    if not parts.path:
        return None  # "#anchor" in the same file
    resolved = (source.parent / unquote(parts.path)).resolve()
    if not resolved.is_relative_to(ROOT):
        return "points outside the repository"
    if not resolved.exists():
        return f"names {resolved.relative_to(ROOT)}, which does not exist"
    return None


def test_the_markdown_files_are_found() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in markdown_files()}
    assert "README.md" in names
    assert any(name.startswith("docs/") for name in names)


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_link_leaves_the_repository(path: Path) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {target}: {why}"
        for line, target in links(path.read_text(encoding="utf-8"))
        if (why := problem(path, target))
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    ("markdown", "bad"),
    [
        ("[rules](../shared/spec/clinical-rules.md)", True),
        ("[rules][r]\n\n[r]: ../../outside.md", True),
        ("see <https://github.com/someone/else>", True),
        ("see https://example.com/page", True),
        ("see www.example.com", True),
        ('<a href="../x.md">x</a>', True),
        ("[f](ftp://example.org/a)", True),
        ("[gone](docs/no-such-file.md)", True),
        ("[docs](docs/)", False),
        ("[top](#top)", False),
        ("[spec](https://cds-hooks.hl7.org/2.0/)", False),
        ("[source](https://doi.org/10.1002/bjs.1800600817)", False),
        ("open http://127.0.0.1:8000/", False),
        ("named clinical-rules.md in the text", False),
        ("`[not](../a/link)` in code", False),
    ],
)
def test_the_check_itself(markdown: str, bad: bool) -> None:
    source = ROOT / "README.md"
    problems = [target for _, target in links(markdown) if problem(source, target)]
    assert bool(problems) is bad, (markdown, problems)
