"""SMART on FHIR scopes of ``fhirAuthorization.scope``, in v1 and v2 syntax.

CDS Hooks 2.0 defines ``fhirAuthorization.scope`` as SMART scopes without fixing the SMART
version, and EHRs send both today: SMART App Launch 1.0 (``patient/Observation.read``,
``user/*.read``) and 2.0 (``patient/Observation.rs``, optionally narrowed by search
parameters: ``patient/Observation.rs?category=laboratory``). Both are read into one typed
value so the rest of the service asks one question, "may this token read Observation?",
whatever the syntax.

Parsing never refuses a request: a scope string also carries scopes that are not about
resources (``launch``, ``openid``, ``fhirUser``, ``offline_access``, vendor scopes), and a
token the service cannot read is the FHIR server's to refuse, not ours. Tokens that are
not resource scopes are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import parse_qsl

Context = Literal["patient", "user", "system"]

MAX_SCOPES: Final = 200
"""Scopes read from one string; a longer list is read up to here (bounded work)."""

_V1: Final = re.compile(r"(patient|user|system)/(\*|[A-Z][A-Za-z]{1,63})\.(read|write|\*)")
_V2: Final = re.compile(
    r"(patient|user|system)/(\*|[A-Z][A-Za-z]{1,63})\.([cruds]{1,5})(?:\?(.*))?"
)
_V1_PERMISSIONS: Final = {
    "read": frozenset("rs"),
    "write": frozenset("cud"),
    "*": frozenset("cruds"),
}


@dataclass(frozen=True)
class ResourceScope:
    """One resource scope: who it is for, which resource type, which interactions."""

    context: Context
    resource_type: str
    """A FHIR resource type, or ``*`` for all."""
    permissions: frozenset[str]
    """SMART v2 letters: c(reate) r(ead) u(pdate) d(elete) s(earch); v1 ``read`` is ``rs``."""
    query: tuple[tuple[str, str], ...] = ()
    """SMART v2 search parameters narrowing the scope (``?category=laboratory``)."""
    smart_version: Literal[1, 2] = 2

    def allows_search(self, resource_type: str) -> bool:
        """Whether this scope lets a search of ``resource_type`` return anything."""
        return self.resource_type in ("*", resource_type) and "s" in self.permissions

    def allows_read(self, resource_type: str) -> bool:
        """Whether this scope lets a read of ``resource_type`` by id return it."""
        return self.resource_type in ("*", resource_type) and "r" in self.permissions


def parse_scope(token: str) -> ResourceScope | None:
    """One scope token as a :class:`ResourceScope`, or ``None`` if it is not a resource scope.

    ``patient/Observation.read`` (v1) and ``patient/Observation.rs`` (v2) read the same. A v2
    permission string must be in SMART's order (c, r, u, d, s, each at most once);
    anything else is not a scope this service understands and is skipped.
    """
    match = _V1.fullmatch(token)
    if match is not None:
        context, resource, action = match.groups()
        return ResourceScope(
            context=_context(context),
            resource_type=resource,
            permissions=_V1_PERMISSIONS[action],
            smart_version=1,
        )
    match = _V2.fullmatch(token)
    if match is None:
        return None
    context, resource, letters, query = match.groups()
    if "".join(ch for ch in "cruds" if ch in letters) != letters:
        return None  # out of order or repeated: not SMART v2
    return ResourceScope(
        context=_context(context),
        resource_type=resource,
        permissions=frozenset(letters),
        query=tuple(parse_qsl(query or "", keep_blank_values=True)),
        smart_version=2,
    )


def parse_scopes(text: str) -> tuple[ResourceScope, ...]:
    """Every resource scope of a space-separated scope string, in order."""
    found: list[ResourceScope] = []
    for token in text.split()[:MAX_SCOPES]:
        scope = parse_scope(token)
        if scope is not None:
            found.append(scope)
    return tuple(found)


def _context(text: str) -> Context:
    if text == "patient":
        return "patient"
    if text == "user":
        return "user"
    return "system"
