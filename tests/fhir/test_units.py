"""UCUM conversion to the canonical units of fhir-mapping.md §5."""

from __future__ import annotations

import pytest

from service.fhir.units import UnitError, convert, round_to


@pytest.mark.parametrize(
    ("kind", "value", "code", "expected"),
    [
        ("bilirubin", 34.2, "umol/L", 2.0),  # 1.9995 -> 2.0 at 0.1 mg/dL
        ("bilirubin", 17.1, "umol/L", 1.0),
        ("bilirubin", 1.96, "mg/dL", 2.0),
        ("bilirubin", 51.3, "µmol/L", 3.0),  # micro sign accepted as 'u'
        ("albumin", 35, "g/L", 3.5),
        ("albumin", 3.45, "g/dL", 3.5),
        ("creatinine", 88.42, "umol/L", 1.0),
        ("creatinine", 1.2, "mg/dl", 1.2),  # case variant of the same UCUM code
        ("inr", 1.25, "{INR}", 1.25),
        ("inr", 1.25, "1", 1.25),
        ("inr", 1.25, None, 1.25),
        ("platelets", 85, "10*3/uL", 85),
        ("platelets", 85, "10*9/L", 85),
        ("platelets", 85000, "/uL", 85),
        ("sodium", 131, "meq/L", 131),
        ("sodium", 131, "mmol/L", 131),
        ("afp", 12, "ug/L", 12),
        ("cea", 250, "ng/mL", 250),
        ("tumour-size", 28, "mm", 2.8),
        ("tumour-size", 3.1, "cm", 3.1),
        ("flr", 35, "%", 35),
    ],
)
def test_accepted_units(kind: str, value: float, code: str | None, expected: float) -> None:
    assert convert(kind, value, code).value == pytest.approx(expected)


def test_original_kept_when_converted() -> None:
    q = convert("bilirubin", 34.2, "umol/L")
    assert (q.unit, q.original) == ("mg/dL", "34.2 umol/L")
    assert q.unrounded == pytest.approx(34.2 / 17.104)
    assert convert("bilirubin", 2.0, "mg/dL").original is None


@pytest.mark.parametrize(
    ("kind", "value", "code"),
    [
        ("bilirubin", 1.0, None),  # unit needed
        ("bilirubin", 1.0, "mmol/L"),  # not an accepted unit for bilirubin
        ("inr", 12.0, "s"),  # PT seconds are never an INR
        ("albumin", 4.0, "mg/dL"),
        ("platelets", 85, "K/uL"),  # not UCUM
        ("bilirubin", -0.1, "mg/dL"),
        ("bilirubin", 0, "mg/dL"),
        ("bilirubin", 101, "mg/dL"),
        ("inr", 21, "{INR}"),
        ("tumour-size", 600, "mm"),
        ("flr", 120, "%"),
        ("sodium", 20, "mmol/L"),
    ],
)
def test_rejected(kind: str, value: float, code: str | None) -> None:
    with pytest.raises(UnitError):
        convert(kind, value, code)


@pytest.mark.parametrize("unit_text", ["s", "sec", "seconds", "mg/dL"])
def test_an_inr_without_unit_code_whose_unit_text_is_a_unit_is_rejected(unit_text: str) -> None:
    # fhir-mapping.md §5: INR is unitless, "never PT seconds"; the text cannot make it an INR,
    # but it can say that the number is not one.
    with pytest.raises(UnitError):
        convert("inr", 12.5, None, unit_text)


@pytest.mark.parametrize("unit_text", [None, "", "INR", "{INR}", "1", "ratio"])
def test_an_inr_without_unit_code_is_read_when_its_unit_text_says_unitless(
    unit_text: str | None,
) -> None:
    assert convert("inr", 1.3, None, unit_text).value == 1.3


def test_round_half_up_as_on_paper() -> None:
    assert round_to(1.15, 1) == 1.2  # binary 1.1499999...
    assert round_to(1.25, 1) == 1.3  # not banker's 1.2
    assert round_to(2.04999, 1) == 2.0
    assert round_to(7.0, None) == 7.0
