"""UCUM unit conversion to the canonical units of fhir-mapping.md §5.

Conversion is keyed on ``valueQuantity.code`` (the UCUM code), never on the free-text
``unit``: ``"mg/dL"`` typed by a person may mean anything, the UCUM code cannot. The accepted
codes per quantity are exactly the spec's; spelling variants that cannot mean anything else
(``mg/dl``, ``µmol/L`` with a micro sign) are accepted as the same code.

The converted value is rounded to the canonical unit's reporting precision (bilirubin,
creatinine and albumin to 0.1) for display; rule set v2 compares cut-offs on the unrounded
value, and a bilirubin or albumin sent in SI units on the SI bands in its own unit, so the
value as sent is kept too (``Quantity.reported``). Rounding is half-up as on paper (never
binary banker's rounding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import msgspec

from service.fhir.codes import ObservationKind


class Quantity(msgspec.Struct, frozen=True, gc=False):
    """A quantity converted to its canonical unit."""

    value: float
    """Rounded to the reporting precision when the unit has one (the value cut-offs see)."""
    unrounded: float
    """Converted, not rounded (formulas defined in another unit, e.g. ALBI in umol/L, use it)."""
    unit: str
    """Canonical unit for display, e.g. ``"mg/dL"``."""
    original: str | None
    """``"34.2 umol/L"`` when a conversion happened, else None."""
    reported: float | None = None
    """The value as sent, in ``reported_code`` (v2: cut-offs written for that unit compare it
    unrounded, e.g. bilirubin in umol/L against the SI Child-Pugh bands)."""
    reported_code: str | None = None
    """The accepted UCUM code the value was sent in (``"1"`` for a unitless INR)."""


class UnitError(ValueError):
    """The unit is missing, unknown for this quantity, or the value is out of physical sense."""


@dataclass(frozen=True, slots=True)
class UnitRule:
    canonical: str
    factors: dict[str, float]
    """Accepted UCUM code -> factor to the canonical unit (value / factor)."""
    precision: int | None
    """Reporting precision in decimals (1 = 0.1) or None (no rounding)."""
    minimum: float
    maximum: float
    """Physically sensible range of the canonical value; outside it the value is rejected."""
    minimum_exclusive: bool = False
    unitless_ok: bool = False
    """A value without unit code is accepted (INR)."""


_NO_UNIT: Final = ""

RULES: Final[dict[str, UnitRule]] = {
    "bilirubin": UnitRule("mg/dL", {"mg/dL": 1.0, "umol/L": 17.104}, 1, 0.0, 100.0, True),
    "albumin": UnitRule("g/dL", {"g/dL": 1.0, "g/L": 10.0}, 1, 0.0, 15.0, True),
    "inr": UnitRule("", {"{INR}": 1.0, "1": 1.0}, None, 0.0, 20.0, True, unitless_ok=True),
    "platelets": UnitRule(
        "10^9/L", {"10*9/L": 1.0, "10*3/uL": 1.0, "/uL": 1000.0}, None, 0.0, 5000.0
    ),
    "creatinine": UnitRule("mg/dL", {"mg/dL": 1.0, "umol/L": 88.42}, 1, 0.0, 40.0, True),
    "sodium": UnitRule("mmol/L", {"mmol/L": 1.0, "meq/L": 1.0}, None, 80.0, 200.0),
    "afp": UnitRule("ng/mL", {"ng/mL": 1.0, "ug/L": 1.0}, None, 0.0, 1.0e7),
    "cea": UnitRule("ng/mL", {"ng/mL": 1.0, "ug/L": 1.0}, None, 0.0, 1.0e6),
    "tumour-size": UnitRule("cm", {"cm": 1.0, "mm": 10.0}, None, 0.0, 50.0, True),
    "flr": UnitRule("%", {"%": 1.0}, None, 0.0, 100.0, True),
}
"""Per observation kind (codes.ObservationKind) the unit rule; sizes and FLR included."""


def _fold(code: str) -> str:
    """Case- and micro-sign-insensitive key of a UCUM code."""
    return code.strip().replace("µ", "u").replace("μ", "u").lower()


_FOLDED: Final[dict[str, dict[str, str]]] = {
    kind: {_fold(code): code for code in rule.factors} for kind, rule in RULES.items()
}


def canonical_code(kind: str, code: str | None) -> str | None:
    """The accepted UCUM code ``code`` stands for, or None when it is not accepted."""
    if code is None:
        return None
    rule = RULES[kind]
    if code in rule.factors:
        return code
    return _FOLDED[kind].get(_fold(code))


def round_to(value: float, digits: int | None) -> float:
    """Half-up rounding to ``digits`` decimals as a person would do it on paper.

    ``1.15`` -> 1.2 although the binary float is 1.149999...: a tiny epsilon (far below any
    reporting precision) absorbs the representation error. Identity when ``digits`` is None.
    """
    if digits is None:
        return value
    factor = 10.0**digits
    return math.copysign(math.floor(abs(value) * factor + 0.5 + 1e-7) / factor, value)


def _fmt(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e6 else f"{value:.0f}"


_UNITLESS_TEXTS: Final = frozenset({"", "1", "{inr}", "inr", "ratio"})
"""Free-text units that say "no unit" for a ratio such as the INR (folded with _fold)."""


def convert(
    kind: ObservationKind | str, value: float, code: str | None, unit_text: str | None = None
) -> Quantity:
    """Convert ``value`` in UCUM ``code`` to the canonical unit of ``kind``.

    ``unit_text`` (``Quantity.unit``) is never converted on; it only vetoes a quantity
    without a code that may stand unitless (the INR): ``{"value": 12.5, "unit": "s"}`` is a
    prothrombin time in seconds, never an INR (fhir-mapping.md §5: "never PT seconds").
    Raises :class:`UnitError` (message safe to show: names units, not values) when the unit
    is missing or not accepted for this quantity, or the value is outside physical sense.
    """
    rule = RULES[kind]
    if code is None or code == _NO_UNIT:
        if not rule.unitless_ok:
            raise UnitError("no UCUM unit code")
        if unit_text is not None and _fold(unit_text) not in _UNITLESS_TEXTS:
            raise UnitError(
                f"no UCUM unit code, and the unit {unit_text[:20]!r} is not a unitless {kind}"
            )
        accepted = "1"
    elif code in rule.factors:
        accepted = code  # an accepted code as it is spelled: canonical_code's first case
    else:
        found = canonical_code(kind, code)
        if found is None:
            raise UnitError(f"unit code {code[:20]!r} is not accepted for {kind}")
        accepted = found
    factor = rule.factors[accepted]
    unrounded = value / factor
    minimum = rule.minimum
    if unrounded < minimum or (rule.minimum_exclusive and unrounded <= minimum):
        raise UnitError(f"{kind} value below physical range")
    if unrounded > rule.maximum:
        raise UnitError(f"{kind} value above physical range")
    precision = rule.precision
    rounded = unrounded if precision is None else round_to(unrounded, precision)
    original = None if factor == 1.0 else f"{_fmt(value)} {accepted}"
    return Quantity(rounded, unrounded, rule.canonical, original, value, accepted)
