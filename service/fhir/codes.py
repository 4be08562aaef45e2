"""The code sets of fhir-mapping.md, as precomputed lookups.

Every code here is copied from the mapping specification (or is a LOINC answer code of
the ECOG answer list that the spec names by range) and was checked against a published
source (ICD-10-CM, ICD-10-PCS and CPT titles; SNOMED CT body structures); nothing is
invented. A code that could not be checked is left out. Lookups are plain
dicts built once at import so that the engine's selection step costs one dict probe per
coding: an EHR sends thousands of Observations the rules never read.

ICD-10-CM codes are matched without the dot, upper case, by longest prefix: the table below
holds the prefixes (``C18`` matches ``C18.7``), and a longer entry overrides a shorter one
(``C25.4`` is neuroendocrine although ``C25`` is pancreas; ``C79.9`` is decided by its body
site although ``C79`` is extrahepatic disease).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final, Literal

SNOMED: Final = "http://snomed.info/sct"
ICD10CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"
LIVER_FINDINGS: Final = "https://liver-cds.org/fhir/CodeSystem/liver-findings"

MCODE_BODY_LOCATION_QUALIFIER: Final = (
    "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-body-location-qualifier"
)
CONDITION_RELATED: Final = "http://hl7.org/fhir/StructureDefinition/condition-related"
MCODE_RELATED_PRIMARY: Final = (
    "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-related-primary-cancer-condition"
)
RELATED_PRIMARY_EXTENSIONS: Final = frozenset({CONDITION_RELATED, MCODE_RELATED_PRIMARY})

# --------------------------------------------------------------------------------------------
# Conditions (fhir-mapping.md §2 and §4)
# --------------------------------------------------------------------------------------------

Tag = str
"""A classification of a Condition code: one of the constants below, or ``primary:<site>``
or ``symptom:<symptom>``."""

LIVER_HCC: Final = "liver:hcc"
LIVER_SECONDARY: Final = "liver:secondary"
LIVER_OTHER: Final = "liver:other-liver-primary"
LIVER_UNSPECIFIED_PRIMARY: Final = "liver:unspecified-primary"
"""C22.8 primary liver cancer of unknown type: always tumour kind ``unspecified`` (v2)."""
LIVER_NOT_STATED: Final = "liver:not-stated"
"""C22.9 liver malignancy not specified as primary or secondary: ``unspecified``, or read as
secondary with a known non-liver primary (v2, fhir-mapping §2)."""
SECONDARY_BY_SITE: Final = "secondary-by-site"
"""Secondary malignancy whose body site decides: liver -> liver secondary, else extrahepatic."""
SECONDARY_NET_LIVER: Final = "secondary-net-liver"
"""C7B.02 secondary carcinoid of liver: a liver secondary whose primary is neuroendocrine."""
EXTRAHEPATIC: Final = "extrahepatic"
"""Extrahepatic disease at a site that is neither lung nor lymph node (v2: site ``other``)."""
EXTRAHEPATIC_LUNG: Final = "extrahepatic:lung"
EXTRAHEPATIC_LYMPH_NODE: Final = "extrahepatic:lymph-node"
EXTRAHEPATIC_PERITONEUM_NET: Final = "extrahepatic:peritoneum-net"
"""C7B.04 secondary carcinoid of peritoneum: a lymph-node site with a neuroendocrine primary
(mesenteric deposits of small-bowel NET are coded there), else ``other`` (v2)."""
LYMPH_NODES: Final = "lymph-nodes"
"""C77.*: secondary in lymph nodes (extrahepatic disease; states a node-positive primary)."""
CIRRHOSIS: Final = "cirrhosis"
PORTAL_HYPERTENSION: Final = "portal-hypertension"
PORTAL_VEIN_THROMBOSIS: Final = "portal-vein-thrombosis"
ASCITES: Final = "ascites"
"""Ascites not known to be malignant: Child-Pugh ascites, the symptom, and (v2) evidence of
portal hypertension with cirrhosis or hcc."""
MALIGNANT_ASCITES: Final = "malignant-ascites"
"""R18.0: extrahepatic disease, the symptom ascites and Child-Pugh ascites, never evidence of
portal hypertension (v2)."""
ENCEPHALOPATHY: Final = "encephalopathy"
PRIMARY_PREFIX: Final = "primary:"
SYMPTOM_PREFIX: Final = "symptom:"

LIVER_KIND_TAGS: Final = frozenset(
    {
        LIVER_HCC,
        LIVER_SECONDARY,
        LIVER_OTHER,
        SECONDARY_NET_LIVER,
        LIVER_UNSPECIFIED_PRIMARY,
        LIVER_NOT_STATED,
    }
)


def _t(*tags: str) -> frozenset[str]:
    return frozenset(tags)


_EMPTY: Final[frozenset[str]] = frozenset()


SNOMED_CONDITIONS: Final[dict[str, frozenset[str]]] = {
    "109841003": _t(LIVER_HCC),
    "94381002": _t(LIVER_SECONDARY),
    "128462008": _t(SECONDARY_BY_SITE),
    "363406005": _t(PRIMARY_PREFIX + "colorectal"),
    "363351006": _t(PRIMARY_PREFIX + "colorectal"),
    "254837009": _t(PRIMARY_PREFIX + "breast"),
    "363418001": _t(PRIMARY_PREFIX + "pancreas"),
    "363358000": _t(PRIMARY_PREFIX + "lung"),
    "363349007": _t(PRIMARY_PREFIX + "stomach"),
    "19943007": _t(CIRRHOSIS),
    "34742003": _t(PORTAL_HYPERTENSION),
    "17920008": _t(PORTAL_VEIN_THROMBOSIS),
    "389026000": _t(ASCITES, SYMPTOM_PREFIX + "ascites"),
    "13920009": _t(ENCEPHALOPATHY),
    "18165001": _t(SYMPTOM_PREFIX + "jaundice"),
}

ICD10_CONDITIONS: Final[dict[str, frozenset[str]]] = {
    # liver malignancy
    "C220": _t(LIVER_HCC),
    "C228": _t(LIVER_UNSPECIFIED_PRIMARY),  # primary, unspecified as to type (v2)
    "C229": _t(LIVER_NOT_STATED),  # not specified as primary or secondary (v2)
    **{f"C22{n}": _t(LIVER_OTHER) for n in range(1, 8)},
    "C787": _t(LIVER_SECONDARY),
    "C7B02": _t(SECONDARY_NET_LIVER),
    "C799": _t(SECONDARY_BY_SITE),
    # extrahepatic disease, by site (v2: lung / lymph node / other)
    "C77": _t(EXTRAHEPATIC_LYMPH_NODE, LYMPH_NODES),
    "C780": _t(EXTRAHEPATIC_LUNG),
    **{f"C78{n}": _t(EXTRAHEPATIC) for n in range(1, 7)},
    "C788": _t(EXTRAHEPATIC),
    "C79": _t(EXTRAHEPATIC),
    "C7B0": _t(EXTRAHEPATIC),
    "C7B00": _EMPTY,  # secondary carcinoid, unspecified site: not counted (v2)
    "C7B01": _t(EXTRAHEPATIC_LYMPH_NODE),  # distant lymph nodes
    "C7B04": _t(EXTRAHEPATIC_PERITONEUM_NET),  # peritoneum
    "C7B8": _t(EXTRAHEPATIC),  # other secondary neuroendocrine tumours
    "R180": _t(MALIGNANT_ASCITES, EXTRAHEPATIC, SYMPTOM_PREFIX + "ascites"),  # v2
    # primary sites
    "C18": _t(PRIMARY_PREFIX + "colorectal"),
    "C19": _t(PRIMARY_PREFIX + "colorectal"),
    "C20": _t(PRIMARY_PREFIX + "colorectal"),
    "C50": _t(PRIMARY_PREFIX + "breast"),
    "C25": _t(PRIMARY_PREFIX + "pancreas"),
    "C254": _t(PRIMARY_PREFIX + "neuroendocrine"),
    "C34": _t(PRIMARY_PREFIX + "lung"),
    "C16": _t(PRIMARY_PREFIX + "stomach"),
    "C7A": _t(PRIMARY_PREFIX + "neuroendocrine"),
    "C7A1": _t(PRIMARY_PREFIX + "neuroendocrine-carcinoma"),  # poorly differentiated (v2)
    # liver disease
    "K746": _t(CIRRHOSIS),
    "K703": _t(CIRRHOSIS),
    "K7031": _t(CIRRHOSIS, ASCITES, SYMPTOM_PREFIX + "ascites"),  # alcoholic cirrhosis, ascites
    "K7011": _t(ASCITES, SYMPTOM_PREFIX + "ascites"),  # alcoholic hepatitis with ascites
    "K7151": _t(ASCITES, SYMPTOM_PREFIX + "ascites"),  # toxic liver disease, CAH, ascites
    "K766": _t(PORTAL_HYPERTENSION),
    "I85": _t(PORTAL_HYPERTENSION),
    "I81": _t(PORTAL_VEIN_THROMBOSIS),
    # R18.8 other ascites; the bare header R18 (ascites, type not given) is read the same
    # way, the cautious reading (it counts towards portal hypertension); R18.0 is above.
    "R18": _t(ASCITES, SYMPTOM_PREFIX + "ascites"),
    "R188": _t(ASCITES, SYMPTOM_PREFIX + "ascites"),
    "K7682": _t(ENCEPHALOPATHY),
    # symptoms
    "R17": _t(SYMPTOM_PREFIX + "jaundice"),
    "R634": _t(SYMPTOM_PREFIX + "weight-loss"),
    "R630": _t(SYMPTOM_PREFIX + "loss-of-appetite"),
    "R110": _t(SYMPTOM_PREFIX + "nausea"),
    "R111": _t(SYMPTOM_PREFIX + "vomiting"),
    "R112": _t(SYMPTOM_PREFIX + "nausea", SYMPTOM_PREFIX + "vomiting"),
    "R10": _t(SYMPTOM_PREFIX + "abdominal-pain"),
    "R140": _t(SYMPTOM_PREFIX + "bloating"),
}

_ICD_MAX_PREFIX: Final = max(len(k) for k in ICD10_CONDITIONS)
_ICD_MIN_PREFIX: Final = min(len(k) for k in ICD10_CONDITIONS)


def normalise_icd10(code: str) -> str:
    """``"c18.7 "`` -> ``"C187"``: ICD-10-CM codes match with or without the dot."""
    return code.replace(".", "").strip().upper()


@lru_cache(maxsize=4096)
def icd10_tags(code: str) -> frozenset[str]:
    """Tags of an ICD-10-CM code by longest matching prefix (empty when none matches).

    Cached: a patient's problem list repeats the same few hundred codes call after call.
    """
    norm = normalise_icd10(code)
    for n in range(min(len(norm), _ICD_MAX_PREFIX), _ICD_MIN_PREFIX - 1, -1):
        tags = ICD10_CONDITIONS.get(norm[:n])
        if tags is not None:
            return tags
    return _EMPTY


def condition_tags(system: object, code: object) -> frozenset[str]:
    """Tags of one Condition coding; empty for codes the rules do not read."""
    if not isinstance(code, str):
        return _EMPTY
    if system == SNOMED:
        return SNOMED_CONDITIONS.get(code.strip(), _EMPTY)
    if system == ICD10CM:
        return icd10_tags(code)
    return _EMPTY


# --------------------------------------------------------------------------------------------
# Condition.severity (fhir-mapping.md §4) -> Child-Pugh points
# --------------------------------------------------------------------------------------------

SEVERITY_POINTS: Final[dict[str, int]] = {
    "255604002": 2,  # mild
    "6736007": 3,  # moderate
    "24484000": 3,  # severe
}

# --------------------------------------------------------------------------------------------
# Body sites and qualifiers (fhir-mapping.md §3)
# --------------------------------------------------------------------------------------------

Side = Literal["right", "left", "both"]


class LiverSite:
    """One liver body-site code: its side (None for liver without side) and segment."""

    __slots__ = ("code", "label", "segment", "side")

    def __init__(self, code: str, label: str, side: Side | None, segment: str | None) -> None:
        self.code = code
        self.label = label
        self.side = side
        self.segment = segment

    @property
    def sided(self) -> bool:
        """A segment or lobe (not "liver structure" / "entire liver")."""
        return self.side is not None

    def __repr__(self) -> str:
        return f"LiverSite({self.code!r}, {self.label!r})"


LIVER_SITES: Final[dict[str, LiverSite]] = {
    s.code: s
    for s in (
        LiverSite("71133005", "segment I (caudate lobe)", "both", "I"),
        LiverSite("277956007", "segment II", "left", "II"),
        LiverSite("277957003", "segment III", "left", "III"),
        LiverSite("277958008", "segment IV", "left", "IV"),
        LiverSite("871688003", "segment IVa", "left", "IV"),
        LiverSite("871689006", "segment IVb", "left", "IV"),
        LiverSite("277959000", "segment V", "right", "V"),
        LiverSite("277960005", "segment VI", "right", "VI"),
        LiverSite("277961009", "segment VII", "right", "VII"),
        LiverSite("277962002", "segment VIII", "right", "VIII"),
        LiverSite("48521005", "right lobe of liver", "right", None),
        LiverSite("69842003", "left lobe of liver", "left", None),
        LiverSite("10200004", "liver", None, None),
        LiverSite("181268008", "entire liver", None, None),
    )
}

SUPERFICIAL: Final = (SNOMED, "26283006")
DIFFUSE: Final = (LIVER_FINDINGS, "diffuse")

# --------------------------------------------------------------------------------------------
# Observations (fhir-mapping.md §5 and §6)
# --------------------------------------------------------------------------------------------

ObservationKind = Literal[
    "bilirubin",
    "albumin",
    "inr",
    "platelets",
    "creatinine",
    "sodium",
    "afp",
    "cea",
    "ecog",
    "karnofsky",
    "tumour-size",
    "tnm-n",
    "lesion-count",
    "flr",
]
LAB_KINDS: Final = frozenset(
    {"bilirubin", "albumin", "inr", "platelets", "creatinine", "sodium", "afp", "cea"}
)

OBSERVATION_CODES: Final[dict[str, tuple[str, ObservationKind]]] = {
    "1975-2": (LOINC, "bilirubin"),
    "14631-6": (LOINC, "bilirubin"),
    "1751-7": (LOINC, "albumin"),
    "6301-6": (LOINC, "inr"),
    "34714-6": (LOINC, "inr"),
    "777-3": (LOINC, "platelets"),
    "2160-0": (LOINC, "creatinine"),
    "14682-9": (LOINC, "creatinine"),
    "2951-2": (LOINC, "sodium"),
    "1834-1": (LOINC, "afp"),
    "2039-6": (LOINC, "cea"),
    "89247-1": (LOINC, "ecog"),
    "89243-0": (LOINC, "karnofsky"),
    "21889-1": (LOINC, "tumour-size"),
    "21906-3": (LOINC, "tnm-n"),
    "lesion-count": (LIVER_FINDINGS, "lesion-count"),
    "future-liver-remnant": (LIVER_FINDINGS, "flr"),
}
"""code -> (system, kind). Selection probes this dict with each coding's code first."""

TUMOUR_SIZE_LONGEST_COMPONENT: Final = "33728-7"

ECOG_ANSWERS: Final[dict[str, int]] = {
    "LA9622-7": 0,
    "LA9623-5": 1,
    "LA9624-3": 2,
    "LA9625-0": 3,
    "LA9626-8": 4,
    "LA9627-6": 5,
}
"""LOINC answer list of 89247-1 (ECOG performance status), grades 0..5."""


def observation_kind(coding: object) -> ObservationKind | None:
    """Kind of an Observation.code.coding list, or None when the rules do not read it."""
    if not isinstance(coding, list):
        return None
    for c in coding:
        if isinstance(c, dict):
            code = c.get("code")
            if isinstance(code, str):
                hit = OBSERVATION_CODES.get(code)
                if hit is not None and c.get("system") == hit[0]:
                    return hit[1]
    return None


# --------------------------------------------------------------------------------------------
# Extrahepatic sites (fhir-mapping.md §4, v2): SNOMED CT body structures
# --------------------------------------------------------------------------------------------

ExtrahepaticSite = Literal["lung", "lymph-node", "other"]

EXTRAHEPATIC_SITES: Final[dict[str, ExtrahepaticSite]] = {
    "39607008": "lung",  # lung structure
    "3341006": "lung",  # right lung structure
    "44029006": "lung",  # left lung structure
    "59441001": "lymph-node",  # structure of lymph node
}
"""Body sites of a secondary malignancy (128462008) that count as a limited extrahepatic
site; any other coded site, or none, is ``other`` (the cautious reading)."""

# --------------------------------------------------------------------------------------------
# Procedures (fhir-mapping.md §8, v2): previous liver resection
# --------------------------------------------------------------------------------------------

CPT: Final = "http://www.ama-assn.org/go/cpt"
ICD10PCS: Final = "http://www.cms.gov/Medicare/Coding/ICD10"

ResectionExtent = Literal["hemihepatectomy", "other"]

CPT_RESECTIONS: Final[dict[str, ResectionExtent]] = {
    "47120": "other",  # hepatectomy, resection of liver; partial lobectomy
    "47122": "hemihepatectomy",  # trisegmentectomy
    "47125": "hemihepatectomy",  # total left lobectomy
    "47130": "hemihepatectomy",  # total right lobectomy
}
PCS_RESECTION_PREFIXES: Final[dict[str, ResectionExtent]] = {
    "0FT1": "hemihepatectomy",  # resection of right lobe liver
    "0FT2": "hemihepatectomy",  # resection of left lobe liver
    "0FB0": "other",  # excision of liver
    "0FB1": "other",  # excision of right lobe liver
    "0FB2": "other",  # excision of left lobe liver
}
"""ICD-10-PCS codes are 7 characters; an excision whose 7th character (qualifier) is ``X``
is diagnostic (a biopsy), not a resection."""

RESECTION_WORDS: Final = (
    "resection",
    "resected",
    "hepatectomy",
    "lobectomy",
    "segmentectomy",
    "sectionectomy",
    "sectorectomy",
    "wedge",
    "metastasectomy",
)
"""Words in a Procedure's text that name a liver resection (lower case). A Procedure on a
liver site with such text but none of the codes above is named in the data-quality note."""


def resection_extent(system: object, code: object) -> ResectionExtent | None:
    """The extent a Procedure coding names, or None when it is not a liver resection code."""
    if not isinstance(code, str):
        return None
    if system == CPT:
        return CPT_RESECTIONS.get(code.strip())
    if system == ICD10PCS:
        norm = code.strip().upper()
        if len(norm) != 7:
            return None
        extent = PCS_RESECTION_PREFIXES.get(norm[:4])
        if extent is None or (norm[:3] == "0FB" and norm[6] == "X"):
            return None
        return extent
    return None
