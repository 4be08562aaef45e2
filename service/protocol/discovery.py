"""The discovery response (``GET /cds-services``), generated from the service declarations."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from service.protocol.declaration import ServiceDeclaration

CDS_HOOKS_VERSION: Final = "2.0.1"
"""The CDS Hooks specification this service implements (the current STU2 errata release),
sent as each service's ``version`` (3.0 ballot, Discovery: "the semantic version of the CDS
Hooks specification implemented by this service"). Not 3.0.0: the service speaks 2.0 and
takes from the 3.0 ballot only what is safe for 2.0 clients (docs/protocol.md)."""


def discovery_document(
    services: Iterable[ServiceDeclaration], ruleset_version: str | None = None
) -> dict[str, Any]:
    """``{"services": [...]}`` as CDS Hooks 2.0 Discovery describes it (an empty list is valid),
    each entry carrying the spec ``version`` (a field 2.0 clients ignore).

    ``ruleset_version`` (``version`` in cards/ruleset.yaml, which the cards' source label and
    the audit records also read) ends each description, so an integrator sees which rule
    set answers without calling a hook.
    """
    entries = []
    for service in services:
        entry = {**service.discovery_entry(), "version": CDS_HOOKS_VERSION}
        if ruleset_version:
            entry["description"] = f"{entry['description']} Rule set v{ruleset_version}."
        entries.append(entry)
    return {"services": entries}
