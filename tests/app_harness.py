"""Running the ASGI app in tests: lifespan, an httpx client, an in-memory store, requests.

``httpx.ASGITransport`` does not run the lifespan, so :func:`running_app` runs it with
asgi-lifespan (start-up before the first request, shutdown after the last, the lifespan
state handed to every request), as uvicorn does. Import it from any test
(``from app_harness import ...``).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette
from starlette.types import ASGIApp

from service.app import create_app
from service.settings import Settings
from service.store.base import AuditRecord, FeedbackItem, FeedbackResult

SERVICE_ID = "liver-metastasis-resectability"
HOOK_URL = f"/cds-services/{SERVICE_ID}"
FEEDBACK_URL = f"{HOOK_URL}/feedback"
FIXED_NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@dataclass
class FakeStore:
    """The Store protocol in memory, recording every call in ``events`` (in order)."""

    feedback: list[FeedbackItem] = field(default_factory=list)
    audits: list[AuditRecord] = field(default_factory=list)
    pending_audits: list[AuditRecord] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    ready: bool = True
    fail_feedback: Exception | None = None
    closed: bool = False

    async def save_feedback(self, items: Sequence[FeedbackItem]) -> FeedbackResult:
        if self.fail_feedback is not None:
            raise self.fail_feedback
        self.events.append("save_feedback")
        keys = {(i.card_uuid, i.outcome, i.outcome_timestamp) for i in self.feedback}
        stored = 0
        for item in items:
            key = (item.card_uuid, item.outcome, item.outcome_timestamp)
            if key not in keys:
                keys.add(key)
                self.feedback.append(item)
                stored += 1
        return FeedbackResult(stored=stored, duplicates=len(items) - stored, unknown_cards=0)

    def audit(self, record: AuditRecord) -> None:
        """Queued like the real store: written on :meth:`close` (or :meth:`flush`)."""
        self.events.append("audit")
        self.pending_audits.append(record)

    def flush(self) -> None:
        self.audits.extend(self.pending_audits)
        self.pending_audits.clear()

    async def ping(self) -> bool:
        return self.ready

    async def close(self) -> None:
        self.events.append("close")
        self.flush()
        self.closed = True


def make_settings(**overrides: Any) -> Settings:
    """Settings for in-process tests: no demo routes, no FHIR loopback surprises."""
    values: dict[str, Any] = {"demo_enabled": False, "log_format": "text"}
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[ASGIApp]:
    """Run the app's lifespan: start-up on enter, shutdown on exit (as uvicorn does).

    Yields the app to send requests to: asgi-lifespan's wrapper, which hands the
    lifespan state (the opened store, clients, authenticator) to every request as a
    server does. A start-up failure is raised here.
    """
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        yield manager.app


@dataclass
class Running:
    app: Starlette
    client: httpx.AsyncClient
    store: FakeStore


@asynccontextmanager
async def running_app(
    settings: Settings | None = None,
    *,
    store: FakeStore | None = None,
    **overrides: Any,
) -> AsyncIterator[Running]:
    """The app started with a :class:`FakeStore` and a client bound to it.

    ``overrides`` go to ``create_app`` (``authenticator``, ``clock``, ``http_transport``).
    The clock defaults to :data:`FIXED_NOW`.
    """
    store = store if store is not None else FakeStore()
    overrides.setdefault("clock", lambda: FIXED_NOW)
    app = create_app(settings or make_settings(), store=store, **overrides)
    async with lifespan(app) as with_state:
        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Running(app=app, client=client, store=store)


# --- requests -------------------------------------------------------------------------------

PATIENT_ID = "pat-1"


def patient(patient_id: str = PATIENT_ID) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": patient_id,
        "birthDate": "1960-04-02",
        "gender": "female",
    }


def searchset(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def hook_request(
    *,
    patient_id: str = PATIENT_ID,
    prefetch: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A valid patient-view request with a complete prefetch (no FHIR access needed)."""
    request: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "patientId": patient_id},
        "prefetch": (
            copy.deepcopy(prefetch)
            if prefetch is not None
            else {
                "patient": patient(patient_id),
                "conditions": searchset(),
                "observations": searchset(),
            }
        ),
    }
    request.update(fields)
    return request


def feedback_item(**fields: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "card": str(uuid.uuid4()),
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": str(uuid.uuid4())}],
        "outcomeTimestamp": "2025-06-01T12:05:31Z",
    }
    item.update(fields)
    return item
