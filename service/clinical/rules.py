"""The decision table of clinical-rules.md §3, rule by rule, in order.

Each rule is a function ``rule_<n>`` whose docstring is the table row; :data:`RULES` lists
them in the spec's order and :func:`decide` applies them until one matches. The "additions
after the table" are :func:`addition_monitoring` and :func:`addition_supportive_care`.

Options are collected in the order the row names them ("table order"); the assessment then
lists recommended options first, each group keeping that order, and ``mdt-review``
(recommended in every verdict, never repeated in the table) closes the recommended group.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from service.clinical.model import (
    Assessment,
    Facts,
    MissingItem,
    OfferedOption,
    OptionCode,
    RiskModifier,
    Score,
    Scores,
    Verdict,
)
from service.clinical.scores import compute_scores
from service.clinical.thresholds import DEFAULT_THRESHOLDS, Thresholds

R: Final = True
"""**R**: offered and recommended."""
o: Final = False
"""*o*: offered, not recommended."""

COLORECTAL_OR_NET: Final = frozenset({"colorectal", "neuroendocrine"})
OTHER_PRIMARIES: Final = frozenset({"breast", "lung", "stomach", "other", "unknown"})


@dataclass
class Context:
    """Facts, scores and derived values (§2 "Derived"), recording which facts rules read."""

    facts: Facts
    scores: Scores
    t: Thresholds
    used: dict[str, None] = field(default_factory=dict)
    heuristics: list[str] = field(default_factory=list)
    flr_consulted: bool = False
    size_for_ablation_consulted: bool = False
    transmet_consulted: bool = False

    def use(self, *names: str) -> None:
        for name in names:
            self.used.setdefault(name, None)

    # --- facts, read through use() so the card can say which ones decided ------------
    @property
    def kind(self) -> str | None:
        self.use("tumour_kind")
        return self.facts.tumour_kind

    @property
    def hcc(self) -> bool:
        return self.kind == "hcc"

    @property
    def secondary(self) -> bool:
        return self.kind == "secondary"

    @property
    def primary(self) -> str | None:
        self.use("primary_site")
        return self.facts.primary_site

    @property
    def distribution(self) -> str:
        self.use("distribution")
        return self.facts.distribution

    @property
    def ecog(self) -> int | None:
        self.use("ecog")
        return self.facts.ecog

    @property
    def child_pugh_class(self) -> str | None:
        self.use("child_pugh")
        cp = self.scores.child_pugh
        return cp.category if cp is not None else None

    @property
    def extrahepatic(self) -> bool:
        self.use("extrahepatic_disease")
        return self.facts.extrahepatic_disease

    @property
    def lesion_count(self) -> int | None:
        self.use("lesion_count")
        return self.facts.lesion_count

    # --- derived (§2) -----------------------------------------------------------------------
    @property
    def small_for_ablation(self) -> bool:
        """largest <= 3 cm and count <= 10 (colorectal, COLLISION) or <= 3 (otherwise)."""
        self.size_for_ablation_consulted = True
        self.use("largest_cm", "lesion_count")
        f, t = self.facts, self.t
        if f.largest_cm is None or f.lesion_count is None:
            return False
        colorectal = f.tumour_kind == "secondary" and f.primary_site == "colorectal"
        if colorectal:
            self.use("primary_site")
        limit = t.ablation_max_lesions_colorectal if colorectal else t.ablation_max_lesions_other
        return f.largest_cm <= t.ablation_max_cm and f.lesion_count <= limit

    @property
    def within_milan(self) -> bool:
        self.use("macrovascular_invasion", "extrahepatic_disease", "lesion_count", "largest_cm")
        f, t = self.facts, self.t
        if f.macrovascular_invasion or f.extrahepatic_disease:
            return False
        if f.lesion_count is None or f.largest_cm is None:
            return False
        if f.lesion_count == 1:
            return f.largest_cm <= t.milan_single_max_cm
        return (
            2 <= f.lesion_count <= t.milan_multiple_max_lesions
            and f.largest_cm <= t.milan_multiple_max_cm
        )

    @property
    def within_up_to_seven(self) -> bool:
        self.use("macrovascular_invasion", "extrahepatic_disease", "lesion_count", "largest_cm")
        f = self.facts
        if f.macrovascular_invasion or f.extrahepatic_disease:
            return False
        if f.lesion_count is None or f.largest_cm is None:
            return False
        return f.largest_cm + f.lesion_count <= self.t.up_to_seven

    @property
    def flr_threshold(self) -> float:
        """40 % with cirrhosis or Child-Pugh B, otherwise 20 %."""
        self.use("cirrhosis", "child_pugh")
        compromised = self.facts.cirrhosis or self.child_pugh_class == "B"
        return self.t.flr_threshold_compromised if compromised else self.t.flr_threshold_normal

    @property
    def flr_low(self) -> bool:
        self.flr_consulted = True
        self.use("flr_percent")
        flr = self.facts.flr_percent
        return flr is not None and flr < self.flr_threshold

    @property
    def transmet_like(self) -> bool:
        """[H: simplified TransMet] age <= 65, ECOG 0-1, no extrahepatic disease."""
        self.transmet_consulted = True
        self.use("age", "ecog", "extrahepatic_disease")
        f, t = self.facts, self.t
        ok = (
            f.age is not None
            and f.age <= t.transmet_max_age
            and f.ecog is not None
            and f.ecog <= t.transmet_max_ecog
            and not f.extrahepatic_disease
        )
        if ok:
            self.heuristics.append("transmet_like")
        return ok


@dataclass(frozen=True)
class Outcome:
    """What a matching rule decides: the verdict and the options in table order."""

    verdict: Verdict | None
    options: tuple[OfferedOption, ...] = ()
    notes: tuple[str, ...] = ()


class _Options:
    """Collects a row's options in table order; ``add(code, R/O, when=...)``."""

    def __init__(self, rule: str) -> None:
        self.rule = rule
        self.items: list[OfferedOption] = []

    def add(
        self,
        code: OptionCode,
        recommended: bool,
        when: bool = True,
        qualifier: str | None = None,
    ) -> _Options:
        if when and all(o.code != code for o in self.items):
            self.items.append(OfferedOption(code, recommended, qualifier, self.rule))
        return self

    def by_location(self, c: Context, recommended: bool) -> _Options:
        """ "Resection by location" (§3).

        right -> right hepatectomy; left -> left hepatectomy, plus local resection when every
        sided site is superficial and lesion_count <= 3; single segment -> local resection
        and the hemihepatectomy becomes *o*; bilobar -> local resection; diffuse -> none.
        """
        f = c.facts
        c.use("distribution", "single_segment", "surface")
        single = f.single_segment
        if c.distribution == "right":
            if single:
                self.add("resection-local", recommended)
            self.add("resection-right-hepatectomy", recommended and not single)
        elif c.distribution == "left":
            surface_local = (
                f.surface
                and c.lesion_count is not None
                and c.lesion_count <= c.t.left_surface_local_max_lesions
            )
            if single:
                self.add("resection-local", recommended)
            self.add("resection-left-hepatectomy", recommended and not single)
            self.add("resection-local", recommended, when=surface_local)
        elif c.distribution == "bilobar":
            self.add("resection-local", recommended)
        return self

    def outcome(self, verdict: Verdict, *notes: str) -> Outcome:
        return Outcome(verdict, tuple(self.items), notes)


Rule = Callable[[Context], Outcome | None]

# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


def rule_0(c: Context) -> Outcome | None:
    """0 | no current liver malignancy | - | no cards at all."""
    if c.kind is None:
        return Outcome(None)
    return None


def rule_1(c: Context) -> Outcome | None:
    """1 | liver malignancy present but none confirmed | indeterminate | data: confirm diagnosis."""
    c.use("confirmed")
    if not c.facts.confirmed:
        return _Options("1").outcome("indeterminate")
    return None


def rule_2(c: Context) -> Outcome | None:
    """2 | tumour_kind other-liver-primary | indeterminate | outside these rules."""
    if c.kind == "other-liver-primary":
        note = (
            "The liver tumour type (e.g. cholangiocarcinoma) is outside these rules; "
            "the MDT decides."
        )
        others = sorted(k for k in c.facts.liver_kinds if k != "other-liver-primary")
        if others:
            note += " Also found: " + ", ".join(others) + "."
        return _Options("2").outcome("indeterminate", note)
    return None


def rule_3(c: Context) -> Outcome | None:
    """3 | ECOG >= 3 | not-resectable | best-supportive-care R, systemic-therapy o."""
    ecog = c.ecog
    if ecog is not None and ecog >= c.t.ecog_not_resectable:
        return (
            _Options("3")
            .add("best-supportive-care", R)
            .add("systemic-therapy", o)
            .outcome("not-resectable")
        )
    return None


def rule_4(c: Context) -> Outcome | None:
    """4 | Child-Pugh C | not-resectable | hcc and within_milan: transplant-evaluation R;
    otherwise best-supportive-care R."""
    if c.child_pugh_class == "C":
        opts = _Options("4")
        if c.hcc and c.within_milan:
            opts.add("transplant-evaluation", R)
        else:
            opts.add("best-supportive-care", R)
        return opts.outcome("not-resectable")
    return None


def essential_unknown(facts: Facts, scores: Scores) -> list[str]:
    """The essential facts of §5 that are unknown (or stale)."""
    missing = []
    if facts.distribution == "unknown":
        missing.append("distribution")
    if facts.lesion_count is None:
        missing.append("lesion_count")
    if scores.child_pugh is None:
        missing.append("child_pugh")
    if facts.ecog is None:
        missing.append("ecog")
    if facts.tumour_kind == "hcc" and facts.largest_cm is None:
        missing.append("largest_cm")
    return missing


def rule_5(c: Context) -> Outcome | None:
    """5 | any essential fact unknown (§5) | indeterminate | none besides mdt-review."""
    c.use("distribution", "lesion_count", "child_pugh", "ecog")
    if c.hcc:
        c.use("largest_cm")
    if essential_unknown(c.facts, c.scores):
        return _Options("5").outcome("indeterminate")
    return None


def rule_6(c: Context) -> Outcome | None:
    """6 | ECOG 2 | not-resectable | systemic-therapy R, ablation o if small_for_ablation,
    sbrt o."""
    if c.ecog == c.t.ecog_limited:
        return (
            _Options("6")
            .add("systemic-therapy", R)
            .add("ablation", o, when=c.small_for_ablation)
            .add("sbrt", o)
            .outcome("not-resectable")
        )
    return None


def rule_7(c: Context) -> Outcome | None:
    """7 | primary_site pancreas | not-resectable | systemic-therapy R."""
    if c.primary == "pancreas":
        return _Options("7").add("systemic-therapy", R).outcome("not-resectable")
    return None


def rule_8(c: Context) -> Outcome | None:
    """8 | hcc and (macrovascular invasion or extrahepatic disease) | not-resectable |
    systemic-therapy R, haic o, tare o, sbrt o."""
    if not c.hcc:
        return None
    c.use("macrovascular_invasion")
    if c.facts.macrovascular_invasion or c.extrahepatic:
        return (
            _Options("8")
            .add("systemic-therapy", R)
            .add("haic", o)
            .add("tare", o)
            .add("sbrt", o)
            .outcome("not-resectable")
        )
    return None


def rule_9(c: Context) -> Outcome | None:
    """9 | hcc and Child-Pugh B | not-resectable | transplant-evaluation R if within_milan,
    ablation o if small_for_ablation, tace o, systemic-therapy o."""
    if c.hcc and c.child_pugh_class == "B":
        return (
            _Options("9")
            .add("transplant-evaluation", R, when=c.within_milan)
            .add("ablation", o, when=c.small_for_ablation)
            .add("tace", o)
            .add("systemic-therapy", o)
            .outcome("not-resectable")
        )
    return None


def rule_10(c: Context) -> Outcome | None:
    """10 | hcc and portal_hypertension present or suspected | not-resectable |
    transplant-evaluation R if within_milan, ablation R if small_for_ablation, tace o."""
    if not c.hcc:
        return None
    c.use("portal_hypertension")
    if c.facts.portal_hypertension in ("present", "suspected"):
        return (
            _Options("10")
            .add("transplant-evaluation", R, when=c.within_milan)
            .add("ablation", R, when=c.small_for_ablation)
            .add("tace", o)
            .outcome("not-resectable")
        )
    return None


def rule_11(c: Context) -> Outcome | None:
    """11 | hcc and distribution diffuse | not-resectable | systemic-therapy R, haic o, tare o."""
    if c.hcc and c.distribution == "diffuse":
        return (
            _Options("11")
            .add("systemic-therapy", R)
            .add("haic", o)
            .add("tare", o)
            .outcome("not-resectable")
        )
    return None


def rule_12(c: Context) -> Outcome | None:
    """12 | hcc and distribution bilobar | not-resectable | tace R, haic o, tare o,
    transplant-evaluation R if within_milan else o if within_up_to_seven,
    ablation o if small_for_ablation, systemic-therapy o."""
    if c.hcc and c.distribution == "bilobar":
        opts = _Options("12").add("tace", R).add("haic", o).add("tare", o)
        if c.within_milan:
            opts.add("transplant-evaluation", R)
        else:
            opts.add("transplant-evaluation", o, when=c.within_up_to_seven)
        return (
            opts.add("ablation", o, when=c.small_for_ablation)
            .add("systemic-therapy", o)
            .outcome("not-resectable")
        )
    return None


def rule_13(c: Context) -> Outcome | None:
    """13 | hcc, distribution right or left, flr_low | potentially-resectable |
    liver-augmentation R, resection by location o, tace o, transplant-evaluation o if
    within_milan."""
    if c.hcc and c.distribution in ("right", "left") and c.flr_low:
        return (
            _Options("13")
            .add("liver-augmentation", R)
            .by_location(c, o)
            .add("tace", o)
            .add("transplant-evaluation", o, when=c.within_milan)
            .outcome("potentially-resectable")
        )
    return None


def rule_14(c: Context) -> Outcome | None:
    """14 | hcc, distribution right or left | resectable | resection by location R,
    ablation o if small_for_ablation, transplant-evaluation o if within_milan, tace o."""
    if c.hcc and c.distribution in ("right", "left"):
        return (
            _Options("14")
            .by_location(c, R)
            .add("ablation", o, when=c.small_for_ablation)
            .add("transplant-evaluation", o, when=c.within_milan)
            .add("tace", o)
            .outcome("resectable")
        )
    return None


def rule_15(c: Context) -> Outcome | None:
    """15 | secondary and Child-Pugh B | not-resectable | systemic-therapy R,
    ablation o if small_for_ablation, sbrt o."""
    if c.secondary and c.child_pugh_class == "B":
        return (
            _Options("15")
            .add("systemic-therapy", R)
            .add("ablation", o, when=c.small_for_ablation)
            .add("sbrt", o)
            .outcome("not-resectable")
        )
    return None


def rule_16(c: Context) -> Outcome | None:
    """16 | secondary, colorectal or neuroendocrine, extrahepatic disease |
    potentially-resectable | systemic-therapy R, resection by location o,
    ablation o if small_for_ablation."""
    if c.secondary and c.primary in COLORECTAL_OR_NET and c.extrahepatic:
        return (
            _Options("16")
            .add("systemic-therapy", R)
            .by_location(c, o)
            .add("ablation", o, when=c.small_for_ablation)
            .outcome("potentially-resectable")
        )
    return None


def rule_17(c: Context) -> Outcome | None:
    """17 | secondary, colorectal, distribution diffuse | not-resectable | systemic-therapy R,
    haic o, tare o, transplant-evaluation o if transmet_like."""
    if c.secondary and c.primary == "colorectal" and c.distribution == "diffuse":
        return (
            _Options("17")
            .add("systemic-therapy", R)
            .add("haic", o)
            .add("tare", o)
            .add("transplant-evaluation", o, when=c.transmet_like)
            .outcome("not-resectable")
        )
    return None


def rule_18(c: Context) -> Outcome | None:
    """18 | secondary, neuroendocrine, distribution diffuse | not-resectable |
    systemic-therapy R, tace o, tare o."""
    if c.secondary and c.primary == "neuroendocrine" and c.distribution == "diffuse":
        return (
            _Options("18")
            .add("systemic-therapy", R)
            .add("tace", o)
            .add("tare", o)
            .outcome("not-resectable")
        )
    return None


def rule_19(c: Context) -> Outcome | None:
    """19 | secondary, colorectal or neuroendocrine, distribution bilobar |
    potentially-resectable | colorectal: resection-local R, liver-augmentation R if flr_low
    else o, ablation o if small_for_ablation, systemic-therapy o. neuroendocrine:
    resection-local o (debulking), tace o, tare o, systemic-therapy R."""
    if not (c.secondary and c.primary in COLORECTAL_OR_NET and c.distribution == "bilobar"):
        return None
    opts = _Options("19")
    if c.primary == "colorectal":
        opts.add("resection-local", R).add("liver-augmentation", c.flr_low)
        opts.add("ablation", o, when=c.small_for_ablation).add("systemic-therapy", o)
    else:
        opts.add("resection-local", o, qualifier="debulking").add("tace", o).add("tare", o)
        opts.add("systemic-therapy", R)
    return opts.outcome("potentially-resectable")


def rule_20(c: Context) -> Outcome | None:
    """20 | secondary, colorectal or neuroendocrine, right/left, flr_low |
    potentially-resectable | liver-augmentation R, resection by location o,
    ablation o if small_for_ablation, systemic-therapy o."""
    if (
        c.secondary
        and c.primary in COLORECTAL_OR_NET
        and c.distribution in ("right", "left")
        and c.flr_low
    ):
        return (
            _Options("20")
            .add("liver-augmentation", R)
            .by_location(c, o)
            .add("ablation", o, when=c.small_for_ablation)
            .add("systemic-therapy", o)
            .outcome("potentially-resectable")
        )
    return None


def rule_21(c: Context) -> Outcome | None:
    """21 | secondary, colorectal or neuroendocrine, right/left | resectable |
    resection by location R, ablation o if small_for_ablation, systemic-therapy o
    (perioperative)."""
    if c.secondary and c.primary in COLORECTAL_OR_NET and c.distribution in ("right", "left"):
        return (
            _Options("21")
            .by_location(c, R)
            .add("ablation", o, when=c.small_for_ablation)
            .add("systemic-therapy", o, qualifier="perioperative")
            .outcome("resectable")
        )
    return None


def rule_22(c: Context) -> Outcome | None:
    """22 | secondary, other primary (breast, lung, stomach, other, unknown), no extrahepatic
    disease, right/left, lesion_count <= 3 | potentially-resectable | systemic-therapy R,
    resection by location o, ablation o if small_for_ablation, sbrt o."""
    if (
        c.secondary
        and c.primary in OTHER_PRIMARIES
        and not c.extrahepatic
        and c.distribution in ("right", "left")
        and c.lesion_count is not None
        and c.lesion_count <= c.t.other_primary_max_lesions
    ):
        return (
            _Options("22")
            .add("systemic-therapy", R)
            .by_location(c, o)
            .add("ablation", o, when=c.small_for_ablation)
            .add("sbrt", o)
            .outcome("potentially-resectable")
        )
    return None


def rule_23(c: Context) -> Outcome | None:
    """23 | secondary, any other case | not-resectable | systemic-therapy R,
    sbrt o if lesion_count <= 3."""
    if c.secondary:
        count = c.lesion_count
        return (
            _Options("23")
            .add("systemic-therapy", R)
            .add("sbrt", o, when=count is not None and count <= c.t.sbrt_max_lesions)
            .outcome("not-resectable")
        )
    return None


RULES: Final[tuple[tuple[str, Rule], ...]] = (
    ("0", rule_0),
    ("1", rule_1),
    ("2", rule_2),
    ("3", rule_3),
    ("4", rule_4),
    ("5", rule_5),
    ("6", rule_6),
    ("7", rule_7),
    ("8", rule_8),
    ("9", rule_9),
    ("10", rule_10),
    ("11", rule_11),
    ("12", rule_12),
    ("13", rule_13),
    ("14", rule_14),
    ("15", rule_15),
    ("16", rule_16),
    ("17", rule_17),
    ("18", rule_18),
    ("19", rule_19),
    ("20", rule_20),
    ("21", rule_21),
    ("22", rule_22),
    ("23", rule_23),
)
"""The decision table in the spec's order; the first rule that matches decides."""

FIRST_TABLE_RULE_WITH_ADDITIONS: Final = 6


# --------------------------------------------------------------------------------------------
# Additions after the table (for every verdict from rule 6 on)
# --------------------------------------------------------------------------------------------


def addition_monitoring(c: Context, verdict: Verdict | None, offered: list[OfferedOption]) -> None:
    """monitoring o when not-resectable, tumour_kind secondary and no symptoms."""
    c.use("symptoms")
    if (
        verdict == "not-resectable"
        and c.secondary
        and not c.facts.symptoms
        and all(opt.code != "monitoring" for opt in offered)
    ):
        offered.append(OfferedOption("monitoring", False, None, "addition:monitoring"))


def addition_supportive_care(
    c: Context, verdict: Verdict | None, offered: list[OfferedOption]
) -> None:
    """best-supportive-care o when not-resectable and there are symptoms, unless offered."""
    if (
        verdict == "not-resectable"
        and c.facts.symptoms
        and all(opt.code != "best-supportive-care" for opt in offered)
    ):
        offered.append(
            OfferedOption(
                "best-supportive-care", False, "symptom relief", "addition:best-supportive-care"
            )
        )


# --------------------------------------------------------------------------------------------
# decide()
# --------------------------------------------------------------------------------------------


def decide(
    facts: Facts, thresholds: Thresholds = DEFAULT_THRESHOLDS, scores: Scores | None = None
) -> Assessment:
    """Apply the table to ``facts``: the verdict, options, missing data and notes.

    Deterministic and pure: the same facts and thresholds always give the same assessment.
    """
    scores = compute_scores(facts, thresholds) if scores is None else scores
    c = Context(facts, scores, thresholds)
    outcome = Outcome(None)
    rule = "0"
    for number, fn in RULES:
        found = fn(c)
        if found is not None:
            outcome, rule = found, number
            break
    if outcome.verdict is None:
        return Assessment(
            facts=facts,
            verdict=None,
            rule="0",
            scores=scores,
            data_quality=facts.data_quality,
            assumptions=facts.assumptions,
            facts_used=tuple(c.used),
        )

    options = list(outcome.options)
    if int(rule) >= FIRST_TABLE_RULE_WITH_ADDITIONS:
        addition_monitoring(c, outcome.verdict, options)
        addition_supportive_care(c, outcome.verdict, options)
    options.append(OfferedOption("mdt-review", True, None, rule))
    facts_used = tuple(c.used)
    ordered = tuple(
        [opt for opt in options if opt.recommended]
        + [opt for opt in options if not opt.recommended]
    )

    flr_threshold: float | None = None
    notes = list(outcome.notes)
    if facts.hcc_and_secondary_found and facts.tumour_kind == "hcc":
        notes.append(
            "Both hepatocellular carcinoma and liver metastases were found; "
            "the hepatocellular carcinoma rules were applied."
        )
    if c.flr_consulted and rule in ("13", "14", "19", "20", "21"):
        flr_threshold = c.flr_threshold
        notes.append(
            f"FLR threshold {flr_threshold:g} % applied; "
            f"{thresholds.flr_threshold_after_chemotherapy:g} % applies after more than "
            "12 weeks of chemotherapy."
        )

    return Assessment(
        facts=facts,
        verdict=outcome.verdict,
        rule=rule,
        options=ordered,
        scores=scores,
        missing=_missing(c, rule, ordered),
        assumptions=_assumptions(facts, scores),
        data_quality=facts.data_quality,
        risk_modifiers=_risk_modifiers(c),
        flr_threshold=flr_threshold,
        heuristics=tuple(dict.fromkeys(c.heuristics)),
        notes=tuple(notes),
        facts_used=facts_used,
    )


def _stale_since(facts: Facts, *names: str) -> datetime | None:
    dates = [facts.stale[n] for n in names if n in facts.stale]
    return max(dates) if dates else None


_CP_LABS: Final = (("bilirubin", "bilirubin"), ("albumin", "albumin"), ("inr", "INR"))
_HEMIHEPATECTOMY: Final = frozenset({"resection-right-hepatectomy", "resection-left-hepatectomy"})


def _missing(c: Context, rule: str, options: tuple[OfferedOption, ...]) -> tuple[MissingItem, ...]:
    """Unknown or stale facts: §5 essentials, and "would refine" items.

    Rule 2 lists none (more data would not bring the tumour into these rules). Essential is
    a property of the fact (§5), so under rules 3 and 4, which decide before rule 5, the
    unknown essentials are still listed as essential (they are what an MDT would ask for).
    """
    f = c.facts
    if rule in ("0", "2"):
        return ()
    essential = True
    items: list[MissingItem] = []
    if rule == "1":
        items.append(
            MissingItem(
                "diagnosis-confirmation", True, detail="verification status is not confirmed"
            )
        )
    if f.distribution == "unknown":
        items.append(
            MissingItem(
                "distribution", essential, detail="no liver lesion with a segment or lobe body site"
            )
        )
    if f.lesion_count is None:
        items.append(MissingItem("lesion-count", essential))
    if c.scores.child_pugh is None:
        stale = [key for key, _ in _CP_LABS if key in f.stale]
        absent = [label for key, label in _CP_LABS if key not in f.labs and key not in stale]
        parts = []
        if absent:
            parts.append("no " + ", ".join(absent))
        if stale:
            labels = dict(_CP_LABS)
            parts.append("stale " + ", ".join(labels[k] for k in stale))
        items.append(
            MissingItem(
                "child-pugh",
                essential,
                _stale_since(f, *stale),
                detail="; ".join(parts),
            )
        )
    if f.ecog is None:
        items.append(
            MissingItem("ecog", essential, _stale_since(f, "ecog"), detail="ECOG or Karnofsky")
        )
    if f.largest_cm is None:
        if f.tumour_kind == "hcc":
            items.append(MissingItem("largest-size", essential))
        elif c.size_for_ablation_consulted or rule in ("1", "3", "4", "5"):
            items.append(MissingItem("largest-size", False, detail="size decides ablation"))
    if f.flr_percent is None and (
        c.flr_consulted or any(o.code in _HEMIHEPATECTOMY for o in options)
    ):
        items.append(MissingItem("flr", False, detail="CT volumetry before a hemihepatectomy"))
    if f.age is None and c.transmet_consulted:
        items.append(MissingItem("age", False, detail="age decides transplant evaluation"))
    return tuple(items)


def _assumptions(facts: Facts, scores: Scores) -> tuple[str, ...]:
    out: list[str] = []
    if facts.ascites_assumed and facts.ascites_points is not None:
        out.append("Ascites severity not recorded: assumed mild (2 Child-Pugh points).")
    if facts.encephalopathy_assumed and facts.encephalopathy_points is not None:
        out.append(
            "Hepatic encephalopathy severity not recorded: assumed mild (2 Child-Pugh points)."
        )
    if facts.macrovascular_presumed and facts.tumour_kind == "hcc":
        out.append(
            "Macrovascular invasion presumed from portal vein thrombosis "
            "(tumour thrombus not confirmed)."
        )
    out.extend(facts.assumptions)
    return tuple(out)


def _risk_modifiers(c: Context) -> frozenset[RiskModifier]:
    f = c.facts
    found: set[RiskModifier] = set()
    if f.cirrhosis:
        found.add("cirrhosis")
    if f.portal_hypertension in ("present", "suspected"):
        found.add("portal-hypertension")
    cp: Score | None = c.scores.child_pugh
    if cp is not None and cp.category == "B":
        found.add("child-pugh-b")
    if f.flr_percent is not None and f.flr_percent < c.flr_threshold:
        found.add("low-flr")
    if f.ascites_points is not None:
        found.add("ascites")
    if "jaundice" in f.symptoms:
        found.add("jaundice")
    return frozenset(found)
