"""Where the time of one hook call goes, measured in process, stage by stage.

Usage::

    .venv/bin/python bench/stages.py                # W1 and W2
    .venv/bin/python bench/stages.py --workloads w1 --json stages.json

Each stage of the hot path (architecture.md: body -> JSON -> request shape -> prefetch
-> facts and rules -> cards -> response) is timed on its own with :mod:`timeit` on the
same W1/W2 bodies the HTTP benchmark sends, then the whole ASGI application is timed
through ``httpx.ASGITransport`` (lifespan run, real SQLite store, auth off) so the
difference between the sum of the stages and the whole call is what the framework,
middleware, metrics, logging and audit add. Figures are the median of several repeats
(microseconds per call). No timing is asserted anywhere: this only reports.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import workloads  # noqa: E402

SERVICE_PATH = "/cds-services/liver-metastasis-resectability"


@dataclass(frozen=True)
class Stage:
    name: str
    median_us: float
    runs: int


def time_us(fn: Callable[[], object], *, min_total_s: float = 0.3, repeat: int = 5) -> Stage:
    """Median microseconds per call of ``fn`` over ``repeat`` batches of at least
    ``min_total_s`` each (timeit's autorange picks the batch size)."""
    timer = timeit.Timer(fn)
    number, elapsed = timer.autorange()
    if elapsed < min_total_s:
        number = max(1, int(number * min_total_s / max(elapsed, 1e-9)))
    runs = timer.repeat(repeat=repeat, number=number)
    return Stage("", statistics.median(runs) / number * 1e6, number)


NOT_SUMMED = frozenset(
    {
        "orjson.loads (floor, strict)",
        "json_depth of body (strict)",
        "parse_hook_body (general skim)",
        "select (read.py)",
        "prefetch.resolve (unpack)",
        "assess (select+facts+rules)",
        "render_cards",
    }
)
"""Stages shown for comparison, or already inside another stage (select is in assess;
resolve, assess and render_cards are the parts of pipeline.evaluate, shown as its breakdown)."""


def pipeline_stages(body: bytes, settings: Any) -> list[tuple[str, Callable[[], object]]]:
    """One callable per stage of the hot path, each fed by the previous stage's output."""
    from service.clinical.engine import assess
    from service.fhir import prefetch
    from service.fhir.read import select
    from service.fhir.skim import HookBodyParser, parse_hook_body
    from service.jsondepth import json_depth
    from service.pipeline import Evaluation, evaluate, thresholds_for
    from service.protocol import find_service, parse_hook_request
    from service.protocol.audit import card_ids
    from service.protocol.jsonbody import check_repeated_envelope_keys
    from service.render.cards import RenderContext, render_cards

    service = find_service("liver-metastasis-resectability")
    assert service is not None
    parse = HookBodyParser(service.prefetch)  # what the service parses with
    data = parse(body, settings.max_json_depth)
    hook = parse_hook_request(data, service)
    at = workloads.EVALUATED_AT

    async def _resolve() -> prefetch.PrefetchResult:
        return await prefetch.resolve(
            templates=service.prefetch,
            prefetch=hook.prefetch,
            context=hook.context,
            fhir_server=None,
            access_token=None,
            user_id=hook.user_id,
            clients=None,
            settings=settings,
            deadline=1e18,
        )

    def _evaluate() -> Evaluation:
        return loop.run_until_complete(evaluate(service, hook, settings=settings, at=at))

    loop = asyncio.new_event_loop()
    resolved = loop.run_until_complete(_resolve())
    evaluation = _evaluate()
    assessment = evaluation.assessment
    thresholds = thresholds_for(settings)
    ctx = RenderContext(patient_id=hook.patient_id, cards_dir=settings.cards_dir)
    cards = evaluation.cards
    response = {"cards": cards}

    return [
        ("orjson.loads (floor, strict)", lambda: orjson.loads(body)),
        ("json_depth of body (strict)", lambda: json_depth(body, settings.max_json_depth)),
        ("parse_hook_body (general skim)", lambda: parse_hook_body(body, settings.max_json_depth)),
        ("HookBodyParser (skim+depth)", lambda: parse(body, settings.max_json_depth)),
        ("repeated-key check", lambda: check_repeated_envelope_keys(body, data)),
        ("parse_hook_request", lambda: parse_hook_request(data, service)),
        ("pipeline.evaluate (resolve+assess+cards)", _evaluate),
        ("prefetch.resolve (unpack)", lambda: loop.run_until_complete(_resolve())),
        ("select (read.py)", lambda: select(resolved.resources, hook.patient_id)),
        (
            "assess (select+facts+rules)",
            lambda: assess(
                resolved.resources,
                patient_id=hook.patient_id,
                at=at,
                notes=resolved.notes,
                thresholds=thresholds,
            ),
        ),
        ("render_cards", lambda: render_cards(assessment, ctx)),
        ("orjson.dumps response", lambda: orjson.dumps(response)),
        ("card_ids (audit)", lambda: card_ids(cards)),
    ]


async def time_asgi(body: bytes, settings: Any, seconds: float = 2.0) -> tuple[float, float]:
    """Median and p95 microseconds of whole hook calls through httpx.ASGITransport."""
    import httpx
    from asgi_lifespan import LifespanManager

    from service.app import create_app

    app = create_app(settings, clock=lambda: workloads.EVALUATED_AT)
    samples: list[float] = []
    async with LifespanManager(app) as running:  # hands the lifespan state to requests
        transport = httpx.ASGITransport(app=running.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            headers = {"content-type": "application/json"}
            for _ in range(5):  # warm-up
                r = await client.post(SERVICE_PATH, content=body, headers=headers)
                assert r.status_code == 200, r.text
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds
            while loop.time() < end or len(samples) < 20:
                t0 = loop.time()
                await client.post(SERVICE_PATH, content=body, headers=headers)
                samples.append((loop.time() - t0) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95)]


def bench_settings(tmp: str, log_level: str = "warning") -> Any:
    from service.settings import Settings

    return Settings(
        database_url=f"sqlite:///{tmp}/stages.db",
        log_level=log_level,
        log_format="json",
        demo_enabled=False,
        max_body_bytes=16 * 1024 * 1024,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="w1,w2")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument(
        "--log-level", default="warning", help="service log level for the ASGI run (info = default)"
    )
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="liver-cds-stages-")
    settings = bench_settings(tmp, args.log_level)
    out: dict[str, Any] = {}
    for name in args.workloads.split(","):
        body = orjson.dumps(getattr(workloads, name)())
        print(f"\n{name.upper()} ({len(body) / 1024:.0f} KiB)")
        rows: dict[str, float] = {}
        for label, fn in pipeline_stages(body, settings):
            stage = time_us(fn)
            rows[label] = stage.median_us
            print(f"  {label:<30}{stage.median_us:>12.1f} µs")
        core = sum(v for k, v in rows.items() if k not in NOT_SUMMED)
        print(f"  {'sum of stages':<30}{core:>12.1f} µs")
        median, p95 = asyncio.run(time_asgi(body, settings))
        # The ASGI run configured the root logger; keep later stages quiet.
        logging.getLogger().setLevel(logging.WARNING)
        print(f"  {'whole ASGI call (median)':<30}{median:>12.1f} µs   (p95 {p95:.1f})")
        print(f"  {'framework+middleware+audit':<30}{median - core:>12.1f} µs")
        out[name] = {
            "stages_us": rows,
            "sum_us": core,
            "asgi_median_us": median,
            "asgi_p95_us": p95,
        }
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
