"""Code sets of fhir-mapping.md: ICD-10-CM prefix matching and no invented codes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.fhir import codes
from service.fhir.codes import condition_tags, icd10_tags, observation_kind

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "spec" / "fhir-mapping.md"


def kinds(code: str) -> set[str]:
    return set(icd10_tags(code))


def test_icd10_matches_with_or_without_dot_and_case() -> None:
    assert kinds("C78.7") == kinds("C787") == kinds("c78.7 ") == {codes.LIVER_SECONDARY}


def test_icd10_prefix_rows() -> None:
    assert kinds("C18.7") == {"primary:colorectal"}
    assert kinds("C19") == kinds("C20") == {"primary:colorectal"}
    assert kinds("C50.911") == {"primary:breast"}
    assert kinds("C34.12") == {"primary:lung"}
    assert kinds("C16.3") == {"primary:stomach"}
    assert kinds("C7A.012") == {"primary:neuroendocrine"}
    assert kinds("K74.60") == kinds("K70.31") == {codes.CIRRHOSIS}
    assert kinds("I85.00") == kinds("K76.6") == {codes.PORTAL_HYPERTENSION}
    assert kinds("R18.8") == {codes.ASCITES, "symptom:ascites"}
    assert kinds("R10.11") == {"symptom:abdominal-pain"}
    assert kinds("R11.10") == {"symptom:vomiting"}
    assert kinds("R11.2") == {"symptom:nausea", "symptom:vomiting"}


def test_icd10_exceptions_by_longest_prefix() -> None:
    assert kinds("C25.0") == {"primary:pancreas"}
    assert kinds("C25.4") == {"primary:neuroendocrine"}
    assert kinds("C79.51") == {codes.EXTRAHEPATIC}
    assert kinds("C79.9") == {codes.SECONDARY_BY_SITE}
    assert kinds("C7B.01") == {codes.EXTRAHEPATIC}
    assert kinds("C7B.02") == {codes.SECONDARY_NET_LIVER}
    assert kinds("C78.01") == kinds("C78.6") == kinds("C78.89") == {codes.EXTRAHEPATIC}
    assert kinds("C78.7") == {codes.LIVER_SECONDARY}
    assert kinds("C22.0") == kinds("C22.8") == kinds("C22.9") == {codes.LIVER_HCC}
    assert all(kinds(f"C22.{n}") == {codes.LIVER_OTHER} for n in range(1, 8))


def test_codes_outside_the_tables_have_no_tags() -> None:
    for code in ("C22", "C76.0", "C80.1", "C7B.1", "K76.89", "K76", "Z85.038", "E11.9"):
        assert kinds(code) == set(), code
    assert condition_tags(codes.SNOMED, "72481006") == frozenset()  # a lung lobe
    assert condition_tags("http://example.org", "C78.7") == frozenset()
    assert condition_tags(codes.ICD10CM, 787) == frozenset()


def test_observation_kind_needs_system_and_code() -> None:
    assert observation_kind([{"system": codes.LOINC, "code": "1975-2"}]) == "bilirubin"
    assert observation_kind([{"system": "urn:x", "code": "1975-2"}]) is None
    assert observation_kind([{"code": "x"}, {"system": codes.LOINC, "code": "777-3"}]) == (
        "platelets"
    )
    assert observation_kind("777-3") is None
    assert observation_kind([{"system": codes.LIVER_FINDINGS, "code": "lesion-count"}]) == (
        "lesion-count"
    )


def test_wrong_site_codes_from_public_examples_are_never_liver_sites() -> None:
    for code in ("72481006", "233527006", "245302009", "245309003"):
        assert code not in codes.LIVER_SITES


@pytest.mark.skipif(not SPEC.exists(), reason=f"spec not found at {SPEC}")
def test_every_code_is_in_the_spec() -> None:
    """No invented codes: every SNOMED, ICD-10-CM and LOINC code here appears in
    fhir-mapping.md. The ECOG answer codes are the LOINC answer list the spec names by its
    range (LA9622-7..LA9627-6), so only its two ends are in the text."""
    text = SPEC.read_text(encoding="utf-8")
    for code in (
        *codes.SNOMED_CONDITIONS,
        *codes.LIVER_SITES,
        *codes.SEVERITY_POINTS,
        codes.SUPERFICIAL[1],
        *codes.OBSERVATION_CODES,
        codes.TUMOUR_SIZE_LONGEST_COMPONENT,
    ):
        assert code in text, code
    dotted = set(re.findall(r"[A-Z]\d[0-9A-Z](?:\.[0-9A-Z*]+)?", text))
    spec_icd = {c.replace(".", "").rstrip("*") for c in dotted}
    # ranges written as "C22.1 - C22.7", "C78.0 - C78.6": their members
    spec_icd |= {f"C22{n}" for n in range(1, 8)} | {f"C78{n}" for n in range(7)}
    for prefix in codes.ICD10_CONDITIONS:
        assert prefix in spec_icd, prefix
    assert {"LA9622-7", "LA9627-6"} <= set(re.findall(r"LA\d+-\d", text))
    assert len(codes.ECOG_ANSWERS) == 6
