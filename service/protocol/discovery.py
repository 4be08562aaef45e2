"""The discovery response (``GET /cds-services``), generated from the service declarations."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from service.protocol.declaration import ServiceDeclaration


def discovery_document(services: Iterable[ServiceDeclaration]) -> dict[str, Any]:
    """``{"services": [...]}`` as CDS Hooks 2.0 Discovery describes it (an empty list is valid)."""
    return {"services": [service.discovery_entry() for service in services]}
