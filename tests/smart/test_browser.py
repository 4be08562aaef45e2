"""The SMART launch in a real headless Chromium (Debian's ``chromium``, driven by
Playwright): launch from the EHR, authorize on the EHR's consent page, see the full view
with the segment map and the trend plots. The screenshot of the map is checked pixel by
pixel at each segment's label point: the segments with disease are red, the others not.

Skips only when Chromium is not installed (``.ci/run`` installs it) or the Medplum FHIR
server cannot be installed (no npm registry).
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pytest

from service.smart.liver_map import SHAPES, VIEWBOX

from .servers import PATIENT, Stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
SCREENSHOTS = os.environ.get("LIVER_CDS_TEST_SCREENSHOTS", "")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason=f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)",
    ),
]

if os.access(CHROMIUM, os.X_OK):
    from playwright.sync_api import ConsoleMessage, Page, sync_playwright

LESION_RED = (198, 40, 40)
"""``--lesion`` of service/static/smart/app.css."""
LIVER_BEIGE = (241, 227, 211)
"""``--liver``: a segment without recorded disease."""


def pixels(page: Page, png: bytes, points: list[tuple[float, float]]) -> list[tuple[int, ...]]:
    """RGB of ``png`` at ``points``, decoded by the browser on a blank page."""
    blank = page.context.new_page()
    try:
        return [
            tuple(p)
            for p in blank.evaluate(
                """async ([data, points]) => {
                    const img = new Image();
                    img.src = 'data:image/png;base64,' + data;
                    await img.decode();
                    const canvas = document.createElement('canvas');
                    canvas.width = img.width; canvas.height = img.height;
                    const ctx = canvas.getContext('2d');
                    ctx.drawImage(img, 0, 0);
                    const at = ([x, y]) => ctx.getImageData(Math.round(x), Math.round(y), 1, 1);
                    return points.map(point => Array.from(at(point).data.slice(0, 3)));
                }""",
                [base64.b64encode(png).decode(), points],
            )
        ]
    finally:
        blank.close()


def near(colour: tuple[int, ...], expected: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 12 for a, b in zip(colour, expected, strict=True))


def test_launch_authorize_and_see_the_segment_map_and_the_trends(stack: Stack) -> None:
    visited: list[str] = []
    problems: list[str] = []

    def ours(message: ConsoleMessage) -> bool:
        """An error on the service's pages (the test EHR's own pages are not checked)."""
        where = str(message.location.get("url", ""))
        return message.type == "error" and not where.startswith(stack.ehr.base)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.on("request", lambda request: visited.append(request.url))
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("console", lambda m: problems.append(m.text) if ours(m) else None)
            page.goto(stack.launch_url())  # what the EHR opens for the card's smart link
            page.wait_for_selector("#approve")  # the EHR's consent page
            page.click("#approve")
            page.wait_for_url(re.compile(re.escape(stack.base + "/smart/view?v=") + ".+"))
            page.wait_for_selector("body[data-trends=drawn]", state="attached", timeout=10_000)

            assert page.get_attribute("#assessment", "data-verdict") == "resectable"
            assert f"Patient/{PATIENT}" in page.inner_text("header")
            assert page.inner_text("#segments-involved") == "VI, VII"

            # The trend plots: one drawn canvas per lab with values, none for the others.
            for lab in ("bilirubin", "albumin", "inr", "platelets", "creatinine", "cea"):
                plot = page.locator(f"#plot-{lab}")
                assert plot.get_attribute("data-drawn") == "true", lab
                assert plot.locator("canvas").count() >= 1, lab
            bili_rows = page.locator(".trend[data-lab=bilirubin] tr")
            assert bili_rows.count() == 3
            assert page.locator(".trend[data-lab=bilirubin] tr.stale").count() == 1
            assert page.locator(".trend[data-lab=bilirubin] tr.used").count() == 1

            # The map: screenshot it and read the colour at every segment's label point.
            svg = page.locator("svg.liver-map")
            box = svg.bounding_box()
            assert box is not None
            png = svg.screenshot()
            if SCREENSHOTS:
                Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(Path(SCREENSHOTS) / "smart-view.png"), full_page=True)
                Path(SCREENSHOTS, "smart-map.png").write_bytes(png)
            scale = box["width"] / VIEWBOX[0]
            points = [(s.label[0] * scale, s.label[1] * scale) for s in SHAPES]
            colours = dict(zip([s.name for s in SHAPES], pixels(page, png, points), strict=True))
            for segment, colour in colours.items():
                expected = LESION_RED if segment in ("VI", "VII") else LIVER_BEIGE
                assert near(colour, expected), (segment, colour)
        finally:
            browser.close()

    assert problems == [], problems  # no script error, no CSP violation
    (token,) = stack.ehr.tokens
    assert not [url for url in visited if token in url]
    assert any("/smart/callback?code=" in url for url in visited)


def test_the_demo_page_opens_the_full_view_of_a_fixture_patient(tmp_path: Path) -> None:
    """No launch: the demo page links each fixture patient to the same view."""
    from service.app import create_app
    from service.settings import Settings

    from .servers import bound_socket, serve

    settings = Settings(database_url=f"sqlite:///{tmp_path}/demo.db", demo_enabled=True)
    slug = "r21-colon-right-icd10"  # lesions in segments VI and VII
    problems: list[str] = []
    sock, base = bound_socket()
    with serve(create_app(settings), sock), sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(base + "/")
            page.wait_for_selector("#patient:not([disabled])")
            page.select_option("#patient", slug)
            link = page.locator("#link-full-view")
            link.wait_for(state="visible")
            assert link.get_attribute("href") == f"demo/view/{slug}"
            link.click()
            page.wait_for_url(f"{base}/demo/view/{slug}")
            page.wait_for_selector("body[data-trends=drawn]", state="attached", timeout=10_000)
            involved = page.locator("svg.liver-map g[data-involvement=lesion]")
            assert sorted(involved.evaluate_all("gs => gs.map(g => g.dataset.segment)")) == [
                "VI",
                "VII",
            ]
            assert page.locator(".trend-plot[data-drawn=true] canvas").count() >= 5
            assert "demo fixture" in page.inner_text("header")
        finally:
            browser.close()
    assert problems == []
