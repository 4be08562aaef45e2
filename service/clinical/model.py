"""The clinical engine's vocabulary: facts in, assessment out.

These value types are the contract between the engine (``facts/``, ``scores.py``,
``rules.py``), the card renderer (``service/render``) and the CLI. They are plain frozen
dataclasses: no FHIR, no HTTP, nothing that does I/O. Names follow
``shared/spec/clinical-rules.md`` so a reader can put the spec and the code side by side.

The values built dozens of times per hook call (:class:`Measurement`, :class:`Evidence`,
:class:`ScoreInput`, :class:`Score`, :class:`OfferedOption`) write their own ``__init__``
(``init=False``): the one ``dataclass(frozen=True)`` generates stores each field with
``object.__setattr__`` (it must go around the class's own ``__setattr__``, which raises),
about 1,700 instructions a field in CPython 3.11; storing them with one ``__dict__`` update
costs less than half. They stay frozen dataclasses in every other respect (equality, hash,
repr, ``replace``, frozen assignment); ``tests/clinical/test_model.py`` holds each
``__init__`` to its fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal, get_args

# Re-exported for compatibility: the note type lives in the leaf module service/notes.py.
from service.notes import DataQualityNote as DataQualityNote

TumourKind = Literal["hcc", "secondary", "other-liver-primary", "unspecified"]
PrimarySite = Literal[
    "colorectal",
    "neuroendocrine",
    "neuroendocrine-carcinoma",
    "pancreas",
    "breast",
    "lung",
    "stomach",
    "other",
    "unknown",
]
Distribution = Literal["right", "left", "caudate", "bilobar", "diffuse", "unknown"]
PortalHypertension = Literal["present", "suspected", "not-excluded", "absent", "unknown"]
PortalHypertensionBasis = Literal["condition", "ascites", "platelets", "no-cirrhosis", "unknown"]
"""How portal hypertension was judged (rule set v2, cards.md: the card says which)."""
PriorLiverResection = Literal["none", "hemihepatectomy", "other"]
ExtrahepaticSite = Literal["lung", "lymph-node", "other"]
Section = Literal["left-lateral", "left-medial", "right-anterior", "right-posterior", "caudate"]
Symptom = Literal[
    "jaundice",
    "ascites",
    "weight-loss",
    "loss-of-appetite",
    "nausea",
    "vomiting",
    "abdominal-pain",
    "bloating",
]
Verdict = Literal["resectable", "potentially-resectable", "not-resectable", "indeterminate"]
OptionCode = Literal[
    "resection-right-hepatectomy",
    "resection-left-hepatectomy",
    "resection-local",
    "liver-augmentation",
    "ablation",
    "transplant-evaluation",
    "tace",
    "tare",
    "haic",
    "sbrt",
    "systemic-therapy",
    "monitoring",
    "best-supportive-care",
    "mdt-review",
]
OPTION_CODES: tuple[OptionCode, ...] = get_args(OptionCode)
"""The treatment options in the order of clinical-rules.md §3."""
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)

LabName = Literal[
    "bilirubin",
    "albumin",
    "inr",
    "platelets",
    "creatinine",
    "sodium",
    "afp",
    "cea",
]
RiskModifier = Literal[
    "cirrhosis",
    "portal-hypertension",
    "child-pugh-b",
    "low-flr",
    "ascites",
    "jaundice",
    "abnormal-liver-tests",
    "previous-liver-resection",
]
"""Patient-specific facts named in the risk text of the options they affect (§6)."""

MissingFact = Literal[
    "diagnosis-confirmation",  # rule 1
    "distribution",
    "lesion-count",
    "child-pugh",  # bilirubin, albumin or INR missing or stale
    "ecog",
    "largest-size",
    "flr",
    "age",
    "tumour-type",  # rule 1a: primary liver cancer or metastasis, and which type
    "portal-hypertension",  # v2 §5: hcc with cirrhosis and no platelet count
    "jaundice-cause",  # rule 4a: bile-duct imaging first
    "afp",
    "procedures",  # the procedures prefetch could not be had: previous surgery unchecked
]


@dataclass(frozen=True, init=False)
class Measurement:
    """One value the engine used, with where it came from, so a clinician can check it.

    ``value`` is in the canonical unit of fhir-mapping.md §5 (``unit``); ``original``
    keeps what the EHR sent (e.g. ``"34.2 umol/L"``) when a conversion happened.
    """

    value: float
    unit: str
    date: datetime | None
    source: str
    """Reference of the resource it was read from, e.g. ``"Observation/abc"``."""
    original: str | None = None
    unrounded: float | None = None
    """The converted value before rounding to reporting precision (formulas defined in
    another unit, e.g. ALBI in umol/L, use it); None when equal to ``value``."""
    reported_value: float | None = None
    """The value as the EHR sent it, in ``reported_unit`` (rule set v2: cut-offs written for
    that unit, e.g. the SI Child-Pugh bands or 34 umol/L for jaundice, compare it unrounded)."""
    reported_unit: str | None = None
    """The UCUM code the value was sent in (``"umol/L"``, ``"mg/dL"``, ``"g/L"``, ...)."""

    def __init__(
        self,
        value: float,
        unit: str,
        date: datetime | None,
        source: str,
        original: str | None = None,
        unrounded: float | None = None,
        reported_value: float | None = None,
        reported_unit: str | None = None,
    ) -> None:
        self.__dict__.update(
            value=value,
            unit=unit,
            date=date,
            source=source,
            original=original,
            unrounded=unrounded,
            reported_value=reported_value,
            reported_unit=reported_unit,
        )

    @property
    def exact(self) -> float:
        """The unrounded value in the canonical unit (cut-offs compare it, v2)."""
        return self.value if self.unrounded is None else self.unrounded


@dataclass(frozen=True, init=False)
class Evidence:
    """A fact as shown on the card: name, readable value, and its provenance."""

    fact: str
    """Name from clinical-rules.md §2, e.g. ``"distribution"``, ``"ecog"``."""
    value: str
    """Human-readable value with unit, e.g. ``"right"``, ``"2.0 mg/dL"``,
    ``"1 (from Karnofsky 80)"``."""
    date: datetime | None = None
    sources: tuple[str, ...] = ()

    def __init__(
        self, fact: str, value: str, date: datetime | None = None, sources: tuple[str, ...] = ()
    ) -> None:
        self.__dict__.update(fact=fact, value=value, date=date, sources=sources)


@dataclass(frozen=True)
class Facts:
    """The inputs of the decision table (clinical-rules.md §2), read from FHIR.

    ``None`` means unknown. ``evidence`` lists each fact that was read with its
    provenance; ``labs`` holds the latest in-window value of each lab.
    """

    patient_id: str
    evaluated_at: datetime
    tumour_kind: TumourKind | None = None
    hcc_and_secondary_found: bool = False
    """Both hcc and secondary liver malignancy found (hcc rules apply; the card says so)."""
    liver_conditions: tuple[str, ...] = ()
    """References of the current liver-malignancy Conditions (``"Condition/id"``)."""
    confirmed: bool = False
    primary_site: PrimarySite | None = None
    distribution: Distribution = "unknown"
    single_segment: bool = False
    segment: str | None = None
    """The Couinaud segment (``"I"``..``"VIII"``) when ``single_segment``."""
    surface: bool = False
    lesion_count: int | None = None
    largest_cm: float | None = None
    macrovascular_invasion: bool = False
    macrovascular_presumed: bool = False
    """Macrovascular invasion inferred from portal vein thrombosis (presumed tumour thrombus)."""
    extrahepatic_disease: bool = False
    cirrhosis: bool = False
    portal_hypertension: PortalHypertension = "absent"
    ascites_points: int | None = None
    """Child-Pugh points for ascites: None when no current ascites Condition (= 1 point)."""
    ascites_assumed: bool = False
    encephalopathy_points: int | None = None
    encephalopathy_assumed: bool = False
    ecog: int | None = None
    ecog_from_karnofsky: int | None = None
    flr_percent: float | None = None
    age: int | None = None
    symptoms: frozenset[Symptom] = frozenset()
    node_positive_primary: bool | None = None
    disease_free_interval_months: float | None = None
    labs: dict[LabName, Measurement] = field(default_factory=dict)
    stale: dict[str, datetime] = field(default_factory=dict)
    """Facts whose latest value is older than the lookback window: fact name -> its date."""
    evidence: tuple[Evidence, ...] = ()
    data_quality: tuple[DataQualityNote, ...] = ()
    # --- added by the engine (clinical-engine issue) -----------------------------------
    liver_kinds: frozenset[TumourKind] = frozenset()
    """Every liver-malignancy kind found among the current Conditions (``tumour_kind`` is the
    one whose rules apply)."""
    observed: dict[str, Measurement] = field(default_factory=dict)
    """Non-lab observations used, with provenance: ``"ecog"``, ``"flr"``, ``"largest_cm"``,
    ``"lesion_count"`` (the value in its canonical unit, ECOG as a grade)."""
    assumptions: tuple[str, ...] = ()
    """Assumptions made while reading (no status counted as final, time read as UTC, ...)."""
    primary_condition: str | None = None
    """Reference of the Condition that gave ``primary_site``, when one did."""
    # --- rule set v2 (clinical-rules.md §2 rows marked v2) ---------------------------------
    unspecified_codes: tuple[str, ...] = ()
    """The C22.8 / C22.9 codes that made tumour_kind ``unspecified`` (rule 1a names them)."""
    liver_code_unstated: bool = False
    """C22.9 read as secondary because of a known non-liver primary (the card says the liver
    code did not state it)."""
    single_section: bool = False
    section: Section | None = None
    """The Couinaud section when ``single_section``."""
    extrahepatic_limited: bool = False
    """Extrahepatic disease whose every site is lung or lymph node."""
    extrahepatic_sites: frozenset[ExtrahepaticSite] = frozenset()
    portal_hypertension_basis: PortalHypertensionBasis = "no-cirrhosis"
    bilirubin_above_normal: bool = False
    bilirubin_uln: Measurement | None = None
    """The upper limit of normal used (referenceRange.high or the default), in the unit of
    the bilirubin value it was compared with."""
    jaundice: bool = False
    """Latest bilirubin above the jaundice cut-off, or a current (not since resolved)
    jaundice Condition."""
    prior_liver_resection: PriorLiverResection = "none"
    prior_liver_resection_date: datetime | None = None
    prior_liver_resection_source: str | None = None
    """Reference of the Procedure that decided ``prior_liver_resection``."""
    procedures_checked: bool = True
    """False when no Procedure data could be had (the card says previous liver surgery
    could not be checked)."""
    deceased: bool = False
    imaging_date: datetime | None = None
    """Date of the latest imaging Observation used (size, count, FLR)."""


@dataclass(frozen=True, init=False)
class ScoreInput:
    """One input of a score: its name, value with unit, date and points when it scores."""

    name: str
    value: str
    date: datetime | None = None
    points: int | None = None
    assumed: bool = False
    source: str | None = None

    def __init__(
        self,
        name: str,
        value: str,
        date: datetime | None = None,
        points: int | None = None,
        assumed: bool = False,
        source: str | None = None,
    ) -> None:
        self.__dict__.update(
            name=name, value=value, date=date, points=points, assumed=assumed, source=source
        )


@dataclass(frozen=True, init=False)
class Score:
    """A computed score (Child-Pugh, ALBI, MELD, MELD-Na, Fong, BCLC) with its inputs."""

    name: str
    value: float | int | str
    """Points (Child-Pugh 5-15, MELD, Fong 0-5), the ALBI value, or the BCLC stage letter."""
    category: str | None = None
    """Child-Pugh class A/B/C, ALBI grade 1/2/3, Fong low/high, None otherwise."""
    inputs: tuple[ScoreInput, ...] = ()
    unknown_inputs: tuple[str, ...] = ()
    note: str | None = None

    def __init__(
        self,
        name: str,
        value: float | int | str,
        category: str | None = None,
        inputs: tuple[ScoreInput, ...] = (),
        unknown_inputs: tuple[str, ...] = (),
        note: str | None = None,
    ) -> None:
        self.__dict__.update(
            name=name,
            value=value,
            category=category,
            inputs=inputs,
            unknown_inputs=unknown_inputs,
            note=note,
        )


@dataclass(frozen=True)
class Scores:
    child_pugh: Score | None = None
    albi: Score | None = None
    meld: Score | None = None
    meld_na: Score | None = None
    fong: Score | None = None
    bclc: Score | None = None

    def all(self) -> tuple[Score, ...]:
        """The computed scores in display order."""
        found = (self.child_pugh, self.albi, self.meld, self.meld_na, self.fong, self.bclc)
        return tuple(s for s in found if s is not None)


@dataclass(frozen=True, init=False)
class OfferedOption:
    """A treatment option the decision table offers (clinical-rules.md §3)."""

    code: OptionCode
    recommended: bool
    qualifier: str | None = None
    """A short qualifier the table attaches, e.g. ``"debulking"`` or ``"perioperative"``."""
    rule: str = ""
    """The rule (or addition) that offered it, e.g. ``"14"`` or ``"addition:monitoring"``."""

    def __init__(
        self, code: OptionCode, recommended: bool, qualifier: str | None = None, rule: str = ""
    ) -> None:
        self.__dict__.update(code=code, recommended=recommended, qualifier=qualifier, rule=rule)


@dataclass(frozen=True)
class MissingItem:
    """A fact that is unknown or stale, for the data-needed card."""

    fact: MissingFact
    essential: bool
    """Essential (§5: makes the verdict indeterminate; the FLR under rules 13a and 20a, where
    CT volumetry is needed before a hemihepatectomy) versus "would refine"."""
    stale_since: datetime | None = None
    """Date of the latest (too old) value when the fact is stale rather than absent."""
    detail: str = ""
    """Which inputs are missing, e.g. ``"INR"`` for Child-Pugh."""


@dataclass(frozen=True)
class Assessment:
    """The engine's answer for one patient at one evaluation time.

    ``verdict`` is ``None`` exactly when rule 0 matched (no current liver malignancy):
    the service then answers with no cards at all.
    """

    facts: Facts
    verdict: Verdict | None
    rule: str
    """The deciding rule number from clinical-rules.md §3 (``"0"``..``"23"``, with the v2 rows
    ``"1a"``, ``"4a"``, ``"7a"``, ``"12a"``, ``"12b"``, ``"13a"``, ``"16a"``, ``"19a"``,
    ``"20a"``; ``service.clinical.rules.RULE_IDS`` lists them in order)."""
    options: tuple[OfferedOption, ...] = ()
    """Offered options, recommended first, then in the table's order; mdt-review included."""
    scores: Scores = field(default_factory=Scores)
    missing: tuple[MissingItem, ...] = ()
    assumptions: tuple[str, ...] = ()
    data_quality: tuple[DataQualityNote, ...] = ()
    risk_modifiers: frozenset[RiskModifier] = frozenset()
    flr_threshold: float | None = None
    """The FLR threshold applied (20 or 40 %), when FLR mattered."""
    heuristics: tuple[str, ...] = ()
    """Heuristics [H] the decision used (e.g. ``"transmet_like"``); the card says so."""
    notes: tuple[str, ...] = ()
    """Clinical notes for the card, e.g. both hcc and secondary found, tumour type outside rules."""
    facts_used: tuple[str, ...] = ()
    """Names of the facts (clinical-rules.md §2) that the rules consulted up to and including
    the deciding one, in the order they were consulted (the card's "why")."""
    flr_low: bool | None = None
    """§2 ``flr_low`` at the threshold that applies; None when the FLR is unknown."""
    major_resection: bool = False
    """§2 ``major_resection``: resection by location names a hemihepatectomy."""

    @property
    def has_cards(self) -> bool:
        return self.verdict is not None

    @property
    def recommended(self) -> tuple[OptionCode, ...]:
        return tuple(o.code for o in self.options if o.recommended)

    @property
    def offered(self) -> tuple[OptionCode, ...]:
        return tuple(o.code for o in self.options)


def to_date(value: datetime | None) -> date | None:
    """Calendar day of a timestamp (for display and day-level comparisons)."""
    return value.date() if value is not None else None
