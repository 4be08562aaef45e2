"""pytest fixture ``fault_fhir``: the fault-injecting FHIR server of :mod:`.server`.

Registered in ``tests/conftest.py`` (``pytest_plugins``); session scope, loopback only.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import FaultServer


@pytest.fixture(scope="session")
def fault_fhir() -> Iterator[FaultServer]:
    """The fault server on a free loopback port: ``.base(fault, scope)``, ``.seen``."""
    with FaultServer().running() as server:
        yield server
