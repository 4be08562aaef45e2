"""With authentication off, a failed fetch tells the caller nothing about the port it tried
(issue 15, item 9).

Anyone may call an unauthenticated service and name a loopback port as ``fhirServer``. If
the 412 said "could not be reached" for a closed port but "the connection failed", "did not
answer within 0.5 s", "HTTP 404" or "not JSON" for an open one, the service would map the
host's ports for the caller. Every such failure reads the same; the log keeps the reason.
With authentication required (the caller is a trusted EHR, its fhirServer on its issuer's
list) the detail stays: test_faults.py checks each one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from test_faults import SETTINGS, fetch

from service.fhir.prefetch import UNIFORM_DETAIL, DataUnavailable

if TYPE_CHECKING:
    from faults.server import FaultServer

AUTH_OFF = replace(SETTINGS, auth="off")
OPEN_PORT_FAULTS = ("reset", "close", "slow", "status-404", "status-401", "html", "huge")
"""Open ports: one that resets, one that closes, one that never answers, an HTTP server
that is not FHIR (404, 401, HTML) and one that answers too much."""


async def message(base: str) -> str:
    result, _ = await fetch(base, settings=AUTH_OFF)
    assert isinstance(result, DataUnavailable), result
    # Which key failed first ('conditions' or 'observations') is a race, not an oracle.
    return result.message.replace("'observations'", "'conditions'")


async def test_a_closed_port_and_open_ones_get_the_same_message(fault_fhir: FaultServer) -> None:
    closed = await message(fault_fhir.refused_base())
    assert UNIFORM_DETAIL in closed
    for fault in OPEN_PORT_FAULTS:
        assert await message(fault_fhir.base(fault)) == closed, fault


async def test_with_auth_required_the_detail_is_told(fault_fhir: FaultServer) -> None:
    result, _ = await fetch(fault_fhir.refused_base(), settings=replace(AUTH_OFF, auth="required"))
    assert isinstance(result, DataUnavailable)
    assert "could not be reached" in result.message
    assert UNIFORM_DETAIL not in result.message
