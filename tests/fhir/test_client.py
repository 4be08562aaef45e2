"""The FHIR client layer: pooled clients per base, one bounded GET, URL checks, metrics,
and what is (not) logged."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from service.fhir import client as client_module
from service.fhir.client import (
    FetchError,
    FhirClients,
    get_json,
    join_url,
    log_path,
    normalise_base,
    same_base,
)
from service.observability import REGISTRY
from service.settings import Settings

SETTINGS = Settings()
BASE = "https://ehr.example/fhir/R4"
TOKEN = "tok-9f8e7d-secret"


def failures(reason: str) -> float:
    value = REGISTRY.get_sample_value("liver_cds_fhir_fetch_failures_total", {"reason": reason})
    return value or 0.0


def latency_count() -> float:
    return REGISTRY.get_sample_value("liver_cds_fhir_fetch_latency_seconds_count") or 0.0


async def fetch(
    handler: Any,
    url: str = f"{BASE}/Condition?patient=p1",
    *,
    settings: Settings = SETTINGS,
    deadline_s: float = 3.0,
    token: str | None = TOKEN,
) -> Any:
    clients = FhirClients(settings, transport=httpx.MockTransport(handler))
    try:
        return await get_json(
            clients.for_base(BASE),
            url,
            access_token=token,
            settings=settings,
            deadline=time.monotonic() + deadline_s,
            base_url=BASE,
        )
    finally:
        await clients.aclose()


# --- FhirClients ---------------------------------------------------------------------------


async def test_one_client_per_base_reused_for_equivalent_spellings() -> None:
    clients = FhirClients(SETTINGS)
    try:
        first = clients.for_base("https://EHR.example:443/fhir/R4/")
        assert clients.for_base("https://ehr.example/fhir/R4") is first
        assert clients.for_base("https://ehr.example/fhir/R5") is not first
        assert clients.for_base("http://ehr.example/fhir/R4") is not first
        assert list(clients.bases) == [
            "https://ehr.example/fhir/R4",
            "https://ehr.example/fhir/R5",
            "http://ehr.example/fhir/R4",
        ]
    finally:
        await clients.aclose()
    assert list(clients.bases) == []
    assert first.is_closed


async def test_clients_have_explicit_timeouts_and_do_not_follow_redirects() -> None:
    settings = replace(SETTINGS, fhir_timeout_s=1.25)
    clients = FhirClients(settings)
    try:
        client = clients.for_base(BASE)
        assert client.follow_redirects is False
        assert client.timeout == httpx.Timeout(1.25)
        assert client.headers["accept"] == "application/fhir+json"
    finally:
        await clients.aclose()


async def test_the_least_recently_used_client_is_closed_beyond_the_pool_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "MAX_CLIENTS", 2)
    clients = FhirClients(SETTINGS)
    try:
        a = clients.for_base("https://a.example/fhir")
        clients.for_base("https://b.example/fhir")
        clients.for_base("https://a.example/fhir")  # a is now the most recent
        clients.for_base("https://c.example/fhir")
        assert list(clients.bases) == ["https://a.example/fhir", "https://c.example/fhir"]
        assert not a.is_closed
    finally:
        await clients.aclose()


# --- URL helpers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("https://EHR.Example/fhir/", "https://ehr.example/fhir"),
        ("https://ehr.example:443/fhir", "https://ehr.example/fhir"),
        ("http://127.0.0.1:80/fhir", "http://127.0.0.1/fhir"),
        ("http://127.0.0.1:8080/fhir/R4", "http://127.0.0.1:8080/fhir/R4"),
        ("https://ehr.example", "https://ehr.example"),
    ],
)
def test_normalise_base(given: str, normal: str) -> None:
    assert normalise_base(given) == normal


def test_join_url_puts_exactly_one_slash() -> None:
    assert join_url("https://x/fhir/", "/Patient/1") == "https://x/fhir/Patient/1"
    assert join_url("https://x/fhir", "Patient/1") == "https://x/fhir/Patient/1"


@pytest.mark.parametrize(
    ("url", "inside"),
    [
        (f"{BASE}/Observation?page=2", True),
        (f"{BASE}?_getpages=abc", True),
        ("https://EHR.example:443/fhir/R4/Observation", True),
        ("https://ehr.example/fhir/R4x/Observation", False),
        ("https://ehr.example/fhir/Observation", False),
        ("http://ehr.example/fhir/R4/Observation", False),
        ("https://evil.example/fhir/R4/Observation", False),
        ("https://ehr.example.evil.example/fhir/R4/Observation", False),
        ("not a url at all", False),
        ("https://ehr.example/fhir/R4/../../admin", False),
        ("https://ehr.example/fhir/R4/%2e%2e/%2E%2E/admin", False),
        ("https://user:pw@ehr.example/fhir/R4/Observation", False),
    ],
)
def test_same_base(url: str, inside: bool) -> None:
    assert same_base(url, BASE) is inside


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"{BASE}/Observation?patient=p1&code=1975-2", "Observation?code&patient"),
        (f"{BASE}/Patient/p1", "Patient/{id}"),
        (f"{BASE}/Patient/p1/_history/2", "Patient/{id}/..."),
        ("https://other.example/x/Condition?patient=secret-id", "x/{id}?patient"),
    ],
)
def test_log_path_keeps_no_ids_and_no_query_values(url: str, shown: str) -> None:
    assert log_path(url, BASE) == shown


# --- get_json ----------------------------------------------------------------------------------


async def test_a_200_json_body_is_returned_and_latency_counted() -> None:
    before = latency_count()
    body = await fetch(lambda r: httpx.Response(200, json={"resourceType": "Bundle"}))
    assert body == {"resourceType": "Bundle"}
    assert latency_count() == before + 1


async def test_the_request_carries_bearer_token_and_fhir_accept_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    await fetch(handler)
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert seen[0].headers["accept"] == "application/fhir+json"


@pytest.mark.parametrize(
    "status", [201, 204, 301, 302, 307, 400, 401, 403, 404, 410, 429, 500, 503]
)
async def test_any_status_but_200_is_a_status_failure(status: int) -> None:
    before = failures("status")
    with pytest.raises(FetchError) as caught:
        await fetch(lambda r: httpx.Response(status, headers={"Location": "https://elsewhere/"}))
    assert caught.value.reason == "status"
    assert caught.value.status == status
    assert f"HTTP {status}" in caught.value.detail
    assert failures("status") == before + 1


async def test_redirects_are_not_followed() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"Location": "https://attacker.example/steal"})

    with pytest.raises(FetchError, match="redirects are not followed"):
        await fetch(handler)
    assert seen == [f"{BASE}/Condition?patient=p1"]


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"", b'{"resourceType":', b"NaN"])
async def test_a_body_that_is_not_json_is_a_body_failure(body: bytes) -> None:
    with pytest.raises(FetchError) as caught:
        await fetch(lambda r: httpx.Response(200, content=body))
    assert caught.value.reason == "body"


async def test_a_declared_length_over_the_page_limit_is_refused_before_reading() -> None:
    settings = replace(SETTINGS, fhir_max_page_bytes=1000)
    read: list[int] = []

    async def stream() -> AsyncIterator[bytes]:
        read.append(1)
        yield b"x" * 5000

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": "5000"}, content=stream())

    with pytest.raises(FetchError) as caught:
        await fetch(handler, settings=settings)
    assert caught.value.reason == "size"
    assert read == []


async def test_a_streamed_body_over_the_page_limit_stops_being_read() -> None:
    settings = replace(SETTINGS, fhir_max_page_bytes=100_000)
    chunks_read: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for i in range(10_000):
            chunks_read.append(i)
            yield b" " * 10_000

    with pytest.raises(FetchError) as caught:
        await fetch(lambda r: httpx.Response(200, content=endless()), settings=settings)
    assert caught.value.reason == "size"
    assert len(chunks_read) < 20


async def test_a_spent_budget_makes_no_request() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    before = failures("budget")
    with pytest.raises(FetchError) as caught:
        await fetch(handler, deadline_s=-0.1)
    assert caught.value.reason == "budget"
    assert seen == []
    assert failures("budget") == before + 1


async def test_connection_errors_are_connect_failures() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(FetchError) as caught:
        await fetch(handler)
    assert caught.value.reason == "connect"
    assert caught.value.__suppress_context__


async def test_protocol_errors_are_network_failures() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed connection", request=request)

    with pytest.raises(FetchError) as caught:
        await fetch(handler)
    assert caught.value.reason == "network"


async def test_neither_token_nor_patient_id_nor_query_values_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"{BASE}/Observation?patient=pat-4711&code=1975-2"
    with caplog.at_level(logging.DEBUG), pytest.raises(FetchError):
        await fetch(lambda r: httpx.Response(401, json={}), url)
    records = [r for r in caplog.records if r.name.startswith("liver_cds")]
    assert records, "a failed fetch is logged"
    # httpx's own INFO line names the full URL; observability.configure_logging keeps the
    # httpx logger at WARNING in the service. Our records must be clean by themselves.
    text = " ".join(f"{r.getMessage()} {vars(r)}" for r in records)
    assert TOKEN not in text
    assert "pat-4711" not in text and "1975-2" not in text
    assert any(getattr(r, "fhir_base", None) == BASE for r in records)
    assert any(getattr(r, "path", None) == "Observation?code&patient" for r in records)
