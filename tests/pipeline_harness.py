"""Fixture requests through the service's one pipeline, as production runs it.

A fixture is a hook request (JSON file). :func:`evaluate_request` sends its bytes through
what the hook endpoint does before the pipeline (the service's own body parser, the
request check) and then :func:`service.pipeline.evaluate`; :func:`post_fixture` sends the
same bytes through the whole HTTP app. The fixture, golden and skim tests use these, so
they check the path production runs, not a copy of it.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from service.fhir.skim import body_parser
from service.pipeline import Evaluation, evaluate
from service.protocol import find_service, parse_hook_request
from service.protocol.declaration import SERVICES, ServiceDeclaration
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
MANIFEST = FIXTURES / "manifest.json"


def manifest() -> dict[str, Any]:
    """The fixture manifest, or an empty one when the fixtures are absent."""
    if not MANIFEST.is_file():
        return {"patients": [], "bundles": []}
    data: dict[str, Any] = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return data


def evaluated_at() -> datetime:
    return datetime.fromisoformat(manifest()["evaluated_at"].replace("Z", "+00:00"))


def service_for(request: dict[str, Any]) -> ServiceDeclaration:
    service = next((s for s in SERVICES if s.hook == request.get("hook")), None)
    assert service is not None, f"no service answers hook {request.get('hook')!r}"
    found = find_service(service.id)
    assert found is not None
    return found


def evaluate_request(
    request: dict[str, Any], *, at: datetime, settings: Settings | None = None
) -> Evaluation:
    """The request's bytes parsed and checked as the hook endpoint does, then evaluated."""
    return asyncio.run(evaluate_request_async(request, at=at, settings=settings))


async def evaluate_request_async(
    request: dict[str, Any], *, at: datetime, settings: Settings | None = None
) -> Evaluation:
    """:func:`evaluate_request` for a test that already runs an event loop."""
    settings = settings or Settings()
    service = service_for(request)
    body = orjson.dumps(request)
    data = body_parser(service.prefetch, strict=settings.strict_fhir)(body, settings.max_json_depth)
    hook = parse_hook_request(data, service)
    return await evaluate(service, hook, settings=settings, at=at)


def load(file: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / file).read_text(encoding="utf-8"))
    return data
