"""Wording templates with ``{placeholder}`` fields, as clinicians write them in ``cards/``.

Only bare names are allowed (``{disease}``, not ``{0}``, ``{x.y}`` or ``{x:>10}``), so a
template can be checked completely at load time: which fields it uses, and how long it can
get when every field takes its longest value.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from typing import Final

_FORMATTER = string.Formatter()


class TemplateError(ValueError):
    """A template that cannot be parsed or uses a field it may not use."""


def fields(template: str) -> tuple[str, ...]:
    """The placeholder names of ``template`` in order of appearance (with repeats)."""
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise TemplateError(
            f"cannot parse braces ({exc}); write literal braces as {{{{ }}}}"
        ) from None
    names: list[str] = []
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise TemplateError(f"placeholder {{{name}}} must be a plain name like {{disease}}")
        names.append(name)
    return tuple(names)


def check(template: str, allowed: Iterable[str]) -> None:
    """Raise :class:`TemplateError` when ``template`` uses a field outside ``allowed``."""
    allowed_set = set(allowed)
    unknown = [name for name in fields(template) if name not in allowed_set]
    if unknown:
        names = ", ".join("{" + n + "}" for n in sorted(allowed_set)) or "none"
        raise TemplateError(f"unknown placeholder {{{unknown[0]}}} (allowed: {names})")


fill: Final = str.format_map
"""``fill(template, values)``: ``template`` with its fields replaced (templates are checked
at load time). The method itself, not a function that calls it: a card fills a few dozen
templates per hook call, and the Python-level call of a wrapper cost more than the filling."""


def literal_length(template: str) -> int:
    """Length of ``template`` without its fields (``{{`` counts as one character)."""
    return sum(len(literal) for literal, _n, _s, _c in _FORMATTER.parse(template))


def longest(template: str, values: Mapping[str, Iterable[str]]) -> str:
    """``template`` filled with the longest value of each field.

    Filling is concatenation, so this is the longest string over every combination of the
    fields' values: checking it checks them all.
    """
    chosen = {name: max(options, key=len, default="") for name, options in values.items()}
    return fill(template, chosen)
