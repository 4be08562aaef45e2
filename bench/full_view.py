"""What the full assessment view costs to render, per fixture patient, in process.

Usage::

    .venv/bin/python bench/full_view.py            # every fixture patient
    .venv/bin/python bench/full_view.py --repeat 50

Each fixture's demo view (``GET /demo/view/<fixture>``: the hook's evaluation, the segment
map, the trend data, the page template and the draft ServiceRequest validated with
fhir.resources R4B) is requested through ``httpx.ASGITransport`` against the full view's
routes only; the figures are the median and the worst of the per-fixture medians (ms) and
the page size. The SMART path adds the EHR's FHIR reads, which depend on the EHR. No timing
is asserted anywhere: this only reports.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx
from starlette.applications import Starlette

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from service.demo import DEFAULT_FIXTURES_DIR, load_manifest  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.smart import full_view_routes  # noqa: E402


async def measure(repeat: int) -> None:
    app = Starlette(routes=full_view_routes(Settings()))
    slugs = [p.slug for p in load_manifest(DEFAULT_FIXTURES_DIR).patients]
    medians: list[float] = []
    sizes: list[int] = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        await client.get(f"/demo/view/{slugs[0]}")  # first call: imports, templates, R4B models
        for slug in slugs:
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                page = await client.get(f"/demo/view/{slug}")
                times.append((time.perf_counter() - started) * 1000)
                assert page.status_code == 200, slug
            medians.append(statistics.median(times))
            sizes.append(len(page.content))
    print(f"fixtures: {len(slugs)}, {repeat} requests each")
    print(f"render ms: median {statistics.median(medians):.1f}, worst {max(medians):.1f}")
    kib = [size / 1024 for size in sizes]
    print(f"page KiB: median {statistics.median(kib):.1f}, largest {max(kib):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    asyncio.run(measure(parser.parse_args().repeat))


if __name__ == "__main__":
    main()
