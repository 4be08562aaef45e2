"""JSON responses serialised with orjson, and the error bodies of cards.md "Errors".

Every non-2xx answer of the CDS endpoints except 401 is built by :func:`error_response`,
so every error path gets the same body. CDS Hooks 2.0 says nothing about error bodies and
the project's contract is ``{"error": "<message>"}``; the 3.0 ballot asks for a FHIR
OperationOutcome ("Returning OperationOutcome"). A JSON object cannot be both: an
OperationOutcome with an extra ``error`` key is not valid FHIR, and strict FHIR parsers
refuse it. So the body depends on what the client asks for (``Accept``):

* ``application/fhir+json`` preferred (listed, with a quality at least that of
  ``application/json``): the bare OperationOutcome, ``Content-Type: application/fhir+json``;
* anything else (``application/json``, ``*/*``, no ``Accept`` at all, which is what EHRs
  send today): ``{"error": "<message>", "outcome": <OperationOutcome>}`` as
  ``application/json``. A 2.0 client reads ``error`` and ignores the extra key; the
  ``outcome`` member is a complete, valid OperationOutcome for a 3.0 client or a log
  viewer that wants one.

The choice is made when the response is sent (the ASGI scope carries the request
headers), so the exception handlers in ``app.py`` build it without seeing the request.
Both bodies say the same thing: ``diagnostics`` is the message, which names the field and
never quotes more than a short, truncated piece of the request (no PHI, no trace).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

JSON = "application/json"
FHIR_JSON = "application/fhir+json"

ISSUE_TYPES: Final[Mapping[int, str]] = {
    400: "invalid",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    408: "timeout",
    412: "processing",
    413: "too-long",
    415: "not-supported",
    429: "throttled",
    500: "exception",
    502: "transient",
    503: "transient",
    504: "timeout",
}
"""HTTP status -> FHIR R4 IssueType code (http://hl7.org/fhir/issue-type). 412 is
``processing`` as in the 3.0 ballot's own 412 example."""


class ORJSONResponse(Response):
    """A JSON response rendered by orjson (several times faster than ``json`` on cards)."""

    media_type = JSON

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json_response(
    content: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return ORJSONResponse(content, status_code=status, headers=headers)


def operation_outcome(status: int, message: str) -> dict[str, Any]:
    """A FHIR R4 OperationOutcome with one issue: severity, IssueType code and ``message``."""
    code = ISSUE_TYPES.get(status) or ("exception" if status >= 500 else "processing")
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": message}],
    }


def prefers_fhir(accept: str | None) -> bool:
    """Whether an ``Accept`` header prefers ``application/fhir+json`` to ``application/json``.

    Only the two exact media types count (with their ``q`` values, RFC 9110 §12.5.1);
    wildcards such as ``*/*`` or ``application/*`` keep the 2.0 shape, since they are what
    clients that never heard of OperationOutcome send.
    """
    if not accept:
        return False
    fhir_q: float | None = None
    json_q = 0.0
    for part in accept.split(",")[:32]:  # a bounded header: nobody lists 32 media types
        media, *params = (piece.strip() for piece in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        media = media.lower()
        if media == FHIR_JSON:
            fhir_q = q if fhir_q is None else max(fhir_q, q)
        elif media == JSON:
            json_q = max(json_q, q)
    return fhir_q is not None and fhir_q > 0.0 and fhir_q >= json_q


def _accept(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"accept":
            return str(value.decode("latin-1"))
    return None


class ErrorResponse(ORJSONResponse):
    """An error answer whose body follows the client's ``Accept`` (see the module docstring)."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        self.outcome = operation_outcome(status, message)
        self._given_headers = {**(headers or {}), "Vary": "Accept"}
        super().__init__(
            {"error": message, "outcome": self.outcome},
            status_code=status,
            headers=self._given_headers,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "http" and prefers_fhir(_accept(scope)):
            fhir = Response(
                orjson.dumps(self.outcome),
                status_code=self.status_code,
                headers=self._given_headers,
                media_type=FHIR_JSON,
            )
            await fhir(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """The error answer for ``status``: ``{"error": message, "outcome": OperationOutcome}``,
    or the bare OperationOutcome for a client that prefers ``application/fhir+json``.
    The message is for the integrator, never a trace."""
    return ErrorResponse(status, message, headers)


def unauthorized() -> Response:
    """The bare 401 of CDS Hooks (cards.md): no body, not even an OperationOutcome, so
    nothing about why is revealed to the caller; the reason is in the service's log."""
    return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
