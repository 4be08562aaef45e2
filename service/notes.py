"""The data-quality note: a resource skipped or read with a caveat, named without contents.

A leaf module on purpose: the FHIR layer (``service/fhir``) writes these notes while
reading, the clinical engine passes them on in its assessment, and the card renderer shows
them. Neither layer owns the type, so both import it from here and ``service/fhir`` never
imports ``service/clinical`` (the flow points one way: resources -> facts).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataQualityNote:
    """A resource that was skipped or read with a caveat, named without its contents."""

    resource: str
    """``"Observation/abc"``, or ``"Observation (no id)"``, or ``"Bundle entry 7"``."""
    problem: str
    """What was wrong, in words, never the resource's contents (no PHI)."""
