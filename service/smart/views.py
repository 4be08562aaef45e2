"""The full view's HTTP side: the SMART launch, the callback, the page, the demo's page.

Routes (``app.py`` adds :func:`full_view_routes`):

* ``GET /smart/launch?iss&launch``: EHR launch -> discovery -> redirect to authorize;
* ``GET /smart/callback?code&state``: state checked, code exchanged, -> ``/smart/view``;
* ``GET /smart/view`` and ``/smart/view/service-request.json``: the launched patient;
* ``GET /demo/view/{slug}`` and ``.../service-request.json``: a demo fixture patient,
  no launch (only with the demo on);
* ``/smart/static/``: the page's stylesheet, script and the vendored uPlot.

The SMART routes exist only when ``LIVER_CDS_SMART_CLIENT_ID`` is set. Every page is sent
with a Content-Security-Policy allowing only this origin's scripts and styles (no inline
script or style at all: data for the plots travels in a ``application/json`` block),
``Referrer-Policy: no-referrer`` and ``Cache-Control: no-store``. The access token lives
in the server-side session only; it is never logged, rendered or put in a URL.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import httpx
import jinja2
import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from service.fhir.client import FhirClients
from service.observability import get_logger
from service.settings import Settings
from service.smart import oauth
from service.smart.record import EvaluatedRecord, RecordError, evaluate_record, fetch_record
from service.smart.sessions import COOKIE_NAME, Authorized, PendingLaunch, SessionStore
from service.smart.sessions import session_key as make_session_key
from service.smart.view import build_view
from service.store.base import AuditRecord

log: Final = get_logger("smart")

STATIC_DIR: Final = Path(__file__).resolve().parent.parent / "static" / "smart"
TEMPLATES_DIR: Final = Path(__file__).resolve().parent / "templates"
CALLBACK_PATH: Final = "/smart/callback"
LAUNCH_PATH: Final = "/smart/launch"

PAGE_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
"""Headers of every response of the full view (pages, redirects, JSON)."""

_FHIR_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")
"""FHIR ``id`` (R4): the launch's patient goes into FHIR URLs only when it is one."""


def _day(value: datetime | None) -> str:
    return value.date().isoformat() if value is not None else ""


def url_prefix(settings: Settings) -> str:
    """The path of ``LIVER_CDS_PUBLIC_URL`` (``""`` at the host's root): the pages' links,
    the redirect and the cookie path are under it, as the EHR and the browser see them."""
    return urlsplit(settings.public_base).path.rstrip("/")


def template_environment(prefix: str = "") -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["day"] = _day
    env.globals["prefix"] = prefix
    return env


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _clock(request: Request) -> datetime:
    """The service's evaluation clock (the app's runtime clock when there is one)."""
    runtime = getattr(request.app.state, "runtime", None)
    clock: Callable[[], datetime] = getattr(runtime, "clock", _utc_now)
    return clock()


def _fhir_clients(request: Request) -> FhirClients:
    resources = getattr(request.state, "resources", None)
    clients = getattr(resources, "fhir_clients", None)
    if not isinstance(clients, FhirClients):
        raise RecordError("the service has not started", 503)
    return clients


FULL_VIEW_AUDIT_SERVICE: Final = "smart-full-view"
"""The ``service_id`` of the audit rows the full view writes (one per record read)."""


def _audit_view(
    request: Request,
    authorized: Authorized,
    record: EvaluatedRecord,
    at: datetime,
    elapsed_s: float,
) -> None:
    """One audit row per record read through an EHR launch, as for a hook call.

    The full view reads a patient's record from the EHR with the user's token and shows the
    whole assessment: who looked at which patient's assessment, when and with what result
    belongs in the same trail as the hook calls. ``hook_instance`` names the launch's opaque
    view id (no PHI). Never fails the page: a record the audit cannot queue is logged.
    """
    resources = getattr(request.state, "resources", None)
    store = getattr(resources, "store", None)
    if store is None:
        return
    a = record.assessment
    try:
        store.audit(
            AuditRecord(
                hook_instance=f"full-view:{authorized.view_id}",
                service_id=FULL_VIEW_AUDIT_SERVICE,
                at=at,
                patient_id=authorized.patient_id,
                status=200,
                latency_ms=round(elapsed_s * 1000.0, 3),
                verdict=a.verdict,
                rule=a.rule,
                offered=tuple(a.offered),
                recommended=tuple(a.recommended),
                ruleset_version=getattr(resources, "ruleset_version", None),
            )
        )
    except Exception as exc:  # the page is made; never fail it for the audit
        log.error("full view audit record not queued", extra={"error_type": type(exc).__name__})


class FullViewPages:
    """Renders the page and the error page with the security headers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.prefix = url_prefix(settings)
        self.env = template_environment(self.prefix)

    def error(self, status: int, message: str) -> Response:
        html = self.env.get_template("error.html").render(status=status, message=message)
        return Response(html, status, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    def assessment(self, record: EvaluatedRecord, *, json_url: str, origin: str) -> Response:
        view = build_view(record, self.settings)
        html = self.env.get_template("assessment.html").render(
            view=view,
            json_url=json_url,
            origin=origin,
        )
        return Response(html, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    def service_request(self, record: EvaluatedRecord) -> Response:
        view = build_view(record, self.settings)
        headers = dict(PAGE_HEADERS)
        headers["Content-Disposition"] = 'attachment; filename="liver-mdt-referral.json"'
        return Response(
            orjson.dumps(view.service_request, option=orjson.OPT_INDENT_2),
            media_type="application/fhir+json",
            headers=headers,
        )


# --- the SMART launch ------------------------------------------------------------------------


class SmartApp:
    """The launch, the callback and the launched patient's page."""

    def __init__(self, settings: Settings, pages: FullViewPages) -> None:
        self.settings = settings
        self.pages = pages
        self.sessions = SessionStore(
            make_session_key(settings.smart_session_key), settings.smart_session_ttl_s
        )
        self.client = oauth.ClientConfig(
            client_id=settings.smart_client_id,
            client_secret=settings.smart_client_secret,
            redirect_uri=settings.public_base + CALLBACK_PATH,
            scope=settings.smart_scopes,
        )
        self.secure_cookie = settings.public_base.startswith("https://")

    def _http(self) -> httpx.AsyncClient:
        timeout = self.settings.fhir_timeout_s
        return httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": "liver-cds"},
        )

    def _set_cookie(self, response: Response, value: str) -> None:
        response.set_cookie(
            COOKIE_NAME,
            value,
            max_age=int(self.settings.smart_session_ttl_s),
            path=self.pages.prefix + "/smart",
            secure=self.secure_cookie,
            httponly=True,
            samesite="lax",
        )

    async def launch(self, request: Request) -> Response:
        try:
            iss = oauth.allowed_iss(
                request.query_params.get("iss"), self.settings.smart_allowed_iss
            )
            launch = request.query_params.get("launch")
            if not launch or len(launch) > 2048:
                raise oauth.LaunchError("the launch has no launch parameter (EHR launch only)")
            async with self._http() as http:
                config = await oauth.discover(http, iss)
            auth = oauth.authorization_request(config, self.client, iss=iss, launch=launch)
        except oauth.LaunchError as exc:
            log.info("smart launch refused", extra={"reason": exc.message})
            return self.pages.error(exc.status, exc.message)
        old = self.sessions.get(request.cookies.get(COOKIE_NAME))
        if old is not None:
            self.sessions.delete(old)
        session = self.sessions.create()
        session.pending = PendingLaunch(
            state=auth.state,
            code_verifier=auth.code_verifier,
            iss=iss,
            token_endpoint=config.token_endpoint,
            launch=launch,
        )
        client_type = "confidential" if self.client.confidential else "public"
        log.info("smart launch", extra={"iss": iss, "client": client_type})
        response = RedirectResponse(auth.url, status_code=302, headers=PAGE_HEADERS)
        self._set_cookie(response, self.sessions.cookie_value(session))
        return response

    async def callback(self, request: Request) -> Response:
        params = request.query_params
        session = self.sessions.get(request.cookies.get(COOKIE_NAME))
        if session is None:
            return self.pages.error(400, "no launch in progress: open the app from the EHR again")
        pending = self.sessions.take_pending(session)
        if pending is None:
            return self.pages.error(400, "this authorization was already used or never started")
        state = params.get("state") or ""
        if not _same(state, pending.state):
            log.warning("smart callback with a wrong state")
            return self.pages.error(400, "the authorization's state does not match this launch")
        if params.get("error"):
            error = params["error"] if params["error"].isascii() else "error"
            return self.pages.error(401, f"the EHR did not authorize the app ({error[:60]})")
        code = params.get("code")
        if not code or len(code) > 4096:
            return self.pages.error(400, "the authorization has no code")
        try:
            async with self._http() as http:
                token = await oauth.exchange_code(
                    http,
                    pending.token_endpoint,
                    self.client,
                    code=code,
                    code_verifier=pending.code_verifier,
                )
        except oauth.LaunchError as exc:
            log.info("smart token exchange failed", extra={"reason": exc.message})
            return self.pages.error(exc.status, exc.message)
        if not _FHIR_ID.fullmatch(token.patient):
            return self.pages.error(502, "the EHR's patient context is not a FHIR id")
        expires_in = token.expires_in
        expires_at = time.monotonic() + expires_in if expires_in is not None else None
        session.authorized = Authorized(
            iss=pending.iss,
            patient_id=token.patient,
            access_token=token.access_token,
            scope=token.scope,
            expires_at=expires_at,
        )
        log.info("smart launch authorized", extra={"iss": pending.iss})
        view_url = f"{self.pages.prefix}/smart/view?v={session.authorized.view_id}"
        return RedirectResponse(view_url, status_code=303, headers=PAGE_HEADERS)

    async def _record(self, request: Request) -> EvaluatedRecord | Response:
        session = self.sessions.get(request.cookies.get(COOKIE_NAME))
        authorized = session.authorized if session is not None else None
        if authorized is None:
            return self.pages.error(401, "not launched: open the app from the EHR")
        asked = request.query_params.get("v")
        if asked is not None and not _same(asked, authorized.view_id):
            # A page of an earlier launch (another tab): never show it the newer patient.
            return self.pages.error(
                409, "this page belongs to an earlier launch: open the app from the EHR again"
            )
        if authorized.expires_at is not None and authorized.expires_at <= time.monotonic():
            return self.pages.error(401, "the EHR's authorization has expired: launch again")
        started = time.perf_counter()
        at = _clock(request)
        try:
            body = await fetch_record(
                settings=self.settings,
                clients=_fhir_clients(request),
                iss=authorized.iss,
                access_token=authorized.access_token,
                patient_id=authorized.patient_id,
            )
            record = await evaluate_record(body, settings=self.settings, at=at)
        except RecordError as exc:
            return self.pages.error(exc.status, exc.message)
        _audit_view(request, authorized, record, at, time.perf_counter() - started)
        return record

    async def view(self, request: Request) -> Response:
        record = await self._record(request)
        if isinstance(record, Response):
            return record
        view_id = request.query_params.get("v") or ""
        return self.pages.assessment(
            record,
            json_url=self.pages.prefix
            + "/smart/view/service-request.json"
            + (f"?v={view_id}" if view_id else ""),
            origin="EHR launch",
        )

    async def service_request(self, request: Request) -> Response:
        record = await self._record(request)
        if isinstance(record, Response):
            return record
        return self.pages.service_request(record)

    def routes(self) -> list[BaseRoute]:
        return [
            Route(LAUNCH_PATH, self.launch, methods=["GET"], name="smart-launch"),
            Route(CALLBACK_PATH, self.callback, methods=["GET"], name="smart-callback"),
            Route("/smart/view", self.view, methods=["GET"], name="smart-view"),
            Route(
                "/smart/view/service-request.json",
                self.service_request,
                methods=["GET"],
                name="smart-service-request",
            ),
        ]


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


# --- the demo's fixture patients ------------------------------------------------------------


class DemoView:
    """The full view of a demo fixture patient, evaluated as the demo page's hook call is."""

    def __init__(self, settings: Settings, pages: FullViewPages) -> None:
        self.settings = settings
        self.pages = pages

    async def _record(self, request: Request) -> EvaluatedRecord | Response:
        from service.demo import FixtureError, fixtures_dir, hook_request_for, load_manifest

        slug = request.path_params["slug"]
        now = _clock(request)
        try:
            manifest = load_manifest(fixtures_dir(self.settings))
            patient = next((p for p in manifest.patients if p.slug == slug), None)
            if patient is None:
                return self.pages.error(404, "unknown fixture patient")
            shift = (now.date() - manifest.evaluated_at).days if manifest.evaluated_at else 0
            body = hook_request_for(patient, shift)
            return await evaluate_record(body, settings=self.settings, at=now)
        except FixtureError as exc:
            return self.pages.error(404, str(exc))
        except RecordError as exc:
            return self.pages.error(exc.status, exc.message)

    async def view(self, request: Request) -> Response:
        record = await self._record(request)
        if isinstance(record, Response):
            return record
        slug = request.path_params["slug"]
        return self.pages.assessment(
            record,
            json_url=f"{self.pages.prefix}/demo/view/{slug}/service-request.json",
            origin="demo fixture",
        )

    async def service_request(self, request: Request) -> Response:
        record = await self._record(request)
        if isinstance(record, Response):
            return record
        return self.pages.service_request(record)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/demo/view/{slug}", self.view, methods=["GET"], name="demo-view"),
            Route(
                "/demo/view/{slug}/service-request.json",
                self.service_request,
                methods=["GET"],
                name="demo-view-service-request",
            ),
        ]


def full_view_routes(settings: Settings) -> list[BaseRoute]:
    """The SMART app's routes when it is configured, the demo's view when the demo is on,
    and their static files when either is."""
    pages = FullViewPages(settings)
    routes: list[BaseRoute] = []
    if settings.smart_enabled:
        routes += SmartApp(settings, pages).routes()
    if settings.demo_enabled:
        routes += DemoView(settings, pages).routes()
    if routes:
        routes.append(
            Mount("/smart/static", app=StaticFiles(directory=STATIC_DIR), name="smart-static")
        )
    return routes
