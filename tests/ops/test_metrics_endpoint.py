"""GET /metrics: the service's metrics in the Prometheus text exposition format."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from service.observability import (
    FEEDBACK_ITEMS,
    FHIR_FETCH_FAILURES,
    FHIR_FETCH_LATENCY,
    HOOK_CALLS,
    HOOK_LATENCY,
    JWT_FAILURES,
    metrics_route,
)

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "liver-metastasis-resectability"


async def scrape() -> httpx.Response:
    app = Starlette(routes=[metrics_route()])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        return await client.get("/metrics")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_are_served_in_prometheus_text_format() -> None:
    response = await scrape()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    families = {f.name: f.type for f in text_string_to_metric_families(response.text)}
    assert families["liver_cds_hook_calls"] == "counter"
    assert families["liver_cds_hook_latency_seconds"] == "histogram"
    assert families["liver_cds_fhir_fetch_latency_seconds"] == "histogram"
    assert families["liver_cds_fhir_fetch_failures"] == "counter"
    assert families["liver_cds_feedback_items"] == "counter"
    assert families["liver_cds_jwt_failures"] == "counter"


async def test_each_metric_reflects_what_the_service_counted() -> None:
    before = (await scrape()).text
    HOOK_CALLS.labels(service=SERVICE, status="200", verdict="resectable").inc()
    HOOK_LATENCY.labels(service=SERVICE).observe(0.004)
    FHIR_FETCH_LATENCY.observe(0.03)
    FHIR_FETCH_FAILURES.labels(reason="timeout").inc()
    FEEDBACK_ITEMS.labels(outcome="accepted").inc(2)
    JWT_FAILURES.labels(reason="expired").inc()
    after = (await scrape()).text

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert (
        delta("liver_cds_hook_calls_total", service=SERVICE, status="200", verdict="resectable")
        == 1
    )
    assert delta("liver_cds_hook_latency_seconds_count", service=SERVICE) == 1
    assert delta("liver_cds_hook_latency_seconds_bucket", service=SERVICE, le="0.005") == 1
    assert delta("liver_cds_hook_latency_seconds_bucket", service=SERVICE, le="0.0025") == 0
    assert delta("liver_cds_fhir_fetch_latency_seconds_count") == 1
    assert delta("liver_cds_fhir_fetch_failures_total", reason="timeout") == 1
    assert delta("liver_cds_feedback_items_total", outcome="accepted") == 2
    assert delta("liver_cds_jwt_failures_total", reason="expired") == 1


async def test_only_get_is_allowed() -> None:
    app = Starlette(routes=[metrics_route()])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        assert (await client.post("/metrics")).status_code == 405


MULTIPROCESS = textwrap.dedent(
    """
    import asyncio, sys
    import httpx
    from starlette.applications import Starlette
    from service.observability import HOOK_CALLS, metrics_route

    HOOK_CALLS.labels(service="s", status="200", verdict="resectable").inc(int(sys.argv[1]))
    if sys.argv[2] == "scrape":
        async def main():
            app = Starlette(routes=[metrics_route()])
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                print((await client.get("/metrics")).text)
        asyncio.run(main())
    """
)


def test_with_several_workers_a_scrape_sums_every_process(tmp_path: Path) -> None:
    """PROMETHEUS_MULTIPROC_DIR: one worker's /metrics shows the counts of all workers."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    def worker(count: int, action: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", MULTIPROCESS, str(count), action],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    worker(3, "count")
    text = worker(4, "scrape")
    assert (
        value(text, "liver_cds_hook_calls_total", service="s", status="200", verdict="resectable")
        == 7
    )
