"""The demo page at ``GET /``: try the service in a browser, as an EHR would show it.

The page (``service/static/demo/``) is plain HTML, CSS and JavaScript served by the
service itself: no build step, no CDN. It reads discovery, lists the fixture patients
through the two small JSON routes below, posts the chosen patient's hook request to
the real ``/cds-services/{id}`` endpoint and renders the cards it gets back. The page
therefore exercises exactly the path an EHR does; these routes only hand it test data.

The fixtures' expected results hold on the manifest's ``evaluated_at`` date while the
service evaluates at "now"; the fixture route moves every date of the record forward by
the days in between, so the page shows the verdict the manifest promises.

Card Markdown is rendered by the service, not by the page: the page posts the cards'
``detail`` texts to ``POST /demo/markdown`` and gets them back as HTML made by
markdown-it-py with raw HTML off, links limited to http, https and mailto, and cleaned by
nh3 (:mod:`service.demo_markdown`). The page's Content-Security-Policy forbids inline and
foreign scripts on top of that.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from service.demo_markdown import render as render_markdown
from service.protocol.errors import ProtocolError
from service.protocol.jsonbody import check_declared_length, parse_json, read_body
from service.settings import Settings

STATIC_DIR: Final = Path(__file__).resolve().parent / "static" / "demo"
_SLUG: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,100}")
"""An order-sign fixture's file name without ``.json`` (nothing that walks a path)."""

DEFAULT_FIXTURES_DIR: Final = Path(__file__).resolve().parent.parent / "fixtures"
"""The repository's ``fixtures/`` (an editable install or a source checkout).

A wheel does not contain it: the container image copies it and sets
``LIVER_CDS_FIXTURES_DIR``.
"""

PAGE_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
"""Headers of the page itself: only our own scripts and styles, only our own origin."""

MARKDOWN_BODY_LIMIT: Final = 128 * 1024
"""Largest ``POST /demo/markdown`` body (a response's card details, JSON-encoded; the
service's own come to a few KiB). It bounds the CPU one call can cost to about a second."""
MARKDOWN_MAX_ITEMS: Final = 100

_SLUG_RE: Final = re.compile(r"[^a-z0-9]+")
_FHIR_DATE_RE: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?"
)
_PREFETCH_BY_TYPE: Final = {
    "Patient": "patient",
    "Condition": "conditions",
    "Observation": "observations",
}


@dataclass(frozen=True)
class FixturePatient:
    """One entry of ``fixtures/manifest.json`` as the demo page lists it."""

    slug: str
    path: Path
    title: str
    patient_id: str
    verdict: str | None
    rule: str | None
    why: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "title": self.title,
            "patient_id": self.patient_id,
            "verdict": self.verdict,
            "rule": self.rule,
            "why": self.why,
        }


@dataclass(frozen=True)
class Manifest:
    """The fixture patients and the date their expected results were worked out for."""

    patients: list[FixturePatient]
    evaluated_at: date | None


class FixtureError(Exception):
    """The manifest or a fixture file can not be used."""


def fixtures_dir(settings: Settings) -> Path:
    """``LIVER_CDS_FIXTURES_DIR``, or the repository's ``fixtures/`` when it is empty."""
    return Path(settings.fixtures_dir) if settings.fixtures_dir else DEFAULT_FIXTURES_DIR


def _slugify(text: str) -> str:
    return _SLUG_RE.sub("-", text.lower()).strip("-") or "patient"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str | int | float):
        return str(value)
    return None


def load_manifest(directory: Path) -> Manifest:
    """The fixture patients of ``directory/manifest.json``, in manifest order.

    Entries whose file is missing or lies outside ``directory`` are left out: the page
    lists only what it can open. The expected verdict is read from ``verdict`` or
    ``expected.verdict``, whichever the manifest uses.
    """
    manifest_path = directory / "manifest.json"
    try:
        manifest = orjson.loads(manifest_path.read_bytes())
    except FileNotFoundError:
        raise FixtureError("no fixture manifest") from None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise FixtureError(f"fixture manifest unreadable: {type(exc).__name__}") from None
    entries = manifest.get("patients") if isinstance(manifest, dict) else None
    if not isinstance(entries, list):
        raise FixtureError("fixture manifest has no 'patients' list")
    root = directory.resolve()
    patients: list[FixturePatient] = []
    seen: set[str] = set()
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            continue
        path = (directory / entry["file"]).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            continue
        slug = _slugify(Path(entry["file"]).stem)
        base, n = slug, 2
        while slug in seen:
            slug, n = f"{base}-{n}", n + 1
        seen.add(slug)
        expected = entry.get("expected")
        verdict = _text(entry.get("verdict"))
        rule = _text(entry.get("rule"))
        if isinstance(expected, dict):
            verdict = verdict or _text(expected.get("verdict"))
            rule = rule or _text(expected.get("rule"))
        patients.append(
            FixturePatient(
                slug=slug,
                path=path,
                title=_text(entry.get("title")) or slug,
                patient_id=_text(entry.get("patient_id")) or "",
                verdict=verdict,
                rule=rule,
                why=_text(entry.get("why")),
            )
        )
    return Manifest(patients=patients, evaluated_at=_date(manifest.get("evaluated_at")))


def _date(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    match = _FHIR_DATE_RE.match(value)
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def shift_dates(value: Any, days: int) -> Any:
    """``value`` with every FHIR date and dateTime (day precision or finer) moved by ``days``.

    The fixtures' expected results hold at the manifest's ``evaluated_at``; the service
    evaluates at "now" and would find every lab stale a few months later. Moving the
    whole record by the same number of days keeps every interval (lab age, patient age,
    disease-free interval) and therefore the verdict. Times and offsets are kept as
    written; year or year-month precision values are left alone.
    """
    if days == 0:
        return value
    if isinstance(value, dict):
        return {k: shift_dates(v, days) for k, v in value.items()}
    if isinstance(value, list):
        return [shift_dates(v, days) for v in value]
    if isinstance(value, str):
        match = _FHIR_DATE_RE.fullmatch(value)
        if match is None:
            return value
        try:
            day = date(int(match[1]), int(match[2]), int(match[3])) + timedelta(days=days)
        except (ValueError, OverflowError):
            return value
        return day.isoformat() + (match[4] or "")
    return value


def hook_request_for(patient: FixturePatient, shift_days: int = 0) -> dict[str, Any]:
    """The hook request the page posts for ``patient``, with a fresh ``hookInstance`` and
    its dates moved by ``shift_days`` (see :func:`shift_dates`).

    A fixture file is normally a complete hook request. A bare Bundle is wrapped into
    one (its Patient, Conditions and Observations become the three prefetch keys), so
    any fixture can be shown.
    """
    try:
        loaded = orjson.loads(patient.path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise FixtureError(f"fixture unreadable: {type(exc).__name__}") from None
    if not isinstance(loaded, dict):
        raise FixtureError("fixture is not a JSON object")
    data: dict[str, Any] = loaded
    if data.get("resourceType") == "Bundle":
        data = _wrap_bundle(data, patient.patient_id)
    elif "hook" not in data:
        raise FixtureError("fixture is neither a hook request nor a Bundle")
    data = shift_dates(data, shift_days)
    data["hookInstance"] = str(uuid.uuid4())
    return data


def _wrap_bundle(bundle: dict[str, Any], patient_id: str) -> dict[str, Any]:
    prefetch: dict[str, Any] = {
        "patient": None,
        "conditions": {"resourceType": "Bundle", "type": "searchset", "entry": []},
        "observations": {"resourceType": "Bundle", "type": "searchset", "entry": []},
    }
    entries = bundle.get("entry")
    for entry in entries if isinstance(entries, list) else []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        key = _PREFETCH_BY_TYPE.get(str(resource.get("resourceType")))
        if key == "patient":
            prefetch["patient"] = resource
            patient_id = patient_id or str(resource.get("id") or "")
        elif key is not None:
            prefetch[key]["entry"].append({"resource": resource})
    return {
        "hook": "patient-view",
        "hookInstance": "",
        "context": {"userId": "Practitioner/demo", "patientId": patient_id or "unknown"},
        "prefetch": prefetch,
    }


def _json(body: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


def utc_now() -> datetime:
    return datetime.now(UTC)


def demo_routes(
    settings: Settings, *, clock: Callable[[], datetime] | None = None
) -> list[BaseRoute]:
    """``GET /`` (the page), ``GET /demo/fixtures``, ``GET /demo/fixtures/{slug}``,
    ``POST /demo/markdown`` and the page's static files under ``/demo/static/``.

    ``app.py`` mounts these when ``LIVER_CDS_DEMO_ENABLED`` is true (the default).
    ``clock`` (default: UTC now) decides how far fixture dates are moved forward.
    """
    directory = fixtures_dir(settings)
    now = clock or utc_now

    def shift_for(manifest: Manifest) -> int:
        if manifest.evaluated_at is None:
            return 0
        return (now().date() - manifest.evaluated_at).days

    page = (STATIC_DIR / "index.html").read_bytes()

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    async def list_fixtures(request: Request) -> Response:
        try:
            manifest = load_manifest(directory)
        except FixtureError as exc:
            return _json({"patients": [], "note": str(exc)})
        return _json(
            {
                "patients": [p.summary() for p in manifest.patients],
                "evaluated_at": manifest.evaluated_at and manifest.evaluated_at.isoformat(),
                "shift_days": shift_for(manifest),
            }
        )

    async def get_fixture(request: Request) -> Response:
        slug = request.path_params["slug"]
        try:
            manifest = load_manifest(directory)
            patient = next((p for p in manifest.patients if p.slug == slug), None)
            if patient is None:
                return _json({"error": f"unknown fixture patient {slug!r}"}, 404)
            return _json(hook_request_for(patient, shift_for(manifest)))
        except FixtureError as exc:
            return _json({"error": str(exc)}, 404)

    async def list_orders(request: Request) -> Response:
        """The order-sign fixtures (``orders/manifest.json``): slug and title of each."""
        path = directory / "orders" / "manifest.json"
        try:
            entries = orjson.loads(path.read_bytes()).get("orders", [])
        except (OSError, orjson.JSONDecodeError, AttributeError):
            return _json({"orders": [], "note": "no order-sign fixtures (orders/manifest.json)"})
        orders = [
            {"slug": Path(str(e.get("file", ""))).stem, "title": _text(e.get("title"))}
            for e in entries
            if isinstance(e, dict) and isinstance(e.get("file"), str)
        ]
        return _json({"orders": orders})

    async def get_order(request: Request) -> Response:
        """One order-sign request, its dates moved like the patients' (same manifest day)."""
        slug = request.path_params["slug"]
        if not _SLUG.fullmatch(slug):
            return _json({"error": "unknown order-sign fixture"}, 404)
        try:
            manifest = load_manifest(directory)
            body = orjson.loads((directory / "orders" / f"{slug}.json").read_bytes())
        except (OSError, orjson.JSONDecodeError, FixtureError):
            return _json({"error": f"unknown order-sign fixture {slug!r}"}, 404)
        return _json(shift_dates(body, shift_for(manifest)))

    async def markdown(request: Request) -> Response:
        """``{"markdown": [text, ...]}`` -> ``{"html": [fragment, ...]}``, in order."""
        try:
            check_declared_length(request.headers.get("content-length"), MARKDOWN_BODY_LIMIT)
            body = await read_body(request.stream(), MARKDOWN_BODY_LIMIT)
            data = parse_json(body, max_depth=4)
        except ProtocolError as exc:
            return _json({"error": exc.message}, exc.status)
        texts = data.get("markdown") if isinstance(data, dict) else None
        if (
            not isinstance(texts, list)
            or len(texts) > MARKDOWN_MAX_ITEMS
            or not all(isinstance(text, str) for text in texts)
        ):
            message = f"'markdown' must be a list of at most {MARKDOWN_MAX_ITEMS} strings"
            return _json({"error": message}, 400)
        html = await run_in_threadpool(lambda: [render_markdown(text) for text in texts])
        return _json({"html": html})

    return [
        Route("/", index, methods=["GET"], name="demo"),
        Route("/demo/markdown", markdown, methods=["POST"], name="demo-markdown"),
        Route("/demo/orders", list_orders, methods=["GET"], name="demo-orders"),
        Route("/demo/orders/{slug}", get_order, methods=["GET"], name="demo-order"),
        Route("/demo/fixtures", list_fixtures, methods=["GET"], name="demo-fixtures"),
        Route("/demo/fixtures/{slug}", get_fixture, methods=["GET"], name="demo-fixture"),
        Mount("/demo/static", app=StaticFiles(directory=STATIC_DIR), name="demo-static"),
    ]
