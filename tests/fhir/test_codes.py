"""Code sets of fhir-mapping.md: ICD-10-CM prefix matching and no invented codes."""

from __future__ import annotations

import re

import pytest
from reference_data import SPEC_ENV, missing, spec_document

from service.fhir import codes
from service.fhir.codes import condition_tags, icd10_tags, observation_kind

SPEC = spec_document("fhir-mapping.md")


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
    assert kinds("K74.60") == kinds("K70.30") == {codes.CIRRHOSIS}
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
    assert kinds("C7B.02") == {codes.SECONDARY_NET_LIVER}
    assert kinds("C78.1") == kinds("C78.6") == kinds("C78.89") == {codes.EXTRAHEPATIC}
    assert kinds("C78.7") == {codes.LIVER_SECONDARY}
    assert kinds("C22.0") == {codes.LIVER_HCC}
    assert all(kinds(f"C22.{n}") == {codes.LIVER_OTHER} for n in range(1, 8))


# --- rule set v2 rows of fhir-mapping §2 and §4 ------------------------------------------------


def test_c22_8_and_c22_9_are_not_hcc_v2() -> None:
    """C22.8 primary liver cancer of unspecified type; C22.9 liver malignancy not specified
    as primary or secondary (the facts decide whether C22.9 is read as secondary)."""
    assert kinds("C22.8") == {codes.LIVER_UNSPECIFIED_PRIMARY}
    assert kinds("C22.9") == {codes.LIVER_NOT_STATED}


def test_c7a_1_is_neuroendocrine_carcinoma_other_c7a_codes_neuroendocrine_v2() -> None:
    assert kinds("C7A.1") == {"primary:neuroendocrine-carcinoma"}
    assert kinds("C7A.00") == kinds("C7A.8") == kinds("C25.4") == {"primary:neuroendocrine"}


def test_extrahepatic_codes_by_site_v2() -> None:
    assert kinds("C78.00") == kinds("C78.01") == kinds("C78.02") == {codes.EXTRAHEPATIC_LUNG}
    assert kinds("C77.2") == {codes.EXTRAHEPATIC_LYMPH_NODE, codes.LYMPH_NODES}
    assert kinds("C7B.01") == {codes.EXTRAHEPATIC_LYMPH_NODE}
    assert kinds("C7B.04") == {codes.EXTRAHEPATIC_PERITONEUM_NET}
    assert kinds("C7B.03") == kinds("C7B.09") == kinds("C7B.8") == {codes.EXTRAHEPATIC}
    assert kinds("C79.51") == kinds("C79.31") == {codes.EXTRAHEPATIC}


def test_c7b_00_secondary_carcinoid_of_unspecified_site_is_not_counted_v2() -> None:
    assert kinds("C7B.00") == set()


def test_ascites_codes_v2() -> None:
    ascites = {codes.ASCITES, "symptom:ascites"}
    assert kinds("R18.8") == kinds("K70.11") == kinds("K71.51") == ascites
    assert kinds("K70.31") == ascites | {codes.CIRRHOSIS}  # alcoholic cirrhosis with ascites
    assert condition_tags(codes.SNOMED, "389026000") == ascites


def test_malignant_ascites_is_extrahepatic_and_the_symptom_never_portal_hypertension_v2() -> None:
    tags = kinds("R18.0")
    assert tags == {codes.MALIGNANT_ASCITES, codes.EXTRAHEPATIC, "symptom:ascites"}
    assert codes.ASCITES not in tags and codes.PORTAL_HYPERTENSION not in tags


def test_extrahepatic_body_sites_lung_and_lymph_node_v2() -> None:
    assert codes.EXTRAHEPATIC_SITES["39607008"] == "lung"  # lung structure
    assert codes.EXTRAHEPATIC_SITES["59441001"] == "lymph-node"  # structure of lymph node
    assert set(codes.EXTRAHEPATIC_SITES.values()) == {"lung", "lymph-node"}


# --- fhir-mapping §8: previous liver resection --------------------------------------------------


@pytest.mark.parametrize(
    ("system", "code", "extent"),
    [
        (codes.CPT, "47120", "other"),  # partial lobectomy (segmentectomy, wedge)
        (codes.CPT, "47122", "hemihepatectomy"),  # trisegmentectomy
        (codes.CPT, "47125", "hemihepatectomy"),  # total left lobectomy
        (codes.CPT, "47130", "hemihepatectomy"),  # total right lobectomy
        (codes.ICD10PCS, "0FT10ZZ", "hemihepatectomy"),  # resection of right lobe liver
        (codes.ICD10PCS, "0FT24ZG", "hemihepatectomy"),  # left lobe, laparoscopic
        (codes.ICD10PCS, "0FB00ZZ", "other"),  # excision of liver
        (codes.ICD10PCS, "0fb14zz", "other"),  # excision of right lobe, any case
        (codes.ICD10PCS, "0FB20ZZ", "other"),  # excision of left lobe
        (codes.ICD10PCS, "0FB03ZX", None),  # diagnostic excision: a biopsy
        (codes.ICD10PCS, "0FB24ZX", None),
        (codes.ICD10PCS, "0FT44ZZ", None),  # resection of gallbladder
        (codes.ICD10PCS, "0FT1", None),  # not a 7-character PCS code
        (codes.CPT, "47100", None),  # liver biopsy, wedge
        (codes.SNOMED, "47130", None),  # right code, wrong system
        (codes.CPT, 47130, None),
    ],
)
def test_resection_codes(system: str, code: object, extent: str | None) -> None:
    assert codes.resection_extent(system, code) == extent


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


@pytest.mark.skipif(SPEC is None, reason=missing(SPEC_ENV, "the specification's fhir-mapping.md"))
def test_every_code_is_in_the_spec() -> None:
    """No invented codes: every SNOMED, ICD-10-CM and LOINC code here appears in
    fhir-mapping.md. The ECOG answer codes are the LOINC answer list the spec names by its
    range (LA9622-7..LA9627-6), so only its two ends are in the text."""
    assert SPEC is not None
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


VERIFIED_BEYOND_THE_SPEC = {
    "3341006": "right lung structure",
    "44029006": "left lung structure",
}
"""Children of the spec's lung structure (39607008), checked against published SNOMED CT value
sets: a lung metastasis coded on one lung is a lung site, not "other"."""


@pytest.mark.skipif(SPEC is None, reason=missing(SPEC_ENV, "the specification's fhir-mapping.md"))
def test_every_v2_code_is_in_the_spec_or_verified() -> None:
    """Rule set v2 codes: extrahepatic body sites, CPT and ICD-10-PCS resections."""
    assert SPEC is not None
    text = SPEC.read_text(encoding="utf-8")
    for code in codes.EXTRAHEPATIC_SITES:
        assert code in text or code in VERIFIED_BEYOND_THE_SPEC, code
    for code in codes.CPT_RESECTIONS:
        assert code in text, code
    for prefix in codes.PCS_RESECTION_PREFIXES:
        assert prefix + "*" in text, prefix
    assert codes.CPT in text and codes.ICD10PCS in text
