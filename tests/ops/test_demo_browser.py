"""The demo page in a real headless Chromium (Debian's ``chromium``), driven by Playwright.

The page must show a fixture patient's cards the way an EHR does: summary, indicator,
the detail's Markdown rendered (safely), suggestions as buttons, links. Two servers are
used: the real service (``create_app``) for the fixture patients, and a stand-in that
answers a hand-written card, so rendering and feedback are checked whatever the engine
says. Skips only when Chromium is not installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from service.demo import DEFAULT_FIXTURES_DIR, demo_routes
from service.settings import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVICE_ID = "liver-metastasis-resectability"
SCREENSHOTS = os.environ.get("LIVER_CDS_TEST_SCREENSHOTS", "")
"""Directory for screenshots of the page (unset: none are written)."""

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason=f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)",
    ),
]

if os.access(CHROMIUM, os.X_OK):
    from playwright.sync_api import Browser, Page, sync_playwright


@contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free loopback port in a thread; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="auto"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def open_chart(page: Page, base: str, slug: str) -> None:
    page.goto(base + "/")
    page.wait_for_selector("#patient:not([disabled])")
    page.select_option("#patient", slug)
    page.wait_for_selector("body[data-state=done]")


def screenshot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=True)


# --- the real service with the shipped fixture patients ---------------------------------


def fixture_with_cards() -> dict[str, Any]:
    """A manifest patient whose expected verdict is not null (so it must get cards)."""
    manifest = json.loads((DEFAULT_FIXTURES_DIR / "manifest.json").read_text())
    with_verdict = [p for p in manifest["patients"] if p["expected"]["verdict"] is not None]
    resectable = [p for p in with_verdict if p["expected"]["verdict"] == "resectable"]
    patient: dict[str, Any] = (resectable or with_verdict)[0]
    return patient


def test_demo_page_shows_the_cards_of_a_fixture_patient(page: Page, tmp_path: Path) -> None:
    from service.app import create_app

    settings = Settings(database_url=f"sqlite:///{tmp_path}/demo.db", auth="off")
    patient = fixture_with_cards()
    slug = Path(patient["file"]).stem
    with serve(create_app(settings)) as base:
        page.goto(base + "/")
        page.wait_for_selector(".service h3")
        assert page.get_attribute("#link-discovery", "href") == "cds-services"
        assert page.get_attribute("#link-openapi", "href") == "openapi.json"
        assert SERVICE_ID in page.inner_text("#services")

        open_chart(page, base, slug)
        request = json.loads(page.text_content("#request-json") or "")
        api = httpx.post(f"{base}/cds-services/{SERVICE_ID}", json=request, timeout=10)
        expected_cards = api.json()["cards"]
        assert expected_cards, (
            f"the service answered no cards for {slug} "
            f"(expected verdict {patient['expected']['verdict']})"
        )
        page.wait_for_selector("article.card", timeout=5000)
        screenshot(page, f"demo-{slug}.png")

        cards = page.locator("article.card")
        assert cards.count() == len(expected_cards) >= 1
        first = cards.nth(0)
        assert first.locator(".card-summary").inner_text() == expected_cards[0]["summary"]
        indicator = expected_cards[0]["indicator"]
        assert first.get_attribute("data-indicator") == indicator
        assert f"indicator-{indicator}" in (first.get_attribute("class") or "")
        assert first.locator(".indicator").inner_text().lower() == indicator
        buttons = first.locator("button.suggestion")
        assert buttons.count() == len(expected_cards[0]["suggestions"]) >= 1
        assert first.locator("button.suggestion.recommended").count() >= 1
        assert first.locator(".card-detail").inner_text().strip()


def test_demo_page_fires_order_sign_for_a_fixture_and_shows_the_critical_card(
    page: Page, tmp_path: Path
) -> None:
    from service.app import create_app

    settings = Settings(database_url=f"sqlite:///{tmp_path}/demo.db", auth="off")
    slug = "o-critical-jaundice-resection"
    with serve(create_app(settings)) as base:
        page.goto(base + "/")
        page.wait_for_selector("#order:not([disabled])")
        page.select_option("#order", slug)
        page.wait_for_selector("body[data-state=done]")
        page.wait_for_selector("article.card", timeout=5000)
        screenshot(page, f"demo-{slug}.png")
        card = page.locator("article.card").nth(0)
        assert card.get_attribute("data-indicator") == "critical"
        assert "jaundice" in card.locator(".card-summary").inner_text().lower()
        assert json.loads(page.text_content("#request-json") or "")["hook"] == "order-sign"


# --- a stand-in service answering a hand-written card -------------------------------------

DETAIL = """\
## Verdict: resectable (rule 21)

Metastases confined to the **left lobe** (segments II and III), *all superficial*.

| Fact | Value | Date |
|---|---:|---|
| ECOG | 0 | 2026-05-20 |
| Bilirubin | 0.8 mg/dL | 2026-05-20 |

- Child-Pugh A (5 points)
  - bilirubin 1, albumin 1, INR 1
- ALBI grade 1

Sources: [AHPBA consensus](https://example.org/ahpba) and <https://example.org/bclc>.

<img src=x onerror="window.__pwned = true"> <script>window.__pwned = true</script>
[click me](javascript:window.__pwned=true)
"""

CARD: dict[str, Any] = {
    "uuid": "c0000000-0000-4000-8000-000000000001",
    "summary": "Liver metastases confined to left lobe: left hepatectomy may be an option",
    "indicator": "warning",
    "source": {
        "label": "Liver CDS rules 2026.1",
        "url": "https://example.org/liver-cds",
        "topic": {
            "system": "https://liver-cds.org/fhir/CodeSystem/card-topic",
            "code": "resectable",
            "display": "Resectable",
        },
    },
    "detail": DETAIL,
    "suggestions": [
        {
            "uuid": "s-1",
            "label": "Left hepatectomy",
            "isRecommended": True,
            "actions": [
                {
                    "type": "create",
                    "description": "Propose left hepatectomy",
                    "resource": {
                        "resourceType": "ServiceRequest",
                        "status": "draft",
                        "intent": "proposal",
                    },
                }
            ],
        },
        {
            "uuid": "s-2",
            "label": "MDT review",
            "isRecommended": True,
            "actions": [
                {
                    "type": "create",
                    "description": "Propose MDT review",
                    "resource": {
                        "resourceType": "ServiceRequest",
                        "status": "draft",
                        "intent": "proposal",
                    },
                }
            ],
        },
        {
            "uuid": "s-3",
            "label": "Ablation",
            "isRecommended": False,
            "actions": [
                {
                    "type": "create",
                    "description": "Propose ablation",
                    "resource": {
                        "resourceType": "ServiceRequest",
                        "status": "draft",
                        "intent": "proposal",
                    },
                }
            ],
        },
    ],
    "selectionBehavior": "any",
    "overrideReasons": [
        {
            "system": "https://liver-cds.org/fhir/CodeSystem/override-reason",
            "code": "patient-declined",
            "display": "Patient declined",
        },
    ],
    "links": [{"label": "BCLC 2022", "url": "https://example.org/bclc", "type": "absolute"}],
}


def stand_in(
    fixtures: Path, received: list[Any], cards: list[dict[str, Any]] | None = None
) -> Starlette:
    async def discovery(request: Request) -> JSONResponse:
        service = {
            "id": SERVICE_ID,
            "hook": "patient-view",
            "title": "Stand-in",
            "description": "test",
            "prefetch": {"patient": "Patient/{{context.patientId}}"},
        }
        return JSONResponse({"services": [service]})

    async def hook(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({"cards": [CARD] if cards is None else cards})

    async def feedback(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({})

    return Starlette(
        routes=[
            Route("/cds-services", discovery),
            Route(f"/cds-services/{SERVICE_ID}", hook, methods=["POST"]),
            Route(f"/cds-services/{SERVICE_ID}/feedback", feedback, methods=["POST"]),
            *demo_routes(Settings(fixtures_dir=str(fixtures))),
        ]
    )


@pytest.fixture
def stand_in_fixtures(tmp_path: Path) -> Path:
    (tmp_path / "p.json").write_text(
        json.dumps(
            {
                "hook": "patient-view",
                "hookInstance": "x",
                "context": {"userId": "Practitioner/1", "patientId": "p"},
                "prefetch": {"patient": {"resourceType": "Patient", "id": "p"}},
            }
        )
    )
    (tmp_path / "manifest.json").write_text(
        json.dumps(
            {
                "patients": [
                    {
                        "file": "p.json",
                        "patient_id": "p",
                        "title": "Stand-in patient",
                        "expected": {"verdict": "resectable"},
                    }
                ]
            }
        )
    )
    return tmp_path


def test_card_is_rendered_as_an_ehr_shows_it(page: Page, stand_in_fixtures: Path) -> None:
    received: list[Any] = []
    with serve(stand_in(stand_in_fixtures, received)) as base:
        open_chart(page, base, "p")
        screenshot(page, "demo-stand-in.png")
        assert received[0]["hook"] == "patient-view"
        assert received[0]["hookInstance"] not in ("", "x")  # fresh per call

        card = page.locator("article.card")
        assert card.count() == 1
        assert card.locator(".card-summary").inner_text() == CARD["summary"]
        assert card.locator(".indicator").inner_text().lower() == "warning"
        assert "indicator-warning" in (card.get_attribute("class") or "")
        source = card.locator(".card-source a")
        assert source.inner_text() == "Liver CDS rules 2026.1"
        assert source.get_attribute("href") == "https://example.org/liver-cds"

        detail = card.locator(".card-detail")
        assert detail.locator("h5").inner_text() == "Verdict: resectable (rule 21)"
        assert detail.locator("strong").inner_text() == "left lobe"
        assert detail.locator("em").inner_text() == "all superficial"
        assert detail.locator("table tbody tr").count() == 2
        assert detail.locator("table th").all_inner_texts() == ["Fact", "Value", "Date"]
        assert detail.locator("ul > li > ul > li").inner_text() == "bilirubin 1, albumin 1, INR 1"
        hrefs = detail.locator("a").evaluate_all("els => els.map(a => a.href)")
        assert hrefs == ["https://example.org/ahpba", "https://example.org/bclc"]
        # Raw HTML is shown as text, never run or rendered; javascript: is no link.
        assert detail.locator("img, script").count() == 0
        assert "<img src=x" in detail.inner_text()
        assert "click me" in detail.inner_text()
        assert page.evaluate("window.__pwned === undefined")

        buttons = card.locator("button.suggestion")
        labels = card.locator("button.suggestion .suggestion-label").all_text_contents()
        assert labels == ["Left hepatectomy", "MDT review", "Ablation"]
        assert card.locator("button.suggestion.recommended").count() == 2
        assert card.locator("button.suggestion.recommended .badge").count() == 2
        links = card.locator(".card-links a")
        assert links.inner_text() == "BCLC 2022"
        assert links.get_attribute("href") == "https://example.org/bclc"

        # Choose two suggestions and accept: the EHR-style feedback reaches the service.
        buttons.nth(0).click()
        buttons.nth(2).click()
        assert buttons.nth(0).get_attribute("aria-pressed") == "true"
        card.get_by_role("button", name="Accept selected").click()
        page.wait_for_selector(".feedback-result:has-text('Feedback sent')")
        (item,) = received[1]["feedback"]
        assert item["card"] == CARD["uuid"]
        assert item["outcome"] == "accepted"
        assert item["acceptedSuggestions"] == [{"id": "s-1"}, {"id": "s-3"}]
        assert item["outcomeTimestamp"]


MARKDOWN_CASES = [
    "plain & <b>bold</b>",
    "**a** and *b* and `c<d>` and ~~e~~",
    "snake_case_word and 2 * 3 * 4",
    "\\*not emphasis\\*",
    "[x](javascript:alert(1))",
    "[x](data:text/html,hi)",
    "[x](JaVaScRiPt&#58;alert(1))",
    "[x](/relative)",
    '[x](https://e.org/a "T")',
    "![logo](https://e.org/i.png)",
    "![x](javascript:window.__pwned=true)",
    '<img src=x onerror="window.__pwned = true">',
    "<script>window.__pwned = true</script>",
    '<a href="javascript:window.__pwned=true">a</a>',
    "<svg onload=window.__pwned=true>",
    "<javascript:window.__pwned=true>",
    "1. one\n2. two",
    "# Title",
    "line one  \nline two",
    "> quoted",
    "```\n<script>x</script>\n```",
    "---",
    "| a | b |\n|:-|--:|\n| 1 | 2 |",
    "MELD &gt; 11 &amp; &#60;script&#x3E; &bogus;",
    "`&gt;` in code",
]
"""The Markdown and hostile link and HTML vectors each shown as one card's detail."""


def test_markdown_is_shown_as_the_service_renders_it_and_safely(
    page: Page, stand_in_fixtures: Path
) -> None:
    from service.demo_markdown import render

    cards = [{**CARD, "uuid": f"c-{n}", "detail": md} for n, md in enumerate(MARKDOWN_CASES)]
    with serve(stand_in(stand_in_fixtures, [], cards)) as base:
        open_chart(page, base, "p")
        details = page.locator("article.card .card-detail")
        shown = details.evaluate_all("els => els.map(e => e.innerHTML)")
        hrefs = details.locator("a").evaluate_all("els => els.map(a => a.href)")
        assert page.evaluate("window.__pwned === undefined")
        assert page.locator(".card-detail :is(img, script, svg, iframe, [style])").count() == 0
    assert len(shown) == len(MARKDOWN_CASES)
    for markdown, html in zip(MARKDOWN_CASES, shown, strict=True):
        # What the page shows is what the service rendered, unchanged by the browser.
        assert html == render(markdown), markdown
        if markdown.startswith("[x](") and "https:" not in markdown:
            assert html == '<p><span class="md-unsafe-link">x</span></p>\n', markdown
    assert hrefs == ["https://e.org/a", "https://e.org/i.png"]
