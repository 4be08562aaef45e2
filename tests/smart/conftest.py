"""Fixtures of the SMART launch tests: the test EHR in front of Medplum, and the service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .ehr import SmartEhr
from .servers import Stack, bound_socket, patient_record, serve, start

if TYPE_CHECKING:
    from fhir_server.fixture import MedplumServer


@pytest.fixture
def ehr(medplum_fhir: MedplumServer) -> Iterator[SmartEhr]:
    """The test EHR on a loopback port, its FHIR API backed by Medplum with the patient."""
    medplum_fhir.load(patient_record())
    ehr = SmartEhr(fhir_base=medplum_fhir.base, fhir_token=medplum_fhir.token)
    sock, ehr.base = bound_socket()
    with serve(ehr.app(), sock):
        yield ehr


@pytest.fixture
def stack(ehr: SmartEhr, tmp_path: Path) -> Iterator[Stack]:
    yield from start(ehr, tmp_path)
