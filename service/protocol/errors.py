"""Protocol errors: what went wrong with a request, as the HTTP status the client gets.

Handlers raise :class:`ProtocolError` (or one of its subclasses) with a message written
for the integrator reading it; ``app.py`` turns it into ``{"error": "<message>"}`` with
the status (cards.md "Errors"). Messages name the offending field and never echo more
than a short, truncated piece of the request: error bodies end up in EHR logs.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """A request the service refuses, with the status and a clear message."""

    status: int = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(ProtocolError):
    """400: malformed JSON, wrong shape, wrong hook, missing required field."""

    status = 400


class NotFound(ProtocolError):
    """404: no service with that id."""

    status = 404


class PayloadTooLarge(ProtocolError):
    """413: the body is larger than ``LIVER_CDS_MAX_BODY_BYTES`` (checked before parsing)."""

    status = 413


class UnsupportedMediaType(ProtocolError):
    """415: the body is not declared as JSON."""

    status = 415


class PreconditionFailed(ProtocolError):
    """412: the data needed cannot be obtained (no prefetch and no usable FHIR access)."""

    status = 412


def shorten(value: object, limit: int = 60) -> str:
    """A printable, truncated rendering of a client-supplied value for an error message."""
    text = value if isinstance(value, str) else repr(value)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def type_name(value: object) -> str:
    """The JSON type name of a parsed value, for messages like "must be a string, not array"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
