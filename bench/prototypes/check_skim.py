"""Does the skim prototype change any answer? Compare it with today's path on every input.

Usage::

    .venv/bin/python bench/prototypes/check_skim.py

For every fixture hook request (``fixtures/patients/*.json``), for W1 and W2, and for
fixture requests with junk mixed in (entries that are not objects, resources without
resourceType, codings of the wrong type, OperationOutcome entries, another patient's
Observations, US Core example resources when ``../shared/reference/us-core-examples``
exists), it runs today's path (``parse_json`` -> ``parse_hook_request`` ->
``prefetch.resolve`` -> ``assess``) and the same with
:func:`bench.prototypes.skim.skim_json` instead of the full parse, and compares the
assessments field by field (verdict, rule, options, facts, scores, missing items and
data-quality notes). It prints each difference and exits non-zero if there is one.
It also prints how many resources each path built, the point of the prototype.
"""

from __future__ import annotations

import asyncio
import copy
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import workloads  # noqa: E402
from bench.prototypes.skim import _SKIPPED, skim_json  # noqa: E402
from service.clinical.engine import assess  # noqa: E402
from service.clinical.model import Assessment  # noqa: E402
from service.fhir import prefetch  # noqa: E402
from service.fhir.client import FhirClients  # noqa: E402
from service.protocol import find_service, parse_hook_request  # noqa: E402
from service.protocol.jsonbody import parse_json  # noqa: E402
from service.settings import Settings  # noqa: E402

SETTINGS = Settings(max_body_bytes=16 * 1024 * 1024)
SERVICE = find_service("liver-metastasis-resectability")
US_CORE = ROOT.parent / "shared" / "reference" / "us-core-examples"


def assessment(data: Any, at: datetime) -> tuple[Assessment, int]:
    assert SERVICE is not None
    hook = parse_hook_request(data, SERVICE)

    async def run() -> prefetch.PrefetchResult:
        return await prefetch.resolve(
            templates=SERVICE.prefetch,
            prefetch=hook.prefetch,
            context=hook.context,
            fhir_server=None,
            access_token=None,
            user_id=hook.user_id,
            clients=FhirClients(SETTINGS),
            settings=SETTINGS,
            deadline=1e18,
        )

    resolved = asyncio.run(run())
    result = assess(resolved.resources, patient_id=hook.patient_id, at=at, notes=resolved.notes)
    stub = _SKIPPED["resource"]
    return result, sum(1 for r in resolved.resources if r is not stub)


def with_junk(request: dict[str, Any]) -> dict[str, Any]:
    """The request with malformed and foreign entries added to its Observation Bundle."""
    out = copy.deepcopy(request)
    bundle = out["prefetch"].get("observations")
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return out
    patient = out["context"]["patientId"]
    entries = bundle.setdefault("entry", [])
    entries += [
        "not an object",
        {"resource": None},
        {"resource": {"id": "no-type"}},
        {"resource": {"resourceType": "Observation", "id": "j1", "code": {"coding": "x"}}},
        {"resource": {"resourceType": "Observation", "id": "j2", "code": {"coding": [7]}}},
        {
            "resource": {
                "resourceType": "Observation",
                "id": "j3",
                "code": {"coding": [{"system": 5, "code": "1975-2"}]},
                "subject": {"reference": f"Patient/{patient}"},
            }
        },
        {
            "search": {"mode": "outcome"},
            "resource": {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "warning", "code": "incomplete"}],
            },
        },
        {
            "resource": {
                "resourceType": "Observation",
                "id": "other-patient-bili",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "1975-2"}]},
                "subject": {"reference": "Patient/someone-else"},
                "effectiveDateTime": "2026-05-20",
                "valueQuantity": {"value": 9.9, "unit": "mg/dL", "code": "mg/dL"},
            }
        },
    ]
    if US_CORE.is_dir():
        for path in sorted(US_CORE.rglob("*.json"))[:200]:
            try:
                resource = json.loads(path.read_text())
            except ValueError:
                continue
            if isinstance(resource, dict) and resource.get("resourceType") == "Observation":
                entries.append({"resource": resource})
    return out


def compare(name: str, body: bytes, at: datetime) -> bool:
    today, built_today = assessment(parse_json(body, max_depth=SETTINGS.max_json_depth), at)
    skim, built_skim = assessment(skim_json(body, orjson.loads), at)
    if today == skim:
        print(f"  same   {name:<58} resources built {built_today:>6} -> {built_skim:>6}")
        return True
    print(f"  DIFFER {name}")
    for field in today.__dataclass_fields__:
        a, b = getattr(today, field), getattr(skim, field)
        if a != b:
            print(f"      {field}: today {a!r}\n      {' ' * len(field)}  skim  {b!r}")
    return False


def main() -> int:
    manifest = json.loads((ROOT / "fixtures" / "manifest.json").read_text())
    at = datetime.fromisoformat(manifest["evaluated_at"].replace("Z", "+00:00"))
    ok = True
    print("fixtures:")
    for entry in manifest["patients"]:
        request = json.loads((ROOT / "fixtures" / entry["file"]).read_text())
        if "prefetch" not in request:
            continue
        ok &= compare(entry["file"], orjson.dumps(request), at)
        ok &= compare(entry["file"] + " + junk", orjson.dumps(with_junk(request)), at)
    print("workloads:")
    for name in ("w1", "w2"):
        request = getattr(workloads, name)()
        ok &= compare(name, orjson.dumps(request), workloads.EVALUATED_AT)
        ok &= compare(name + " + junk", orjson.dumps(with_junk(request)), workloads.EVALUATED_AT)
    print("no difference" if ok else "DIFFERENCES FOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
