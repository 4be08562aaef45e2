"""JSON responses serialised with orjson, and the error bodies of cards.md "Errors"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

JSON = "application/json"


class ORJSONResponse(Response):
    """A JSON response rendered by orjson (several times faster than ``json`` on cards)."""

    media_type = JSON

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json_response(
    content: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return ORJSONResponse(content, status_code=status, headers=headers)


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """``{"error": message}`` with ``status``; the message is for the integrator, never a trace."""
    return ORJSONResponse({"error": message}, status_code=status, headers=headers)


def unauthorized() -> Response:
    """The bare 401 of CDS Hooks: no body, so nothing about why is revealed to the caller."""
    return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
