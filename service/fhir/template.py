"""Prefetch templates -> relative FHIR request URLs (CDS Hooks 2.0, "Prefetch tokens").

A template such as ``Condition?patient={{context.patientId}}`` is rendered with the hook
call's context into ``Condition?patient=123`` before the service fetches it itself.

Why a module of its own: the token values come from the request body, i.e. from the
caller. Every value is percent-encoded before it lands in the URL, so a patient id such as
``123&code=x`` or ``../../admin`` cannot add query parameters or leave the resource path.
A template whose token cannot be filled is not fetched at all (:class:`TemplateError`):
a query with an empty or missing patient id could return *every* patient's data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

__all__ = ["USER_TOKENS", "TemplateError", "render", "user_tokens"]

_TOKEN_RE: Final = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")

USER_TOKENS: Final[Mapping[str, str]] = {
    "Practitioner": "userPractitionerId",
    "PractitionerRole": "userPractitionerRoleId",
    "Patient": "userPatientId",
    "RelatedPerson": "userRelatedPersonId",
}
"""Resource type of ``context.userId`` -> the user token it fills (2.0 spec table)."""

_REFERENCE_RE: Final = re.compile(r"[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}")
"""A relative reference ``Type/id`` (FHIR id syntax): the one value kept unencoded, so
the spec's own example template ``{{context.userId}}`` still renders ``Practitioner/1``."""


class TemplateError(Exception):
    """A token of the template cannot be filled from the context; ``message`` says which."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def user_tokens(user_id: str | None) -> dict[str, str]:
    """The user tokens ``context.userId`` fills: ``Practitioner/1`` -> userPractitionerId=1.

    Only the token of the user's own resource type is filled; the others stay unknown
    (a template using them is not fetched).
    """
    if not isinstance(user_id, str) or "/" not in user_id:
        return {}
    resource_type, _, ident = user_id.rpartition("/")
    # Absolute references (https://ehr/fhir/Practitioner/1) keep their last two segments.
    resource_type = resource_type.rsplit("/", 1)[-1]
    token = USER_TOKENS.get(resource_type)
    if token is None or not ident:
        return {}
    return {token: ident}


def _value_text(name: str, value: Any) -> str:
    # bool before int: True is an int in Python, and FHIR spells it "true".
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, int | float) and value == value and abs(value) != float("inf"):
        text = str(value)
    else:
        raise TemplateError(f"{name} is not a primitive value")
    if not text:
        raise TemplateError(f"{name} is empty")
    if text in (".", ".."):
        raise TemplateError(f"{name} is not a usable id")
    return text


def _encode(text: str) -> str:
    if _REFERENCE_RE.fullmatch(text):
        return text
    return quote(text, safe="")


def render(template: str, context: Mapping[str, Any], user_id: str | None = None) -> str:
    """Replace every ``{{...}}`` token of ``template``; raise :class:`TemplateError` when
    one cannot be filled.

    Tokens: ``{{context.<field>}}`` for any root-level primitive field of ``context``, and
    the four user tokens derived from ``user_id`` (default: ``context.userId``). Values are
    percent-encoded (``/``, ``&``, ``=``, ``?``, ``#``, spaces, ...), except a value that is
    exactly a relative reference ``Type/id``.
    """
    user = user_tokens(user_id if user_id is not None else context.get("userId"))

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("context."):
            field = name.removeprefix("context.")
            if not field or "." in field:
                raise TemplateError(f"{{{{{name}}}}} is not a root-level context field")
            if field not in context or context[field] is None:
                raise TemplateError(f"{name} is missing")
            return _encode(_value_text(name, context[field]))
        if name in USER_TOKENS.values():
            if name not in user:
                raise TemplateError(f"{name} cannot be derived from context.userId")
            return _encode(_value_text(name, user[name]))
        raise TemplateError(f"{{{{{name}}}}} is not a CDS Hooks prefetch token")

    rendered = _TOKEN_RE.sub(fill, template)
    if "{{" in rendered or "}}" in rendered:
        raise TemplateError("the template has an unterminated {{ token")
    return rendered
