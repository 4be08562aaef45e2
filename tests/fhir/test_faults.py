"""FHIR server faults through the real fetch path (httpx over loopback sockets).

Issue 8: connection refused, reset mid-response, slow past the timeout, 401/403/404/500,
non-JSON or non-Bundle bodies, next links that loop or never end, pages far larger than
expected. None may raise anything but DataUnavailable (-> 412) or hang past the call's
budget; a fault on the optional Patient read leaves a data-quality note and the call goes
on with what arrived. The server is tests/faults/server.py (fixture ``fault_fhir``).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from service.fhir.client import FhirClients
from service.fhir.prefetch import DataUnavailable, PrefetchResult, resolve
from service.observability import REGISTRY
from service.settings import Settings

if TYPE_CHECKING:  # the fixture provides it; tests/ layout decides the import name
    from faults.server import FaultServer

TOKEN = "fault-test-token-5150"
CONTEXT = {"userId": "Practitioner/dr-1", "patientId": "p1"}
TEMPLATES = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}&code=1975-2",
}
SETTINGS = replace(
    Settings(),
    # As deployed: an authenticated EHR is told why a fetch failed (with auth off every
    # network-level failure reads the same; see test_fetch_oracle.py).
    auth="required",
    fhir_timeout_s=0.5,
    call_budget_s=1.0,
    fhir_max_pages=5,
    fhir_max_page_bytes=256 * 1024,
)
SLACK_S = 2.0
"""Generous: the check is that the budget holds at all, not how fast we are."""

# fault -> (metric reason, words of the 412 message)
FAULTS: dict[str, tuple[str, str]] = {
    "reset": ("network", "the connection failed"),
    "close": ("network", "the connection failed"),
    "slow": ("timeout", "did not answer within 0.5 s"),
    "trickle": ("timeout", "did not answer within 0.5 s"),
    "status-401": ("status", "HTTP 401"),
    "status-403": ("status", "HTTP 403"),
    "status-404": ("status", "HTTP 404"),
    "status-500": ("status", "HTTP 500"),
    "redirect": ("status", "redirects are not followed"),
    "html": ("body", "not JSON"),
    "garbage": ("body", "not JSON"),
    "json-array": ("body", "not a FHIR resource"),
    "not-bundle": ("body", "not a Bundle"),
    "outcome": ("body", "OperationOutcome"),
    "loop": ("paging", "next links repeat"),
    "self-loop": ("paging", "next links repeat"),
    "endless": ("paging", "more than 5 pages"),
    "offbase": ("paging", "outside fhirServer"),
    "huge": ("size", "larger than 262144 bytes"),
    "huge-declared": ("size", "larger than 262144 bytes"),
}


def failures(reason: str) -> float:
    value = REGISTRY.get_sample_value("liver_cds_fhir_fetch_failures_total", {"reason": reason})
    return value or 0.0


async def fetch(
    base: str, *, settings: Settings = SETTINGS, prefetch: dict[str, Any] | None = None
) -> tuple[PrefetchResult | DataUnavailable, float]:
    """Run resolve() against ``base``; return its result or its 412 and the time taken."""
    clients = FhirClients(settings)
    started = time.monotonic()
    try:
        result: PrefetchResult | DataUnavailable = await resolve(
            templates=TEMPLATES,
            prefetch=prefetch if prefetch is not None else {},
            context=CONTEXT,
            fhir_server=base,
            access_token=TOKEN,
            user_id=CONTEXT["userId"],
            clients=clients,
            settings=settings,
            deadline=started + settings.call_budget_s,
        )
    except DataUnavailable as exc:
        result = exc
    finally:
        await clients.aclose()
    return result, time.monotonic() - started


async def test_the_well_behaved_server_gives_everything(fault_fhir: FaultServer) -> None:
    result, _ = await fetch(fault_fhir.base("ok"))
    assert isinstance(result, PrefetchResult)
    kinds = [r["resourceType"] for r in result.resources]
    assert kinds == ["Patient"] + ["Condition"] * 2 + ["Observation"] * 3
    assert result.fetched_keys == ("patient", "conditions", "observations")
    assert result.notes == []


async def test_paging_over_real_sockets_collects_every_page(fault_fhir: FaultServer) -> None:
    templates_count = {
        **TEMPLATES,
        "observations": "Observation?patient={{context.patientId}}&_count=1",
    }
    clients = FhirClients(SETTINGS)
    before = len(fault_fhir.requests_for("ok"))
    try:
        result = await resolve(
            templates=templates_count,
            prefetch={"patient": None},
            context=CONTEXT,
            fhir_server=fault_fhir.base("ok"),
            access_token=TOKEN,
            user_id=None,
            clients=clients,
            settings=SETTINGS,
            deadline=time.monotonic() + 5,
        )
    finally:
        await clients.aclose()
    assert [r["id"] for r in result.resources] == ["c0", "c1", "o0", "o1", "o2"]
    seen = fault_fhir.requests_for("ok")[before:]
    assert len(seen) == 1 + 3  # conditions in one page, observations in three
    assert all(s.authorization == f"Bearer {TOKEN}" for s in seen)


async def test_connection_refused_is_a_412(fault_fhir: FaultServer) -> None:
    before = failures("connect")
    result, elapsed = await fetch(fault_fhir.refused_base())
    assert isinstance(result, DataUnavailable)
    assert "could not be reached" in result.message
    assert failures("connect") >= before + 1
    assert elapsed < SETTINGS.call_budget_s + SLACK_S


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_a_fault_on_essential_data_is_a_412_within_the_budget(
    fault_fhir: FaultServer, fault: str
) -> None:
    reason, words = FAULTS[fault]
    before = failures(reason)
    result, elapsed = await fetch(fault_fhir.base(fault))
    assert isinstance(result, DataUnavailable), result
    assert "could not obtain '" in result.message
    assert words in result.message
    assert failures(reason) >= before + 1
    assert elapsed < SETTINGS.call_budget_s + SLACK_S


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_a_fault_on_the_patient_read_is_a_note_and_the_rest_arrives(
    fault_fhir: FaultServer, fault: str
) -> None:
    result, elapsed = await fetch(fault_fhir.base(fault, "Patient"))
    assert isinstance(result, PrefetchResult), result
    kinds = [r["resourceType"] for r in result.resources]
    assert kinds == ["Condition"] * 2 + ["Observation"] * 3
    assert result.fetched_keys == ("conditions", "observations")
    assert [n.resource for n in result.notes] == ["FHIR server 'patient'"]
    assert "not (completely) fetched" in result.notes[0].problem
    assert elapsed < SETTINGS.call_budget_s + SLACK_S


async def test_the_call_budget_cuts_a_request_shorter_than_its_own_timeout(
    fault_fhir: FaultServer,
) -> None:
    settings = replace(SETTINGS, fhir_timeout_s=10.0, call_budget_s=1.0)
    before = failures("budget")
    result, elapsed = await fetch(fault_fhir.base("slow"), settings=settings)
    assert isinstance(result, DataUnavailable)
    assert "time budget ran out" in result.message
    assert failures("budget") >= before + 1
    assert elapsed < settings.call_budget_s + SLACK_S


async def test_the_call_budget_bounds_paging_through_slow_pages(fault_fhir: FaultServer) -> None:
    # 0.3 s per page, 50 pages allowed, 1 s budget: the budget ends it, not the page limit.
    settings = replace(SETTINGS, fhir_timeout_s=5.0, fhir_max_pages=50)
    result, elapsed = await fetch(fault_fhir.base("drip"), settings=settings)
    assert isinstance(result, DataUnavailable)
    assert "time budget ran out" in result.message
    assert elapsed < settings.call_budget_s + SLACK_S


async def test_a_slow_patient_read_ends_at_the_budget_with_a_note(fault_fhir: FaultServer) -> None:
    settings = replace(SETTINGS, fhir_timeout_s=10.0)
    result, elapsed = await fetch(fault_fhir.base("slow", "Patient"), settings=settings)
    assert isinstance(result, PrefetchResult)
    assert result.fetched_keys == ("conditions", "observations")
    assert "time budget ran out" in result.notes[0].problem
    assert elapsed < settings.call_budget_s + SLACK_S


async def test_a_redirect_does_not_carry_the_token_anywhere(fault_fhir: FaultServer) -> None:
    before = len(fault_fhir.requests_for("ok"))
    result, _ = await fetch(fault_fhir.base("redirect"))
    assert isinstance(result, DataUnavailable)
    assert len(fault_fhir.requests_for("ok")) == before


async def test_an_off_base_next_link_is_never_requested(fault_fhir: FaultServer) -> None:
    result, _ = await fetch(fault_fhir.base("offbase"))
    assert isinstance(result, DataUnavailable)
    assert fault_fhir.requests_for("elsewhere") == []


async def test_looping_next_links_are_requested_once_each(fault_fhir: FaultServer) -> None:
    before = len(fault_fhir.requests_for("loop"))
    result, _ = await fetch(fault_fhir.base("loop"), prefetch={"patient": None, "conditions": None})
    assert isinstance(result, DataUnavailable)
    targets = [s.target for s in fault_fhir.requests_for("loop")[before:]]
    assert len(targets) >= 2
    assert len(targets) == len(set(targets))
