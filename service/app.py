"""The ASGI application: routes, middleware and lifespan, wired in one place.

``create_app(settings)`` lists every route and middleware explicitly (nothing is
discovered) and opens, in the lifespan, what lives as long as the process: the store
(feedback and the audit writer), the authenticator and its HTTP client, and the pooled
FHIR clients. Shutdown closes them in reverse order of use: no more FHIR fetches, then
the store, whose ``close`` writes every queued audit record. uvicorn stops accepting
connections and lets in-flight calls finish before it runs the lifespan shutdown.

A hook call flows one way (``shared/spec/architecture.md``)::

    size limit -> service id -> authentication -> media type -> body read (counted)
      -> JSON parse and depth -> request shape -> fhirServer policy
      -> prefetch / FHIR fetch -> clinical assessment -> cards -> response (+ audit)

Authentication comes before the body is read so that an unauthenticated caller cannot
make the service read and parse megabytes; the declared size is checked even earlier.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service import observability
from service.fhir import prefetch
from service.fhir.client import FhirClients
from service.fhir.skim import body_parser
from service.malloc import tune_malloc
from service.observability import FEEDBACK_ITEMS, count_hook_call, get_logger
from service.openapi import openapi_document
from service.pipeline import DataAccess, evaluate
from service.protocol import (
    SERVICES,
    HookRequest,
    NotFound,
    PreconditionFailed,
    ProtocolError,
    ServiceDeclaration,
    discovery_document,
    find_service,
    parse_feedback,
    parse_hook_request,
)
from service.protocol.audit import card_ids
from service.protocol.body_budget import BodyBudget, Busy
from service.protocol.drain import DrainUnreadBody
from service.protocol.errors import BadRequest, shorten
from service.protocol.jsonbody import (
    check_content_type,
    check_declared_length,
    check_repeated_envelope_keys,
    parse_json,
    read_body,
)
from service.protocol.responses import error_response, json_response, unauthorized
from service.render.content import load_content
from service.security import (
    AuthenticationError,
    Authenticator,
    ClientIdentity,
    FhirServerNotAllowed,
    build_authenticator,
    check_fhir_server,
)
from service.security.internal import InternalAccess
from service.settings import Settings
from service.store import open_store
from service.store.base import AuditRecord, Store

log = get_logger("app")

Clock = Callable[[], datetime]

READY_TIMEOUT_S = 2.0
"""How long ``/readyz`` waits for the database before answering 503."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Unauthorized(Exception):
    """Authentication failed; answered with a bare 401 (the reason is already logged)."""


class _StoreUnavailable(Exception):
    """Feedback could not be stored; answered with 503 so the EHR retries."""


@dataclass(frozen=True)
class Resources:
    """What the lifespan opens and the handlers use, handed over as lifespan state.

    Starlette copies the lifespan's state into every request (``request.state.resources``),
    so a handler can only run with everything open: there is no half-started application
    to guard against, and no flag to check.
    """

    store: Store
    authenticator: Authenticator | None
    fhir_clients: FhirClients
    ruleset_version: str
    """Version of the rule set and card content (``cards/``), recorded with every audit row."""
    body_budget: BodyBudget
    """Bytes of hook bodies held at once (``LIVER_CDS_BODY_BUDGET_BYTES``)."""


@dataclass
class Runtime:
    """The application's configuration and its shutdown bookkeeping (not its resources)."""

    settings: Settings
    clock: Clock
    stopping: bool = False
    """Set when shutdown begins: ``/readyz`` answers 503 so load balancers drain us."""
    in_flight: set[asyncio.Task[Any]] = field(default_factory=set)

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Mark the current request as in flight, so a shutdown waits for it."""
        task = asyncio.current_task()
        if task is not None:
            self.in_flight.add(task)
        try:
            yield
        finally:
            if task is not None:
                self.in_flight.discard(task)


def _resources(request: Request) -> Resources:
    resources: Resources = request.state.resources
    return resources


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    authenticator: Authenticator | None = None,
    clock: Clock | None = None,
    http_transport: httpx.AsyncBaseTransport | None = None,
    serving_process: bool = False,
) -> Starlette:
    """Build the service.

    ``settings`` defaults to ``Settings.from_env()``. The keyword arguments replace what
    the lifespan would otherwise open, for tests and embedding: ``store`` instead of
    ``open_store(settings)``, ``authenticator`` instead of ``build_authenticator(...)``,
    ``clock`` (UTC now) for the evaluation time, and ``http_transport`` for every
    outgoing HTTP request (FHIR servers and JWKS). An injected store is still closed at
    shutdown: the application owns what it runs on. ``serving_process`` is for a process
    that runs this one app (``liver-cds serve``): after start-up it freezes the objects
    alive then (:func:`_freeze_startup_objects`) and, unless ``LIVER_CDS_MALLOC_TUNING``
    is off, sets glibc's malloc thresholds (:mod:`service.malloc`).
    """
    settings = settings if settings is not None else Settings.from_env()
    runtime = Runtime(settings=settings, clock=clock or utc_now)
    handlers = _Handlers(runtime)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with contextlib.AsyncExitStack() as stack:
            resources = await _start(runtime, stack, store, authenticator, http_transport)
            if serving_process:
                _freeze_startup_objects()
                if settings.malloc_tuning:
                    tune_malloc()
            try:
                yield {"resources": resources}
            finally:
                runtime.stopping = True
                if runtime.in_flight:  # embedded servers that do not drain first
                    await asyncio.wait(set(runtime.in_flight), timeout=settings.call_budget_s)
                log.info("shutting down: closing FHIR clients, flushing audit, closing store")

    routes: list[BaseRoute] = [
        Route("/cds-services", handlers.discovery, methods=["GET"], name="discovery"),
        Route("/cds-services/{service_id}", handlers.hook, methods=["POST"], name="hook"),
        Route(
            "/cds-services/{service_id}/feedback",
            handlers.feedback,
            methods=["POST"],
            name="feedback",
        ),
        Route("/healthz", handlers.healthz, methods=["GET"], name="healthz"),
        Route("/readyz", handlers.readyz, methods=["GET"], name="readyz"),
    ]
    # /metrics and /openapi.json: with auth required, only for LIVER_CDS_METRICS_TOKEN
    # (service/security/internal.py); not served at all without one.
    internal = InternalAccess.from_settings(settings)
    if internal.served:
        routes.append(Route("/openapi.json", handlers.openapi, methods=["GET"], name="openapi"))
        if settings.metrics_enabled:
            routes.append(observability.metrics_route(allows=internal.allows))
    if settings.demo_enabled:
        from service.demo import demo_routes

        routes.extend(demo_routes(settings))
    if settings.smart_enabled or settings.demo_enabled:
        from service.smart import full_view_routes

        # The SMART app when configured, the demo's full view when the demo is on.
        routes.extend(full_view_routes(settings))

    middleware = [
        # Outermost: an early answer (413, 401, 404) first drains the unread body, bounded,
        # so a client that writes its whole body before reading gets the answer, not a reset.
        Middleware(DrainUnreadBody, max_body_bytes=settings.max_body_bytes),
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            HTTPException: _http_exception,
            ProtocolError: _error_response,
            _Unauthorized: _error_response,
            _StoreUnavailable: _error_response,
            ClientDisconnect: _error_response,
        },
    )
    app.state.runtime = runtime
    return app


def create_app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory`` (``--workers`` > 1): settings from the environment."""
    return create_app(Settings.from_env(), serving_process=True)


def _freeze_startup_objects() -> None:
    """Move every object alive after start-up out of the garbage collector's generations.

    Why: a hook call allocates thousands of short-lived dicts, which triggers collections;
    each full collection would otherwise rescan the ~100,000 objects that live as long
    as the process (imported modules, card content, settings, clients). Frozen objects
    are still freed by reference counting; only cycles among them are never collected,
    and start-up objects are not garbage. Measured with ``bench/run.py`` (README).
    """
    gc.collect()
    gc.freeze()


async def _start(
    runtime: Runtime,
    stack: contextlib.AsyncExitStack,
    store: Store | None,
    authenticator: Authenticator | None,
    http_transport: httpx.AsyncBaseTransport | None,
) -> Resources:
    """Open everything; each piece is registered for closing as soon as it is open.

    The exit stack closes in reverse order: FHIR clients first, then the authenticator
    and its HTTP client, then the store (flushing the audit queue) last.
    """
    settings = runtime.settings
    runtime.stopping = False  # a lifespan may run again on the same app (test harnesses)
    observability.configure_logging(settings)
    if settings.extra:
        log.warning(
            "unknown LIVER_CDS_* variables ignored", extra={"variables": sorted(settings.extra)}
        )
    # Card content is checked against its schema now, so a bad edit stops the start-up
    # instead of failing the first clinician's call (raises ContentError).
    ruleset_version = load_content(settings.cards_dir).version

    opened_store = store if store is not None else await open_store(settings)
    stack.push_async_callback(opened_store.close)

    http = httpx.AsyncClient(
        transport=http_transport,
        timeout=httpx.Timeout(settings.fhir_timeout_s),
        follow_redirects=False,
        trust_env=False,
    )
    stack.push_async_callback(http.aclose)
    if authenticator is None:
        authenticator = build_authenticator(settings, http=http)
    if authenticator is not None:
        stack.push_async_callback(authenticator.aclose)

    fhir_clients = FhirClients(settings, transport=http_transport)
    stack.push_async_callback(fhir_clients.aclose)
    log.info(
        "liver-cds started",
        extra={
            "services": [s.id for s in SERVICES],
            "auth": "on" if authenticator is not None else "off",
            "ruleset_version": ruleset_version,
            "public_url": settings.public_base,
        },
    )
    return Resources(
        store=opened_store,
        authenticator=authenticator,
        fhir_clients=fhir_clients,
        ruleset_version=ruleset_version,
        # Any body under the limit must fit on its own (service/protocol/body_budget.py).
        body_budget=BodyBudget(max(settings.body_budget_bytes, settings.max_body_bytes)),
    )


def error_for(exc: BaseException) -> Response:
    """The one mapping from what a handler raised to what the client gets.

    Used as the application's exception handler for the expected failures, and by the
    hook endpoint, which needs the status for its metrics and audit record. Anything
    unexpected is a 500 with a generic message; the fault is logged without its message
    (see :func:`_log_fault`), never sent.
    """
    if isinstance(exc, Busy):
        return error_response(
            exc.status, exc.message, headers={"Retry-After": str(exc.retry_after_s)}
        )
    if isinstance(exc, ProtocolError):
        return error_response(exc.status, exc.message)
    if isinstance(exc, _Unauthorized):
        return unauthorized()
    if isinstance(exc, _StoreUnavailable):
        return error_response(503, "feedback could not be stored; please retry")
    if isinstance(exc, ClientDisconnect):
        return Response(status_code=400)  # nobody reads it: the client has gone
    return error_response(500, "internal error")


async def _error_response(request: Request, exc: Exception) -> Response:
    return error_for(exc)


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Routing errors (unknown path, wrong method) as JSON like every other error."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = "not found"
    elif exc.status_code == 405:
        message = "method not allowed"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, headers=exc.headers)


@dataclass
class _Outcome:
    """What one hook call produced, for its metrics, log line and audit record."""

    at: datetime
    """The call's time: the evaluation time of the rules and the time of its audit record."""
    status: int = 500
    hook: HookRequest | None = None
    verdict: str | None = None
    rule: str | None = None
    offered: tuple[str, ...] = ()
    recommended: tuple[str, ...] = ()
    cards: Sequence[dict[str, Any]] = ()
    fetched_keys: tuple[str, ...] = ()
    data_quality_notes: int = 0


@functools.lru_cache(maxsize=4)
def _discovery_for(ruleset_version: str) -> dict[str, Any]:
    """The discovery document, its descriptions naming the rule set read at start-up."""
    return discovery_document(SERVICES, ruleset_version=ruleset_version)


class _Handlers:
    """The endpoints. Configuration comes from the runtime; what the lifespan opened comes
    with each request (:func:`_resources`)."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.settings = runtime.settings
        self._openapi = openapi_document(runtime.settings)
        self._internal = InternalAccess.from_settings(runtime.settings)
        # Each service's hook body is parsed for its declared prefetch (service/fhir/skim.py);
        # strict mode validates every input resource, so it needs every one built.
        self._hook_parsers: dict[str, Callable[[bytes, int], Any]] = {
            service.id: body_parser(service.prefetch, strict=runtime.settings.strict_fhir)
            for service in SERVICES
        }

    # --- shared steps -------------------------------------------------------------------

    async def _authenticate(self, request: Request) -> ClientIdentity | None:
        """The caller's identity, or None with auth off; raises _Unauthorized (bare 401)."""
        authenticator = _resources(request).authenticator
        if authenticator is None:
            return None
        audience = self.settings.public_base + request.url.path
        try:
            return await authenticator.authenticate(request.headers.get("authorization"), audience)
        except AuthenticationError:
            raise _Unauthorized() from None  # the authenticator logged the reason

    def _service(self, request: Request) -> ServiceDeclaration:
        service_id = request.path_params["service_id"]
        service = find_service(service_id)
        if service is None:
            raise NotFound(f"no CDS service with id {shorten(service_id)!r}")
        return service

    async def _json_body(
        self, request: Request, decode: Callable[[bytes, int], Any] | None = None
    ) -> tuple[Any, bytes]:
        check_content_type(request.headers.get("content-type"))
        body = await read_body(request.stream(), self.settings.max_body_bytes)
        data = parse_json(body, max_depth=self.settings.max_json_depth, decode=decode)
        return data, body

    # --- GET /cds-services ----------------------------------------------------------------

    async def discovery(self, request: Request) -> Response:
        await self._authenticate(request)
        return json_response(_discovery_for(_resources(request).ruleset_version))

    # --- POST /cds-services/{id} ------------------------------------------------------------

    async def hook(self, request: Request) -> Response:
        """One hook call, for any declared service; its metrics and audit in one place.

        The metrics, the log line and the audit record are made once the response has been
        sent: Starlette runs a response's background task right after its last ``send``, in
        the same request task, so the EHR does not wait for them (about a tenth of a small
        chart's single-call latency, docs/performance.md) and every caller that awaits the
        whole application (the tests, ``httpx.ASGITransport``) still sees them done when
        it has the response. The latency recorded is still "request received to response
        ready". Under uvicorn ``send`` does not raise when the client has gone, so the
        record is made for every call, as before.
        """
        with self.rt.track():
            started = time.perf_counter()
            outcome = _Outcome(at=self.rt.clock())
            try:
                response = await self._hook(request, outcome)
            except Exception as exc:
                if not isinstance(exc, _EXPECTED):
                    _log_fault("hook call failed", exc, outcome.hook)
                response = error_for(exc)
                if isinstance(exc, ClientDisconnect):
                    outcome.status = 499  # nginx's "client closed request"
            if outcome.status != 499:
                outcome.status = response.status_code
            known = find_service(request.path_params["service_id"])
            service_id = known.id if known is not None else None  # bounded metric labels
            response.background = BackgroundTask(
                self._record_tracked, request, service_id, outcome, time.perf_counter() - started
            )
            return response

    async def _record_tracked(
        self, request: Request, service_id: str | None, outcome: _Outcome, elapsed_s: float
    ) -> None:
        """:meth:`_record`, with the request still in flight (a shutdown waits for it).

        A coroutine function on purpose: Starlette runs a plain function's background task
        in its thread pool, a hop to another thread and back for every call."""
        with self.rt.track():
            self._record(request, service_id, outcome, elapsed_s)

    async def _hook(self, request: Request, outcome: _Outcome) -> Response:
        settings = self.settings
        declared = request.headers.get("content-length")
        check_declared_length(declared, settings.max_body_bytes)
        service = self._service(request)
        identity = await self._authenticate(request)
        # The body, what is parsed from it and the cards are held within the body budget;
        # a body sent without a length may grow to the limit.
        size = int(declared) if declared is not None else settings.max_body_bytes
        async with _resources(request).body_budget.hold(size, timeout_s=settings.call_budget_s):
            return await self._answer(request, service, identity, outcome)

    async def _answer(
        self,
        request: Request,
        service: ServiceDeclaration,
        identity: ClientIdentity | None,
        outcome: _Outcome,
    ) -> Response:
        settings = self.settings
        data, body = await self._json_body(request, self._hook_parsers[service.id])
        check_repeated_envelope_keys(body, data)
        hook = parse_hook_request(data, service)
        outcome.hook = hook
        try:
            result = await evaluate(
                service,
                hook,
                settings=settings,
                at=outcome.at,
                access=self._data_access(request, service, hook, identity),
            )
        except prefetch.PrefetchShapeError as exc:
            raise BadRequest(exc.message) from None
        except prefetch.DataUnavailable as exc:
            raise PreconditionFailed(exc.message) from None
        assessment = result.assessment
        outcome.verdict = assessment.verdict
        outcome.rule = assessment.rule
        outcome.offered = tuple(assessment.offered)
        outcome.recommended = tuple(assessment.recommended)
        outcome.cards = result.cards
        outcome.fetched_keys = result.fetched_keys
        outcome.data_quality_notes = len(assessment.data_quality)
        return json_response({"cards": result.cards})

    def _data_access(
        self,
        request: Request,
        service: ServiceDeclaration,
        hook: HookRequest,
        identity: ClientIdentity | None,
    ) -> DataAccess:
        """Where missing data may be fetched from, after the fhirServer policy.

        A fhirServer this caller may not send us to is never contacted. If the prefetch
        already holds every essential key, the call goes on without FHIR access (a missing
        optional key only refines, as without a fhirServer); otherwise the data cannot be
        obtained: 412 with the policy's reason.
        """
        if hook.fhir_server is None:
            return DataAccess()
        try:
            check_fhir_server(identity, hook.fhir_server, self.settings)
        except FhirServerNotAllowed as exc:
            missing = prefetch.unresolved_keys(service.prefetch, hook.prefetch)
            if not missing:
                log.info(
                    "fhirServer not allowed; using the complete prefetch only",
                    extra={"hookInstance": hook.hook_instance},
                )
                return DataAccess()
            raise PreconditionFailed(
                f"{exc}; prefetch does not hold {', '.join(missing)} in full (not sent, an "
                "OperationOutcome, or only a first page), so the data cannot be obtained"
            ) from None
        return DataAccess(
            clients=_resources(request).fhir_clients,
            fhir_server=hook.fhir_server,
            access_token=hook.access_token,
        )

    def _record(
        self, request: Request, service_id: str | None, outcome: _Outcome, elapsed_s: float
    ) -> None:
        """Metrics for every call; a log line and an audit record for every parsed call."""
        count_hook_call(
            service_id or "unknown",
            outcome.status,
            outcome.verdict or "none",
            elapsed_s if service_id is not None else None,
        )
        hook = outcome.hook
        if hook is None or service_id is None:
            return
        latency_ms = round(elapsed_s * 1000.0, 3)
        ids = card_ids(outcome.cards)
        log.info(
            "hook call",
            extra={
                "hookInstance": hook.hook_instance,
                "service": service_id,
                "status": outcome.status,
                "latency_ms": latency_ms,
                "verdict": outcome.verdict,
                "rule": outcome.rule,
                "cards": len(ids.card_uuids),
                "fetched_keys": list(outcome.fetched_keys),
                "data_quality_notes": outcome.data_quality_notes,
            },
        )
        resources: Resources | None = getattr(request.state, "resources", None)
        if resources is None:
            return
        try:
            resources.store.audit(
                AuditRecord(
                    hook_instance=hook.hook_instance,
                    service_id=service_id,
                    at=outcome.at,
                    patient_id=hook.patient_id,
                    status=outcome.status,
                    latency_ms=latency_ms,
                    verdict=outcome.verdict,
                    rule=outcome.rule,
                    offered=outcome.offered,
                    recommended=outcome.recommended,
                    card_uuids=ids.card_uuids,
                    suggestion_uuids=ids.suggestion_uuids,
                    suggestions=ids.suggestions,
                    ruleset_version=resources.ruleset_version,
                )
            )
        except Exception as exc:  # the answer is already made; never fail it for the audit
            _log_fault("audit record not queued", exc, hook)

    # --- POST /cds-services/{id}/feedback ---------------------------------------------------

    async def feedback(self, request: Request) -> Response:
        with self.rt.track():
            try:
                return await self._feedback(request)
            except Exception as exc:
                if not isinstance(exc, _EXPECTED):
                    _log_fault("feedback call failed", exc, None)
                return error_for(exc)

    async def _feedback(self, request: Request) -> Response:
        settings = self.settings
        check_declared_length(request.headers.get("content-length"), settings.max_body_bytes)
        service = self._service(request)
        await self._authenticate(request)
        data, _ = await self._json_body(request)
        items = parse_feedback(data, service_id=service.id, received_at=self.rt.clock())
        if items:
            store = _resources(request).store
            try:
                result = await store.save_feedback(items)
            except ValueError as exc:  # the store refuses an item (InvalidFeedbackError)
                raise BadRequest(str(exc)) from None
            except Exception as exc:
                _log_fault("feedback not stored", exc, None)
                raise _StoreUnavailable() from None
            for item in items:
                FEEDBACK_ITEMS.labels(outcome=item.outcome).inc()
            log.info(
                "feedback stored",
                extra={
                    "service": service.id,
                    "items": len(items),
                    "stored": result.stored,
                    "duplicates": result.duplicates,
                    "unknown_cards": result.unknown_cards,
                },
            )
        return json_response({})

    # --- operations -----------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        """Liveness: the process answers. Never touches the database."""
        return json_response({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        """Readiness: started, not shutting down, and what the configuration needs answers:
        the database (SQLite: and its write lock is free), and Redis when configured."""
        resources: Resources | None = getattr(request.state, "resources", None)
        if resources is None or self.rt.stopping:
            return json_response({"status": "unavailable", "reason": "not started"}, 503)
        try:
            ready = await asyncio.wait_for(resources.store.ping(), timeout=READY_TIMEOUT_S)
        except Exception:
            ready = False
        if not ready:
            return json_response({"status": "unavailable", "reason": "database"}, 503)
        # Redis (LIVER_CDS_REDIS_URL with auth required) holds every token's jti: while it is
        # down every authenticated call is a 401, so this replica is not ready either.
        shared_state = getattr(resources.authenticator, "shared_state_ready", None)
        if shared_state is not None:
            try:
                shared_ready = await asyncio.wait_for(shared_state(), timeout=READY_TIMEOUT_S)
            except Exception:
                shared_ready = False
            if not shared_ready:
                return json_response({"status": "unavailable", "reason": "redis"}, 503)
        return json_response({"status": "ready"})

    async def openapi(self, request: Request) -> Response:
        if not self._internal.allows(request.headers.get("authorization")):
            raise HTTPException(status_code=404)  # the answer of an unknown path
        return json_response(self._openapi)


_EXPECTED: Final = (ProtocolError, _Unauthorized, _StoreUnavailable, ClientDisconnect)
"""What a handler raises on purpose; anything else is a fault and is logged as one."""


def _log_fault(event: str, exc: BaseException, hook: HookRequest | None) -> None:
    """Log an unexpected fault with where it happened but not its message.

    Exception messages can quote the data being processed (a patient's value, a URL with
    a patient id), so the log line carries the type and the stack frames only, plus the
    hookInstance to find the call.
    """
    frames = traceback.format_tb(exc.__traceback__)
    log.error(
        event,
        extra={
            "hookInstance": hook.hook_instance if hook is not None else None,
            "error_type": type(exc).__name__,
            "where": "".join(frames[-5:]),
        },
    )
