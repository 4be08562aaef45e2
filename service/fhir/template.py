"""Prefetch templates -> relative FHIR request URLs (CDS Hooks 2.0, "Prefetch tokens").

A template such as ``Condition?patient={{context.patientId}}`` is rendered with the hook
call's context into ``Condition?patient=123`` before the service fetches it itself.

Why a module of its own: the token values come from the request body, i.e. from the
caller. Every value is percent-encoded before it lands in the URL, so a patient id such as
``123&code=x`` or ``../../admin`` cannot add query parameters or leave the resource path.
A template whose token cannot be filled is not fetched at all (:class:`TemplateError`):
a query with an empty or missing patient id could return *every* patient's data.

CDS Hooks 2.0 allows only root-level primitive context fields as tokens; the 3.0 ballot
("Prefetch tokens containing Simpler FHIRPath") lets a token traverse into context objects
such as ``draftOrders``: ``{{context.draftOrders.entry.resource.ofType(ServiceRequest).id}}``,
with ``ofType()`` and ``resolve()`` (a relative reference ``Type/id`` read as that resource's
type and id, without fetching it), a collection of values joined by commas (an "or" in a
search parameter). The shorthand ``{{context.draftOrders.ServiceRequest.id}}`` (a
capitalised step selects the resources of that type inside a Bundle) means the same.
Root-level tokens render exactly as in 2.0; a nested token that selects nothing is an
error like a missing field. Not supported (a :class:`TemplateError`, so the key is not
fetched): ``today()`` arithmetic and ``%prefetchKey`` variables.
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


MAX_PATH_STEPS: Final = 16
"""Longest nested token path (steps), so a template cannot make us walk without end."""
MAX_PATH_VALUES: Final = 100
"""Most values one nested token may render (a draft order bundle holds a handful)."""

_STEP_RE: Final = re.compile(r"([A-Za-z][A-Za-z0-9_]*)(?:\((\w*)\))?")
_RESOURCE_TYPE_RE: Final = re.compile(r"[A-Z][A-Za-z]{1,63}")


def _steps(name: str, path: str) -> list[tuple[str, str | None]]:
    """``draftOrders.entry.resource.ofType(ServiceRequest).id`` -> [(name, argument)...]."""
    steps: list[tuple[str, str | None]] = []
    for text in path.split("."):
        match = _STEP_RE.fullmatch(text.strip())
        if match is None:
            raise TemplateError(f"{{{{{name}}}}}: {text!r} is not a path step this service reads")
        step, argument = match.group(1), match.group(2)
        if argument is not None or text.strip().endswith(")"):
            if step not in ("ofType", "resolve"):
                raise TemplateError(f"{{{{{name}}}}}: {step}() is not supported")
            if step == "ofType" and not _RESOURCE_TYPE_RE.fullmatch(argument or ""):
                raise TemplateError(f"{{{{{name}}}}}: ofType() needs a FHIR resource type")
            steps.append((step, argument or ""))
        else:
            steps.append((step, None))
    if len(steps) > MAX_PATH_STEPS:
        raise TemplateError(f"{{{{{name}}}}} has more than {MAX_PATH_STEPS} steps")
    return steps


def _resources_of_type(item: Any, resource_type: str) -> list[Any]:
    """A capitalised step: ``item`` itself if it is that resource, else the resources of that
    type among a Bundle's entries."""
    if not isinstance(item, Mapping):
        return []
    if item.get("resourceType") == resource_type:
        return [item]
    entries = item.get("entry") if item.get("resourceType") == "Bundle" else None
    if not isinstance(entries, list):
        return []
    return [
        entry["resource"]
        for entry in entries
        if isinstance(entry, Mapping)
        and isinstance(entry.get("resource"), Mapping)
        and entry["resource"].get("resourceType") == resource_type
    ]


_RESOLVABLE_RE: Final = re.compile(r"[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,200}")
"""A relative reference ``resolve()`` reads. Ids up to 200 characters: some EHRs issue ids
longer than FHIR's 64 (the 3.0 ballot's own example does); the id is encoded anyway."""


def _element(item: Any, step: str) -> list[Any]:
    """The values of element ``step`` of ``item``; FHIRPath names a choice element by its
    stem (``medication`` finds ``medicationReference``)."""
    if not isinstance(item, Mapping):
        return []
    value = item.get(step)
    if value is None:
        value = next(
            (
                item[key]
                for key in item
                if key.startswith(step) and key[len(step) : len(step) + 1].isupper()
            ),
            None,
        )
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _resolve(item: Any) -> list[Any]:
    """``resolve()`` on a Reference ``Type/id``: that resource's type and id (never fetched)."""
    reference = item.get("reference") if isinstance(item, Mapping) else None
    if not isinstance(reference, str) or not _RESOLVABLE_RE.fullmatch(reference):
        return []
    resource_type, _, ident = reference.partition("/")
    return [{"resourceType": resource_type, "id": ident}]


def _path_values(name: str, path: str, context: Mapping[str, Any]) -> str:
    """A 3.0-style nested token: walk ``path`` from ``context``, comma-join the values."""
    items: list[Any] = [context]
    for step, argument in _steps(name, path):
        found: list[Any] = []
        for item in items:
            if step == "ofType" and argument is not None:
                if isinstance(item, Mapping) and item.get("resourceType") == argument:
                    found.append(item)
            elif step == "resolve" and argument is not None:
                found.extend(_resolve(item))
            elif _RESOURCE_TYPE_RE.fullmatch(step) and step not in ("ofType", "resolve"):
                found.extend(_resources_of_type(item, step))
            else:
                found.extend(_element(item, step))
        items = found[: MAX_PATH_VALUES + 1]
    if not items:
        raise TemplateError(f"{name} is missing (the path selects nothing)")
    if len(items) > MAX_PATH_VALUES:
        raise TemplateError(f"{name} selects more than {MAX_PATH_VALUES} values")
    values = list(dict.fromkeys(_encode(_value_text(name, item)) for item in items))
    return ",".join(values)


def render(template: str, context: Mapping[str, Any], user_id: str | None = None) -> str:
    """Replace every ``{{...}}`` token of ``template``; raise :class:`TemplateError` when
    one cannot be filled.

    Tokens: ``{{context.<field>}}`` for any root-level primitive field of ``context``, a
    3.0-style path into a context object (module docstring), and the four user tokens
    derived from ``user_id`` (default: ``context.userId``). Values are percent-encoded
    (``/``, ``&``, ``=``, ``?``, ``#``, spaces, ...), except a value that is exactly a
    relative reference ``Type/id``; the commas joining a path's values are kept.
    """
    user = user_tokens(user_id if user_id is not None else context.get("userId"))

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("context."):
            field = name.removeprefix("context.")
            if not field:
                raise TemplateError(f"{{{{{name}}}}} names no root-level context field")
            if "." in field or "(" in field:
                return _path_values(name, field, context)
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
