"""W3: the FHIR fetch path, against the real Medplum FHIR R4 server of the tests.

The hook request carries no prefetch, only ``fhirServer`` (the local Medplum server) and
``fhirAuthorization`` with its bearer token, so every call makes the service render the
three prefetch queries, fetch them over pooled HTTP connections (the Condition search
spans two pages of 20), and assess what came back: W1's patient, its Conditions and the
Observations with the codes the rules read (the server filters the 300 unrelated ones
out by code, as an EHR's FHIR server would). Auth is off in the benchmark, which is what
allows a loopback ``http`` fhirServer.

The floor for W3 receives the same small request and answers ``{"cards": []}``: the
ratio is the price of the whole fetch, including the FHIR server's own time (Node on the
same two cores), so W3 figures say more about the machine than about the service.

    from bench.fhir_fetch import w3_setup
    with w3_setup() as w3:
        ... w3.body (the hook request), w3.server.base, w3.server.token ...
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import workloads  # noqa: E402
from tests.fhir_server.fixture import MedplumServer, ensure_installed  # noqa: E402


@dataclass(frozen=True)
class W3Setup:
    body: bytes
    """The hook request (no prefetch, fhirServer + fhirAuthorization)."""
    server: MedplumServer
    resources: int
    """How many resources the FHIR server holds for the bench patient."""


@contextlib.contextmanager
def w3_setup() -> Iterator[W3Setup]:
    """Install (first time: npm), start and load the Medplum server; stop it afterwards.

    Raises :class:`tests.fhir_server.fixture.MedplumUnavailable` when it cannot run on
    this machine (no npm, registry unreachable).
    """
    ensure_installed()
    resources = workloads.w3_resources()
    with MedplumServer() as fhir:
        fhir.load(resources)
        _check_loaded(fhir)
        body = orjson.dumps(workloads.w3(fhir.base, fhir.token))
        yield W3Setup(body=body, server=fhir, resources=len(resources))


def _check_loaded(fhir: MedplumServer) -> None:
    """The server answers the Condition search the service will make (sanity check)."""
    url = f"{fhir.base}/Condition?patient={workloads.PATIENT_ID}"
    response = httpx.get(url, headers=fhir.headers, timeout=30)
    response.raise_for_status()
    total = response.json().get("total")
    if total is not None and total < 2:
        raise RuntimeError(f"the FHIR server holds {total} Conditions for the bench patient")
