"""The project's own code systems, named once.

A leaf module (it imports nothing of the service): the protocol layer (the audit reads the
treatment option a suggestion proposed), the FHIR layer (an order-sign draft order coded with
a treatment option) and the renderer (cards, suggestions) all refer to the same systems, and
an EHR that maps them must see exactly one spelling.
"""

from __future__ import annotations

from typing import Final

TREATMENT_OPTION_SYSTEM: Final = "https://liver-cds.org/fhir/CodeSystem/treatment-option"
"""The treatment options of the decision table (suggestions, draft orders)."""

CARD_TOPIC_SYSTEM: Final = "https://liver-cds.org/fhir/CodeSystem/card-topic"
"""Card topics: the verdicts, data-needed and order-check."""
