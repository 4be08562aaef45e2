"""The one evaluation pipeline: a checked hook request -> data -> assessment -> cards.

Every caller goes through :func:`evaluate`: the hook endpoint (``service/app.py``), the CLI
(``liver-cds evaluate``), the fixture, golden and skim tests, and the benchmarks. So a
setting (the lookback windows, strict mode, the SMART link) or a rule changes in one place
and every caller sees it; before this module the way from a request to cards was written
six times and the copies had drifted (the lookback setting was ignored over HTTP, nested
Bundles were read by the CLI and skipped over HTTP).

The flow, one way::

    HookRequest -> data (prefetch as given; missing keys fetched when DataAccess allows)
                -> assessment (service.clinical.engine.assess, pure)
                -> cards (what the service's hook answers: an assessment, or order checks)

The data source is the seam: :data:`PREFETCH_ONLY` reads only what the request carries
(the CLI, tests and benchmarks); a :class:`DataAccess` with a FHIR server and clients also
fetches what is missing, within the call's budget. Which FHIR server a caller may send us
to is decided before this point (``service/security/policy.py``): this module trusts the
``DataAccess`` it is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from service.clinical.engine import assess
from service.clinical.model import Assessment
from service.clinical.order_checks import check_orders
from service.clinical.thresholds import Thresholds, thresholds_from_settings
from service.fhir import prefetch
from service.fhir.client import FhirClients
from service.fhir.orders import read_draft_orders
from service.protocol.declaration import ServiceDeclaration
from service.protocol.request import HookRequest
from service.render.cards import RenderContext, render_cards
from service.render.order_cards import render_order_cards
from service.settings import Settings

__all__ = [
    "PREFETCH_ONLY",
    "DataAccess",
    "DataUnavailable",
    "Evaluation",
    "PrefetchShapeError",
    "evaluate",
    "thresholds_for",
]

PrefetchShapeError = prefetch.PrefetchShapeError
"""A prefetch value has a wrong shape (the HTTP layer answers 400)."""
DataUnavailable = prefetch.DataUnavailable
"""Essential data cannot be obtained (the HTTP layer answers 412)."""


@dataclass(frozen=True)
class DataAccess:
    """Where keys missing from the prefetch may be fetched from, if anywhere.

    ``fhir_server`` None means prefetch only: a missing essential key is then
    :class:`DataUnavailable`. The token is excluded from ``repr`` so that logging this
    value can never leak it.
    """

    clients: FhirClients | None = None
    fhir_server: str | None = None
    access_token: str | None = field(default=None, repr=False)


PREFETCH_ONLY: Final = DataAccess()
"""Read only what the request carries (CLI, tests, benchmarks)."""


@dataclass(frozen=True)
class Evaluation:
    """What one hook request produced: the assessment, the cards, and the data they came from."""

    assessment: Assessment
    cards: list[dict[str, Any]]
    fetched_keys: tuple[str, ...] = ()
    """Prefetch keys whose data came from the FHIR server."""
    resources: list[dict[str, Any]] = field(default_factory=list, repr=False)
    """Every resource the assessment was made from (the full view draws them: the segment
    map and the lab trends show the same data the card was decided on)."""


CardMaker = Callable[[Assessment, HookRequest, RenderContext], list[dict[str, Any]]]


def _assessment_cards(
    assessment: Assessment, hook: HookRequest, context: RenderContext
) -> list[dict[str, Any]]:
    return render_cards(assessment, context)


def _order_check_cards(
    assessment: Assessment, hook: HookRequest, context: RenderContext
) -> list[dict[str, Any]]:
    """order-sign: each liver-directed draft order checked against the assessment (§8)."""
    liver = frozenset(assessment.facts.liver_conditions)
    orders, _ = read_draft_orders(hook.draft_orders, liver)
    return render_order_cards(check_orders(assessment, orders), assessment, context)


CARD_MAKERS: Final[dict[str, CardMaker]] = {
    "patient-view": _assessment_cards,
    "order-sign": _order_check_cards,
}
"""What each hook answers with, from the same assessment. A service is declared in
``service/protocol/declaration.py``; its hook picks its card maker here."""


_last_thresholds: tuple[Settings, Thresholds] | None = None
"""The settings object last seen and its thresholds (a server has one settings object)."""


def thresholds_for(settings: Settings) -> Thresholds:
    """The clinical thresholds with every setting the engine reads applied.

    Built once per settings object, not on every call: settings are frozen, and a
    Thresholds with a setting applied is a new ~60-field frozen value. The same object
    each call also lets the engine's per-Thresholds tables (``per_thresholds``) be reused.
    Identity, not equality: hashing settings would cost more than building the thresholds.
    """
    global _last_thresholds
    last = _last_thresholds
    if last is not None and last[0] is settings:
        return last[1]
    thresholds = thresholds_from_settings(settings)
    _last_thresholds = (settings, thresholds)
    return thresholds


async def evaluate(
    service: ServiceDeclaration,
    hook: HookRequest,
    *,
    settings: Settings,
    at: datetime,
    access: DataAccess = PREFETCH_ONLY,
    deadline: float | None = None,
    new_uuid: Callable[[], str] | None = None,
) -> Evaluation:
    """Data, assessment and cards for one checked hook request.

    ``at`` is the evaluation time (a naive value is read as UTC). ``deadline`` is a
    ``time.monotonic()`` value bounding the FHIR fetching (default: now plus the call
    budget). ``new_uuid`` makes card uuids deterministic (golden tests). Raises
    :class:`PrefetchShapeError` or :class:`DataUnavailable`; never raises on bad
    clinical data (a malformed resource becomes a data-quality note).
    """
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    if deadline is None:
        deadline = time.monotonic() + settings.call_budget_s
    data = await _resolve(service, hook, settings, access, deadline)
    assessment = assess(
        data.resources,
        patient_id=hook.patient_id,
        at=at,
        notes=data.notes,
        strict=settings.strict_fhir,
        thresholds=thresholds_for(settings),
        procedures_checked=data.complete("procedures"),
    )
    context = RenderContext(
        patient_id=hook.patient_id,
        smart_app_url=settings.smart_app_url,
        cards_dir=settings.cards_dir,
        **({"new_uuid": new_uuid} if new_uuid is not None else {}),
    )
    make_cards = CARD_MAKERS[service.hook]
    cards = make_cards(assessment, hook, context)
    return Evaluation(
        assessment=assessment,
        cards=cards,
        fetched_keys=data.fetched_keys,
        resources=data.resources,
    )


async def _resolve(
    service: ServiceDeclaration,
    hook: HookRequest,
    settings: Settings,
    access: DataAccess,
    deadline: float,
) -> prefetch.PrefetchResult:
    fhir_server = access.fhir_server if access.clients is not None else None
    return await prefetch.resolve(
        templates=service.prefetch,
        prefetch=hook.prefetch,
        context=hook.context,
        fhir_server=fhir_server,
        access_token=access.access_token,
        user_id=hook.user_id,
        clients=access.clients,
        settings=settings,
        deadline=deadline,
    )
