"""The decision table of clinical-rules.md §3 (rule set v2, "2026.12"), rule by rule, in order.

Each rule is a function ``rule_<n>`` whose docstring is the table row; :data:`RULES` lists
them in the spec's order (``"0"``, ``"1"``, ``"1a"``, ... ``"23"``) and :func:`decide`
applies them until one matches. After the matching row come, in this order:

1. the FLR fallback of "resection by location": a ``resectable`` or
   ``potentially-resectable`` row left with no resection option (a hemihepatectomy held back
   by a low FLR) offers liver augmentation (*o*) instead (:func:`fallback_augmentation`);
2. the additions after the table, from rule 6 on (:func:`addition_monitoring`,
   :func:`addition_supportive_care`);
3. the previous-liver-resection modifier (:func:`modifier_previous_resection`);
4. last, nothing the order check at signing stops as critical is recommended
   (:func:`never_recommend_what_signing_stops`, a conservative reading, docs/clinical.md).

Options are collected in the order the row names them ("table order"); the assessment then
lists recommended options first, each group keeping that order, and ``mdt-review``
(recommended in every verdict, never repeated in the table) closes the recommended group.

The v2 invariant (a resectable or potentially-resectable verdict always offers a resection
or augmentation; no resection recommended under jaundice, Child-Pugh C, or hcc with
bilirubin above normal or portal hypertension; no hemihepatectomy recommended with an
unknown FLR or after a previous hemihepatectomy; no hemihepatectomy at all with a low FLR
except as *o* in rules 13 and 20) follows from the rows themselves; the property tests in
``tests/clinical/test_properties.py`` hold the engine to it.
"""

from __future__ import annotations

import dataclasses
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
    Scores,
    Verdict,
)
from service.clinical.order_checks import critical_stops
from service.clinical.scores import compute_scores
from service.clinical.thresholds import DEFAULT_THRESHOLDS, Thresholds

RULE_SET_VERSION: Final = "2026.12"
"""The version of the rule set this module implements (docs/rules.md)."""

R: Final = True
"""**R**: offered and recommended."""
o: Final = False
"""*o*: offered, not recommended."""

COLORECTAL: Final = frozenset({"colorectal"})
COLORECTAL_OR_NET: Final = COLORECTAL | {"neuroendocrine"}
OTHER_PRIMARIES: Final = frozenset({"breast", "lung", "stomach", "other", "unknown"})
ONE_SIDED: Final = frozenset({"right", "left", "caudate"})
"""§3: "one-sided" means distribution right, left or caudate."""
HEMIHEPATECTOMIES: Final[frozenset[OptionCode]] = frozenset(
    {"resection-right-hepatectomy", "resection-left-hepatectomy"}
)
RESECTIONS: Final[frozenset[OptionCode]] = HEMIHEPATECTOMIES | {"resection-local"}
"""The resection options of §3."""
PORTAL_HYPERTENSION_BARS_RESECTION: Final = frozenset({"present", "suspected"})
"""Rule 10: portal hypertension that rules resection out in hcc (``not-excluded`` is rule
12b, ``unknown`` is rule 5)."""
ROWS_THAT_MAY_KEEP_A_HEMIHEPATECTOMY_WITH_LOW_FLR: Final = frozenset({"13", "20"})
"""§3: a hemihepatectomy is never offered when flr_low, except as *o* in rules 13 and 20."""


@dataclass
class Context:
    """Facts, scores and derived values (§2 "Derived"), recording which facts rules read."""

    facts: Facts
    scores: Scores
    t: Thresholds
    used: dict[str, None] = field(default_factory=dict)
    heuristics: list[str] = field(default_factory=list)
    flr_consulted: bool = False
    """The rule being tried consulted the FLR (reset before each rule)."""
    size_for_ablation_consulted: bool = False
    transmet_consulted: bool = False

    def use(self, *names: str) -> None:
        """Record facts as consulted. ``used`` is an ordered set: a fact keeps the position
        of its first consultation (assigning an existing key does not move it)."""
        used = self.used
        for name in names:
            used[name] = None

    # --- facts, each recorded in ``used`` as it is read so the card can say which ones
    # decided. The table reads them ~100 times per call, so the single-fact properties
    # record with one dict assignment rather than through use() and each other.
    @property
    def kind(self) -> str | None:
        self.used["tumour_kind"] = None
        return self.facts.tumour_kind

    @property
    def hcc(self) -> bool:
        self.used["tumour_kind"] = None
        return self.facts.tumour_kind == "hcc"

    @property
    def secondary(self) -> bool:
        self.used["tumour_kind"] = None
        return self.facts.tumour_kind == "secondary"

    @property
    def primary(self) -> str | None:
        self.used["primary_site"] = None
        return self.facts.primary_site

    @property
    def colorectal(self) -> bool:
        """secondary and primary_site colorectal (the primary is read only for a secondary)."""
        return self._secondary_from(COLORECTAL)

    @property
    def colorectal_or_net(self) -> bool:
        return self._secondary_from(COLORECTAL_OR_NET)

    def _secondary_from(self, primaries: frozenset[str]) -> bool:
        used, f = self.used, self.facts
        used["tumour_kind"] = None
        if f.tumour_kind != "secondary":
            return False
        used["primary_site"] = None
        return f.primary_site in primaries

    @property
    def distribution(self) -> str:
        self.used["distribution"] = None
        return self.facts.distribution

    @property
    def one_sided(self) -> bool:
        self.used["distribution"] = None
        return self.facts.distribution in ONE_SIDED

    @property
    def ecog(self) -> int | None:
        self.used["ecog"] = None
        return self.facts.ecog

    @property
    def child_pugh_class(self) -> str | None:
        self.used["child_pugh"] = None
        cp = self.scores.child_pugh
        return cp.category if cp is not None else None

    @property
    def cirrhosis(self) -> bool:
        self.used["cirrhosis"] = None
        return self.facts.cirrhosis

    @property
    def extrahepatic(self) -> bool:
        self.used["extrahepatic_disease"] = None
        return self.facts.extrahepatic_disease

    @property
    def extrahepatic_limited(self) -> bool:
        self.used["extrahepatic_limited"] = None
        return self.facts.extrahepatic_limited

    @property
    def lesion_count(self) -> int | None:
        self.used["lesion_count"] = None
        return self.facts.lesion_count

    @property
    def portal_hypertension(self) -> str:
        self.used["portal_hypertension"] = None
        return self.facts.portal_hypertension

    @property
    def bilirubin_above_normal(self) -> bool:
        self.used["bilirubin_above_normal"] = None
        return self.facts.bilirubin_above_normal

    @property
    def jaundice(self) -> bool:
        self.used["jaundice"] = None
        return self.facts.jaundice

    @property
    def single_section(self) -> bool:
        self.used["single_section"] = None
        return self.facts.single_section

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
            self.used["primary_site"] = None
        limit = t.ablation_max_lesions_colorectal if colorectal else t.ablation_max_lesions_other
        return f.largest_cm <= t.ablation_max_cm and f.lesion_count <= limit

    @property
    def within_milan(self) -> bool:
        """No macrovascular invasion or extrahepatic disease; 1 lesion <= 5 cm or 2-3 lesions
        <= 3 cm. AFP does not enter it (v2)."""
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
    def bclc_b_burden(self) -> bool:
        """(v2) lesion_count > 3, or 2 <= lesion_count <= 3 with largest_cm > 3."""
        self.use("lesion_count", "largest_cm")
        f, t = self.facts, self.t
        if f.lesion_count is None:
            return False
        if f.lesion_count > t.bclc_early_max_lesions:
            return True
        return (
            f.lesion_count >= 2
            and f.largest_cm is not None
            and f.largest_cm > t.bclc_early_multiple_max_cm
        )

    @property
    def major_resection(self) -> bool:
        """(v2) resection by location names a hemihepatectomy as its recommended resection:
        distribution right or left and not single_section."""
        return self.distribution in ("right", "left") and not self.single_section

    @property
    def flr_threshold(self) -> float:
        """40 % with cirrhosis or Child-Pugh B, otherwise 20 %."""
        self.use("cirrhosis", "child_pugh")
        compromised = self.facts.cirrhosis or self.child_pugh_class == "B"
        return self.t.flr_threshold_compromised if compromised else self.t.flr_threshold_normal

    @property
    def flr_known(self) -> bool:
        self.flr_consulted = True
        self.used["flr_percent"] = None
        return self.facts.flr_percent is not None

    @property
    def flr_low(self) -> bool:
        """flr_percent known and below flr_threshold (an unknown FLR is not low)."""
        flr = self.facts.flr_percent
        return self.flr_known and flr is not None and flr < self.flr_threshold

    @property
    def flr_adequate(self) -> bool:
        """flr_percent known and not flr_low."""
        return self.flr_known and not self.flr_low

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
    """Collects a row's options in table order; ``add(code, R/o, when=...)``."""

    def __init__(self, rule: str) -> None:
        self.rule = rule
        self.items: list[OfferedOption] = []
        self.codes: set[str] = set()
        """The codes in ``items`` (an option is offered once: its first offer counts)."""

    def add(
        self,
        code: OptionCode,
        recommended: bool,
        when: bool = True,
        qualifier: str | None = None,
    ) -> _Options:
        if when and code not in self.codes:
            self.codes.add(code)
            self.items.append(OfferedOption(code, recommended, qualifier, self.rule))
        return self

    def by_location(self, c: Context, recommended: bool) -> _Options:
        """ "Resection by location" (§3, v2), with the row's flag ``recommended``.

        - ``caudate`` or ``bilobar`` -> resection-local;
        - ``single_section`` (right or left) -> resection-local with the row's flag; the
          hemihepatectomy of that side *o*, and only when the FLR is known and not low
          (a sectionectomy is never held back by the FLR);
        - otherwise (a major resection) ``right`` -> right hepatectomy, ``left`` -> left
          hepatectomy with the row's flag, never offered when flr_low except as *o* in rules
          13 and 20; plus resection-local with the row's flag for left-sided surface disease
          with lesion_count <= 3, and resection-local *o* for colorectal disease with
          lesion_count <= 3 (parenchyma-sparing resection, never held back by the FLR);
        - ``diffuse`` or ``unknown`` -> no resection option.
        """
        distribution = c.distribution
        if distribution in ("caudate", "bilobar"):
            return self.add("resection-local", recommended)
        if distribution not in ("right", "left"):
            return self
        hemi: OptionCode = (
            "resection-right-hepatectomy"
            if distribution == "right"
            else "resection-left-hepatectomy"
        )
        if c.single_section:
            self.add("resection-local", recommended)
            return self.add(hemi, o, when=c.flr_adequate)
        if not c.flr_low:
            self.add(hemi, recommended)
        elif self.rule in ROWS_THAT_MAY_KEEP_A_HEMIHEPATECTOMY_WITH_LOW_FLR:
            self.add(hemi, o)
        count = c.lesion_count
        surface_local = (
            distribution == "left"
            and count is not None
            and count <= c.t.left_surface_local_max_lesions
            and _surface(c)
        )
        sparing = (
            count is not None
            and count <= c.t.colorectal_parenchyma_sparing_max_lesions
            and c.colorectal
        )
        if surface_local:
            self.add("resection-local", recommended)
        elif sparing:
            self.add("resection-local", o)
        return self

    def outcome(self, verdict: Verdict, *notes: str) -> Outcome:
        return Outcome(verdict, tuple(self.items), notes)


def _surface(c: Context) -> bool:
    c.use("surface")
    return c.facts.surface


Rule = Callable[[Context], Outcome | None]

# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


def rule_0(c: Context) -> Outcome | None:
    """0 | no current liver malignancy, or (v2) the patient is deceased | - | no cards at all."""
    if c.facts.deceased:
        c.use("deceased")
        return Outcome(None)
    if c.kind is None:
        return Outcome(None)
    return None


def rule_1(c: Context) -> Outcome | None:
    """1 | liver malignancy present but none confirmed | indeterminate | data: confirm diagnosis."""
    c.use("confirmed")
    if not c.facts.confirmed:
        return _Options("1").outcome("indeterminate")
    return None


def rule_1a(c: Context) -> Outcome | None:
    """1a | (v2) tumour_kind unspecified | indeterminate | data: confirm whether the liver
    tumour is a primary liver cancer (and which type) or a metastasis (biopsy or typical
    imaging); the card names the code found."""
    if c.kind == "unspecified":
        codes = ", ".join(c.facts.unspecified_codes) or "C22.8 or C22.9"
        note = (
            f"The liver tumour is coded {codes}, which does not say whether it is a primary "
            "liver cancer (and which type) or a metastasis: biopsy or typical imaging decides "
            "before these rules can apply."
        )
        return _Options("1a").outcome("indeterminate", note)
    return None


def rule_2(c: Context) -> Outcome | None:
    """2 | tumour_kind other-liver-primary (e.g. cholangiocarcinoma) | indeterminate | card
    says the tumour type is outside these rules."""
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
    """3 | ECOG >= 3 | not-resectable | best-supportive-care R; systemic-therapy o (v2) only
    when ECOG = 3."""
    ecog = c.ecog
    if ecog is not None and ecog >= c.t.ecog_not_resectable:
        return (
            _Options("3")
            .add("best-supportive-care", R)
            .add("systemic-therapy", o, when=ecog == c.t.ecog_not_resectable)
            .outcome("not-resectable")
        )
    return None


def rule_4(c: Context) -> Outcome | None:
    """4 | Child-Pugh C and (v2) (cirrhosis or hcc) | not-resectable | hcc and within_milan:
    transplant-evaluation R; otherwise best-supportive-care R."""
    if c.child_pugh_class == "C" and (c.cirrhosis or c.hcc):
        opts = _Options("4")
        if c.hcc and c.within_milan:
            opts.add("transplant-evaluation", R)
        else:
            opts.add("best-supportive-care", R)
        return opts.outcome("not-resectable")
    return None


def rule_4a(c: Context) -> Outcome | None:
    """4a | (v2) secondary and (jaundice, or Child-Pugh C without cirrhosis) | indeterminate |
    none besides mdt-review; the card says the cause of the jaundice or of the failing liver
    tests must be found first (bile-duct imaging; drainage when obstructed) and resection is
    not considered until they have recovered; the data-needed card suggests bile-duct
    imaging."""
    if not c.secondary:
        return None
    jaundice = c.jaundice
    failing = c.child_pugh_class == "C" and not c.cirrhosis
    if not (jaundice or failing):
        return None
    what = "jaundice" if jaundice else "liver tests of Child-Pugh class C without cirrhosis"
    if jaundice and failing:
        what = "jaundice and liver tests of Child-Pugh class C without cirrhosis"
    note = (
        f"Liver metastases with {what}: the cause must be found first (bile-duct imaging; "
        "drainage when the ducts are obstructed). Resection is not considered until the "
        "liver tests have recovered."
    )
    return _Options("4a").outcome("indeterminate", note)


def essential_unknown(facts: Facts, scores: Scores) -> list[str]:
    """The essential facts of §5 (v2) that are unknown; a stale count, size or FLR is unknown
    (the facts side sets it to None and records the date in ``facts.stale``)."""
    missing = []
    hcc = facts.tumour_kind == "hcc"
    diffuse_hcc = hcc and facts.distribution == "diffuse"
    if facts.distribution == "unknown":
        missing.append("distribution")
    if facts.lesion_count is None and not diffuse_hcc:
        missing.append("lesion_count")
    if scores.child_pugh is None:
        missing.append("child_pugh")
    if facts.ecog is None:
        missing.append("ecog")
    if hcc and not diffuse_hcc and facts.largest_cm is None:
        missing.append("largest_cm")
    if hcc and facts.portal_hypertension == "unknown":
        missing.append("portal_hypertension")
    return missing


def rule_5(c: Context) -> Outcome | None:
    """5 | any essential fact unknown (§5) | indeterminate | none besides mdt-review;
    data-needed card."""
    c.use("distribution", "lesion_count", "child_pugh", "ecog")
    if c.hcc:
        c.use("largest_cm", "cirrhosis", "portal_hypertension")
    if essential_unknown(c.facts, c.scores):
        return _Options("5").outcome("indeterminate")
    return None


def rule_6(c: Context) -> Outcome | None:
    """6 | ECOG 2, (v2) primary_site not pancreas or neuroendocrine-carcinoma (rules 7 and 7a
    decide those) | not-resectable | systemic-therapy R, ablation o if small_for_ablation,
    sbrt o."""
    if c.ecog == c.t.ecog_limited and c.primary not in ("pancreas", "neuroendocrine-carcinoma"):
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


def rule_7a(c: Context) -> Outcome | None:
    """7a | (v2) primary_site neuroendocrine-carcinoma | not-resectable | systemic-therapy R."""
    if c.primary == "neuroendocrine-carcinoma":
        return _Options("7a").add("systemic-therapy", R).outcome("not-resectable")
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
    """10 | hcc, (v2) distribution not diffuse, lesion_count <= 3, and (portal_hypertension
    present or suspected, or (v2) bilirubin_above_normal or jaundice) | not-resectable |
    transplant-evaluation R if within_milan, ablation R if small_for_ablation, tace o."""
    if not (c.hcc and c.distribution != "diffuse"):
        return None
    count = c.lesion_count
    if count is None or count > c.t.bclc_early_max_lesions:
        return None
    if (
        c.portal_hypertension in PORTAL_HYPERTENSION_BARS_RESECTION
        or c.bilirubin_above_normal
        or c.jaundice
    ):
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
    """12 | hcc and distribution bilobar | not-resectable | (v2) within_milan and
    small_for_ablation (BCLC A): ablation R, transplant-evaluation R, tace o. Otherwise:
    tace R, haic o, tare o, transplant-evaluation R if within_milan else o if
    within_up_to_seven, ablation o if small_for_ablation, systemic-therapy o."""
    if not (c.hcc and c.distribution == "bilobar"):
        return None
    milan, small = c.within_milan, c.small_for_ablation
    if milan and small:
        return (
            _Options("12")
            .add("ablation", R)
            .add("transplant-evaluation", R)
            .add("tace", o)
            .outcome("not-resectable")
        )
    opts = _Options("12").add("tace", R).add("haic", o).add("tare", o)
    if milan:
        opts.add("transplant-evaluation", R)
    else:
        opts.add("transplant-evaluation", o, when=c.within_up_to_seven)
    return opts.add("ablation", o, when=small).add("systemic-therapy", o).outcome("not-resectable")


def rule_12a(c: Context) -> Outcome | None:
    """12a | (v2) hcc, one-sided, bclc_b_burden | not-resectable | tace R, resection by
    location o (CNLC: selected multinodular disease confined to one lobe) only when
    portal_hypertension is absent and neither bilirubin_above_normal nor jaundice,
    transplant-evaluation o if within_up_to_seven, systemic-therapy o."""
    if not (c.hcc and c.one_sided and c.bclc_b_burden):
        return None
    opts = _Options("12a").add("tace", R)
    if c.portal_hypertension == "absent" and not c.bilirubin_above_normal and not c.jaundice:
        opts.by_location(c, o)
    return (
        opts.add("transplant-evaluation", o, when=c.within_up_to_seven)
        .add("systemic-therapy", o)
        .outcome("not-resectable")
    )


def rule_12b(c: Context) -> Outcome | None:
    """12b | (v2) hcc, one-sided, portal_hypertension not-excluded | potentially-resectable |
    resection by location o, ablation o if small_for_ablation, transplant-evaluation o if
    within_milan, tace o; the card says liver stiffness or HVPG should exclude clinically
    significant portal hypertension before resection (Baveno VII)."""
    if not (c.hcc and c.one_sided and c.portal_hypertension == "not-excluded"):
        return None
    platelets = c.facts.labs.get("platelets")
    count = f" (platelets {platelets.value:g} x10^9/L)" if platelets is not None else ""
    note = (
        f"Portal hypertension is not excluded in cirrhosis{count}: liver stiffness or HVPG "
        "should exclude clinically significant portal hypertension before resection "
        "(Baveno VII)."
    )
    return (
        _Options("12b")
        .by_location(c, o)
        .add("ablation", o, when=c.small_for_ablation)
        .add("transplant-evaluation", o, when=c.within_milan)
        .add("tace", o)
        .outcome("potentially-resectable", note)
    )


VOLUMETRY_NOTE: Final = (
    "The future liver remnant is unknown: CT volumetry is needed before a hemihepatectomy."
)


def rule_13(c: Context) -> Outcome | None:
    """13 | hcc, one-sided, major_resection, flr_low | potentially-resectable |
    liver-augmentation R, resection by location o, tace o, transplant-evaluation o if
    within_milan."""
    if c.hcc and c.one_sided and c.major_resection and c.flr_low:
        return (
            _Options("13")
            .add("liver-augmentation", R)
            .by_location(c, o)
            .add("tace", o)
            .add("transplant-evaluation", o, when=c.within_milan)
            .outcome("potentially-resectable")
        )
    return None


def rule_13a(c: Context) -> Outcome | None:
    """13a | (v2) hcc, one-sided, major_resection, flr_percent unknown | potentially-resectable
    | resection by location o, ablation o if small_for_ablation, transplant-evaluation o if
    within_milan, tace o; the card and the data-needed card say CT volumetry is needed before
    a hemihepatectomy."""
    if c.hcc and c.one_sided and c.major_resection and not c.flr_known:
        return (
            _Options("13a")
            .by_location(c, o)
            .add("ablation", o, when=c.small_for_ablation)
            .add("transplant-evaluation", o, when=c.within_milan)
            .add("tace", o)
            .outcome("potentially-resectable", VOLUMETRY_NOTE)
        )
    return None


def rule_14(c: Context) -> Outcome | None:
    """14 | hcc, one-sided | resectable | resection by location R, ablation o if
    small_for_ablation, transplant-evaluation o if within_milan, tace o."""
    if c.hcc and c.one_sided:
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
    """15 | secondary, Child-Pugh B and (v2) cirrhosis | not-resectable | systemic-therapy R,
    ablation o if small_for_ablation, sbrt o.

    Without cirrhosis a Child-Pugh B from laboratory values alone does not decide: the rules
    go on and the risk modifier ``abnormal-liver-tests`` names it."""
    if c.secondary and c.child_pugh_class == "B" and c.cirrhosis:
        return (
            _Options("15")
            .add("systemic-therapy", R)
            .add("ablation", o, when=c.small_for_ablation)
            .add("sbrt", o)
            .outcome("not-resectable")
        )
    return None


def rule_16(c: Context) -> Outcome | None:
    """16 | secondary, colorectal or neuroendocrine, extrahepatic disease, (v2)
    extrahepatic_limited, distribution not diffuse | potentially-resectable |
    systemic-therapy R, resection by location o, ablation o if small_for_ablation."""
    if (
        c.colorectal_or_net
        and c.extrahepatic
        and c.extrahepatic_limited
        and c.distribution != "diffuse"
    ):
        return (
            _Options("16")
            .add("systemic-therapy", R)
            .by_location(c, o)
            .add("ablation", o, when=c.small_for_ablation)
            .outcome("potentially-resectable")
        )
    return None


def rule_16a(c: Context) -> Outcome | None:
    """16a | (v2) secondary, colorectal or neuroendocrine, extrahepatic disease not limited,
    distribution not diffuse | not-resectable | systemic-therapy R; neuroendocrine also
    tace o, tare o."""
    if (
        c.colorectal_or_net
        and c.extrahepatic
        and not c.extrahepatic_limited
        and c.distribution != "diffuse"
    ):
        net = c.primary == "neuroendocrine"
        return (
            _Options("16a")
            .add("systemic-therapy", R)
            .add("tace", o, when=net)
            .add("tare", o, when=net)
            .outcome("not-resectable")
        )
    return None


def rule_17(c: Context) -> Outcome | None:
    """17 | secondary, colorectal, distribution diffuse | not-resectable | systemic-therapy R,
    haic o, tare o, transplant-evaluation o if transmet_like."""
    if c.colorectal and c.distribution == "diffuse":
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
    """19 | secondary, colorectal or neuroendocrine, distribution bilobar (v2 colorectal only
    with lesion_count <= 10) | potentially-resectable | colorectal: resection-local R,
    liver-augmentation R if flr_low else o, ablation o if small_for_ablation,
    systemic-therapy o. neuroendocrine: resection-local o (debulking), tace o, tare o,
    systemic-therapy R."""
    if not (c.colorectal_or_net and c.distribution == "bilobar"):
        return None
    opts = _Options("19")
    if c.primary == "colorectal":
        count = c.lesion_count
        if count is None or count > c.t.colorectal_bilobar_max_lesions:
            return None
        opts.add("resection-local", R).add("liver-augmentation", c.flr_low)
        opts.add("ablation", o, when=c.small_for_ablation).add("systemic-therapy", o)
    else:
        opts.add("resection-local", o, qualifier="debulking").add("tace", o).add("tare", o)
        opts.add("systemic-therapy", R)
    return opts.outcome("potentially-resectable")


def rule_19a(c: Context) -> Outcome | None:
    """19a | (v2) secondary, colorectal, distribution bilobar, lesion_count > 10 |
    potentially-resectable | systemic-therapy R (conversion chemotherapy first),
    resection-local o, liver-augmentation o, transplant-evaluation o if transmet_like."""
    if not (c.colorectal and c.distribution == "bilobar"):
        return None
    count = c.lesion_count
    if count is None or count <= c.t.colorectal_bilobar_max_lesions:
        return None
    return (
        _Options("19a")
        .add("systemic-therapy", R, qualifier="conversion chemotherapy first")
        .add("resection-local", o)
        .add("liver-augmentation", o)
        .add("transplant-evaluation", o, when=c.transmet_like)
        .outcome("potentially-resectable")
    )


def rule_20(c: Context) -> Outcome | None:
    """20 | secondary, colorectal or neuroendocrine, one-sided, major_resection, flr_low |
    potentially-resectable | liver-augmentation R, resection by location o,
    ablation o if small_for_ablation, systemic-therapy o."""
    if c.colorectal_or_net and c.one_sided and c.major_resection and c.flr_low:
        return (
            _Options("20")
            .add("liver-augmentation", R)
            .by_location(c, o)
            .add("ablation", o, when=c.small_for_ablation)
            .add("systemic-therapy", o)
            .outcome("potentially-resectable")
        )
    return None


def rule_20a(c: Context) -> Outcome | None:
    """20a | (v2) secondary, colorectal or neuroendocrine, one-sided, major_resection,
    flr_percent unknown | potentially-resectable | resection by location o, ablation o if
    small_for_ablation, systemic-therapy o; CT volumetry needed before a hemihepatectomy."""
    if c.colorectal_or_net and c.one_sided and c.major_resection and not c.flr_known:
        return (
            _Options("20a")
            .by_location(c, o)
            .add("ablation", o, when=c.small_for_ablation)
            .add("systemic-therapy", o)
            .outcome("potentially-resectable", VOLUMETRY_NOTE)
        )
    return None


def rule_21(c: Context) -> Outcome | None:
    """21 | secondary, colorectal or neuroendocrine, one-sided | resectable |
    resection by location R, ablation o if small_for_ablation, systemic-therapy o
    (perioperative)."""
    if c.colorectal_or_net and c.one_sided:
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
    disease, one-sided, lesion_count <= 3 | potentially-resectable | systemic-therapy R,
    resection by location o, ablation o if small_for_ablation, sbrt o."""
    if (
        c.secondary
        and c.primary in OTHER_PRIMARIES
        and not c.extrahepatic
        and c.one_sided
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
    ("1a", rule_1a),
    ("2", rule_2),
    ("3", rule_3),
    ("4", rule_4),
    ("4a", rule_4a),
    ("5", rule_5),
    ("6", rule_6),
    ("7", rule_7),
    ("7a", rule_7a),
    ("8", rule_8),
    ("9", rule_9),
    ("10", rule_10),
    ("11", rule_11),
    ("12", rule_12),
    ("12a", rule_12a),
    ("12b", rule_12b),
    ("13", rule_13),
    ("13a", rule_13a),
    ("14", rule_14),
    ("15", rule_15),
    ("16", rule_16),
    ("16a", rule_16a),
    ("17", rule_17),
    ("18", rule_18),
    ("19", rule_19),
    ("19a", rule_19a),
    ("20", rule_20),
    ("20a", rule_20a),
    ("21", rule_21),
    ("22", rule_22),
    ("23", rule_23),
)
"""The decision table in the spec's order; the first rule that matches decides."""

RULE_IDS: Final[tuple[str, ...]] = tuple(number for number, _ in RULES)
RULES_BEFORE_ADDITIONS: Final = frozenset(RULE_IDS[: RULE_IDS.index("6")])
"""Rules 0-5 (with 1a and 4a): the additions after the table apply from rule 6 on."""
RULES_BEFORE_ESSENTIALS: Final = frozenset({"1", "1a", "3", "4", "4a", "5"})
"""Rules that decide with essential facts possibly unknown; their cards list them."""


# --------------------------------------------------------------------------------------------
# After the row: the FLR fallback, the additions, the previous-liver-resection modifier
# --------------------------------------------------------------------------------------------


def fallback_augmentation(verdict: Verdict | None, offered: list[OfferedOption]) -> None:
    """§3 resection by location (v2): where holding back a hemihepatectomy for a low FLR
    leaves a resectable or potentially-resectable row with no resection option,
    liver-augmentation is offered (*o*) instead."""
    if verdict not in ("resectable", "potentially-resectable"):
        return
    if any(opt.code in RESECTIONS or opt.code == "liver-augmentation" for opt in offered):
        return
    offered.append(OfferedOption("liver-augmentation", o, None, "addition:liver-augmentation"))


def addition_monitoring(c: Context, verdict: Verdict | None, offered: list[OfferedOption]) -> None:
    """monitoring o when not-resectable, tumour_kind secondary and no symptoms; (v2) never
    for primary_site pancreas or neuroendocrine-carcinoma."""
    c.use("symptoms")
    if (
        verdict == "not-resectable"
        and c.secondary
        and c.primary not in ("pancreas", "neuroendocrine-carcinoma")
        and not c.facts.symptoms
        and all(opt.code != "monitoring" for opt in offered)
    ):
        offered.append(OfferedOption("monitoring", o, None, "addition:monitoring"))


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
                "best-supportive-care", o, "symptom relief", "addition:best-supportive-care"
            )
        )


PREVIOUS_RESECTION: Final = "addition:previous-liver-resection"


def modifier_previous_resection(
    c: Context, verdict: Verdict | None, offered: list[OfferedOption]
) -> tuple[Verdict | None, list[OfferedOption], str | None]:
    """(v2) Previous liver resection, applied last, whenever the options include a resection
    option (or liver augmentation, see docs/clinical.md): after a hemihepatectomy neither
    hemihepatectomy nor liver-augmentation is offered; after another resection each
    hemihepatectomy stays only as *o* and only when the FLR is known and not low.
    resection-local is offered (R when the row already recommends it, else *o*);
    resectable becomes potentially-resectable; the card names the procedure and its date.

    Returns the verdict, the options and the note (None when the modifier did not apply).
    """
    f = c.facts
    c.use("prior_liver_resection")
    if f.prior_liver_resection == "none":
        return verdict, offered, None
    if not any(opt.code in RESECTIONS or opt.code == "liver-augmentation" for opt in offered):
        return verdict, offered, None
    after_hemi = f.prior_liver_resection == "hemihepatectomy"
    keep_hemi = not after_hemi and c.flr_adequate
    out: list[OfferedOption] = []
    for opt in offered:
        if opt.code in HEMIHEPATECTOMIES:
            if keep_hemi:
                out.append(OfferedOption(opt.code, o, opt.qualifier, opt.rule))
            continue
        if opt.code == "liver-augmentation" and after_hemi:
            continue
        out.append(opt)
    if all(opt.code != "resection-local" for opt in out):
        out.append(OfferedOption("resection-local", o, None, PREVIOUS_RESECTION))
    if verdict == "resectable":
        verdict = "potentially-resectable"
    extent = "a hemihepatectomy" if after_hemi else "a liver resection (other or unknown extent)"
    when = (
        f"on {f.prior_liver_resection_date.date().isoformat()}"
        if f.prior_liver_resection_date is not None
        else "date not recorded"
    )
    source = f", {f.prior_liver_resection_source}" if f.prior_liver_resection_source else ""
    note = (
        f"Previous liver resection: {extent} ({when}{source}). "
        "Repeat hepatectomy: volumetry and MDT review first."
    )
    return verdict, out, note


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
        c.flr_consulted = False
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
    flr_mattered = c.flr_consulted
    verdict: Verdict | None = outcome.verdict
    notes = list(outcome.notes)
    options = list(outcome.options)
    fallback_augmentation(verdict, options)
    if rule not in RULES_BEFORE_ADDITIONS:
        addition_monitoring(c, verdict, options)
        addition_supportive_care(c, verdict, options)
    verdict, options, resection_note = modifier_previous_resection(c, verdict, options)
    if resection_note is not None:
        notes.append(resection_note)
    options.append(OfferedOption("mdt-review", R, None, rule))
    ordered = tuple(
        [opt for opt in options if opt.recommended]
        + [opt for opt in options if not opt.recommended]
    )

    flr_threshold: float | None = None
    if facts.hcc_and_secondary_found and facts.tumour_kind == "hcc":
        notes.append(
            "Both hepatocellular carcinoma and liver metastases were found; "
            "the hepatocellular carcinoma rules were applied."
        )
    if facts.liver_code_unstated and facts.tumour_kind == "secondary":
        primary = (facts.primary_site or "unknown").replace("-", " ")
        notes.append(
            "The liver code C22.9 does not say whether the tumour is primary or secondary; "
            f"with the recorded primary cancer ({primary}) it was read as a metastasis."
        )
    if flr_mattered or any(opt.code in HEMIHEPATECTOMIES for opt in ordered):
        flr_threshold = c.flr_threshold
        notes.append(
            f"FLR threshold {flr_threshold:g} % applied; "
            f"{thresholds.flr_threshold_after_chemotherapy:g} % applies after more than "
            "12 weeks of chemotherapy."
        )
    afp_note = _afp_note(facts, ordered, thresholds)
    if afp_note is not None:
        c.use("afp")
        notes.append(afp_note)
    facts_used = tuple(c.used)
    threshold = _flr_threshold(facts, scores, thresholds)
    assessment = Assessment(
        facts=facts,
        verdict=verdict,
        rule=rule,
        options=ordered,
        scores=scores,
        missing=_missing(c, rule, ordered),
        assumptions=_assumptions(facts),
        data_quality=facts.data_quality,
        risk_modifiers=_risk_modifiers(facts, scores, threshold),
        flr_threshold=flr_threshold,
        heuristics=tuple(dict.fromkeys(c.heuristics)),
        notes=tuple(notes),
        facts_used=facts_used,
        flr_low=None if facts.flr_percent is None else facts.flr_percent < threshold,
        major_resection=facts.distribution in ("right", "left") and not facts.single_section,
    )
    return never_recommend_what_signing_stops(assessment)


_STOPPED_OPTION_NAMES: Final[dict[str, str]] = {
    "resection-right-hepatectomy": "The right hepatectomy",
    "resection-left-hepatectomy": "The left hepatectomy",
    "resection-local": "Local resection",
    "liver-augmentation": "Liver augmentation",
    "ablation": "Ablation",
    "tace": "TACE",
    "tare": "TARE",
    "haic": "HAIC",
    "sbrt": "SBRT",
    "systemic-therapy": "Systemic therapy",
}
_STOP_REASONS: Final[dict[str, str]] = {
    "failing-liver-or-performance": "Child-Pugh C or ECOG 3 or worse",
    "jaundice": "jaundice: its cause is found and treated first",
    "previous-hemihepatectomy": "a previous hemihepatectomy",
    "hemihepatectomy-child-pugh-b": (
        "Child-Pugh B or worse (without cirrhosis: the liver tests, e.g. anticoagulation or "
        "chemotherapy effects, are to be explained first)"
    ),
    "hemihepatectomy-hcc-portal-or-bilirubin": "portal hypertension or a raised bilirubin",
    "resection-hcc-vascular-or-extrahepatic": "macrovascular invasion or extrahepatic spread",
    "tace-child-pugh-8": "a Child-Pugh score of 8 or more",
}


def never_recommend_what_signing_stops(assessment: Assessment) -> Assessment:
    """A conservative reading where the table and the order check (§8) disagree
    (docs/clinical.md items 35 and 38): an option the row recommends, for which a critical
    stop of the order check holds (a hemihepatectomy with Child-Pugh B from laboratory
    values alone, TACE under rule 12 or 12a with jaundice), stays offered but is not
    recommended, with a note naming the stop; a resectable verdict whose resection is so
    held back becomes potentially resectable. The card never recommends what signing the
    same order would stop as critical.
    """

    held: list[str] = []
    options: list[OfferedOption] = []
    for opt in assessment.options:
        stops = (
            critical_stops(assessment, opt.code)
            if opt.recommended and opt.code != "mdt-review"
            else ()
        )
        if not stops:
            options.append(opt)
            continue
        options.append(OfferedOption(opt.code, o, opt.qualifier, opt.rule))
        name = _STOPPED_OPTION_NAMES.get(opt.code, opt.code)
        reasons = "; ".join(_STOP_REASONS.get(s.code, s.code) for s in stops)
        held.append(
            f"{name} is offered but not recommended: {reasons} (the order check at signing "
            "stops it)."
        )
    if not held:
        return assessment
    verdict = assessment.verdict
    if (
        verdict == "resectable"
        and any(o.code in RESECTIONS and not o.recommended for o in options)
        and not any(o.code in RESECTIONS and o.recommended for o in options)
    ):
        verdict = "potentially-resectable"
    ordered = tuple(
        [opt for opt in options if opt.recommended]
        + [opt for opt in options if not opt.recommended]
    )
    return dataclasses.replace(
        assessment, verdict=verdict, options=ordered, notes=(*assessment.notes, *held)
    )


def _flr_threshold(facts: Facts, scores: Scores, t: Thresholds) -> float:
    """§2 flr_threshold (40 % with cirrhosis or Child-Pugh B, else 20 %), without recording
    the facts as consulted (for the assessment's own fields)."""
    cp = scores.child_pugh
    compromised = facts.cirrhosis or (cp is not None and cp.category == "B")
    return t.flr_threshold_compromised if compromised else t.flr_threshold_normal


def _afp_value(facts: Facts) -> float | None:
    m = facts.labs.get("afp")
    if m is None:
        return None
    return m.exact


def _afp_note(facts: Facts, options: tuple[OfferedOption, ...], t: Thresholds) -> str | None:
    """(v2 §2 afp) hcc with AFP above 1000 ng/mL and transplant evaluation offered: a MELD
    exception needs AFP below 500 after locoregional therapy (informational)."""
    if facts.tumour_kind != "hcc" or all(o.code != "transplant-evaluation" for o in options):
        return None
    afp = _afp_value(facts)
    if afp is None or afp <= t.afp_meld_exception_note:
        return None
    return (
        f"Transplant evaluation: AFP is above {t.afp_meld_exception_note:g} ng/mL; a MELD "
        f"exception needs AFP below {t.afp_meld_exception_max:g} ng/mL after locoregional "
        "therapy. This does not rule out the evaluation."
    )


_CP_LABS: Final = (("bilirubin", "bilirubin"), ("albumin", "albumin"), ("inr", "INR"))
_STALE_KEYS: Final = {
    "lesion-count": "lesion_count",
    "largest-size": "largest_cm",
    "flr": "flr_percent",
    "distribution": "distribution",
    "afp": "afp",
}
"""Missing item -> the name under which the facts side records a stale value
(``Facts.stale``: the §2 fact name, or the lab name)."""


def _stale_since(facts: Facts, *names: str) -> datetime | None:
    dates = [facts.stale[n] for n in names if n in facts.stale]
    return max(dates) if dates else None


def _stale(facts: Facts, item: str) -> datetime | None:
    return _stale_since(facts, _STALE_KEYS[item])


def _missing(c: Context, rule: str, options: tuple[OfferedOption, ...]) -> tuple[MissingItem, ...]:
    """Unknown or stale facts: §5 essentials (``essential=True``) and "would refine" items.

    Rule 2 lists none (more data would not bring the tumour into these rules). Essential is
    a property of the fact (§5), so under rules 1-4a, which decide before rule 5, the unknown
    essentials are still listed as essential (they are what an MDT would ask for). Under rules
    13a and 20a the FLR is essential: CT volumetry is needed before the hemihepatectomy.
    """
    f = c.facts
    if rule == "2":
        return ()
    hcc = f.tumour_kind == "hcc"
    diffuse_hcc = hcc and f.distribution == "diffuse"
    offered = {opt.code for opt in options}
    items: list[MissingItem] = []
    if rule == "1":
        items.append(
            MissingItem(
                "diagnosis-confirmation", True, detail="verification status is not confirmed"
            )
        )
    if rule == "1a":
        codes = ", ".join(f.unspecified_codes) or "C22.8/C22.9"
        items.append(
            MissingItem(
                "tumour-type",
                True,
                detail=f"{codes}: primary liver cancer (which type) or metastasis; "
                "biopsy or typical imaging",
            )
        )
    if rule == "4a":
        items.append(
            MissingItem(
                "jaundice-cause",
                True,
                detail="bile-duct imaging (drainage when obstructed) before resection is "
                "considered",
            )
        )
    if f.distribution == "unknown":
        items.append(
            MissingItem(
                "distribution",
                True,
                _stale(f, "distribution"),
                detail="no liver lesion with a segment or lobe body site",
            )
        )
    if f.lesion_count is None and not diffuse_hcc:
        items.append(MissingItem("lesion-count", True, _stale(f, "lesion-count")))
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
            MissingItem("child-pugh", True, _stale_since(f, *stale), detail="; ".join(parts))
        )
    if f.ecog is None:
        items.append(MissingItem("ecog", True, _stale_since(f, "ecog"), detail="ECOG or Karnofsky"))
    if f.largest_cm is None and not diffuse_hcc:
        if hcc:
            items.append(MissingItem("largest-size", True, _stale(f, "largest-size")))
        elif c.size_for_ablation_consulted or rule in RULES_BEFORE_ESSENTIALS:
            items.append(
                MissingItem(
                    "largest-size", False, _stale(f, "largest-size"), detail="size decides ablation"
                )
            )
    if f.portal_hypertension == "unknown":
        detail = "platelet count, or a portal hypertension or ascites diagnosis"
        if hcc:
            items.append(MissingItem("portal-hypertension", True, detail=detail))
        elif f.tumour_kind == "unspecified":
            items.append(
                MissingItem(
                    "portal-hypertension", False, detail=detail + " (needed if the tumour is hcc)"
                )
            )
    if f.flr_percent is None:
        if rule in ("13a", "20a"):
            items.append(
                MissingItem(
                    "flr",
                    True,
                    _stale(f, "flr"),
                    detail="CT volumetry is needed before a hemihepatectomy",
                )
            )
        elif offered & HEMIHEPATECTOMIES or (
            c.flr_consulted
            and (f.distribution in ("right", "left") or "liver-augmentation" in offered)
        ):
            items.append(
                MissingItem(
                    "flr", False, _stale(f, "flr"), detail="CT volumetry before a hemihepatectomy"
                )
            )
    if f.age is None and c.transmet_consulted:
        items.append(MissingItem("age", False, detail="age decides transplant evaluation"))
    if hcc and "transplant-evaluation" in offered and _afp_value(f) is None:
        items.append(
            MissingItem(
                "afp",
                False,
                _stale(f, "afp"),
                detail="AFP above 1000 ng/mL delays a MELD exception for transplant",
            )
        )
    # Procedures that could not be had (fhir-mapping §7): the assessment card says previous
    # liver surgery could not be checked, "and nothing else changes" -- so no missing item,
    # which would add a data-needed card with nothing to order.
    return tuple(items)


def _assumptions(facts: Facts) -> tuple[str, ...]:
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


def _risk_modifiers(f: Facts, scores: Scores, flr_threshold: float) -> frozenset[RiskModifier]:
    """§6 patient-specific modifiers (v2: abnormal liver tests without cirrhosis in
    metastatic disease take the place of "Child-Pugh B"; a previous liver resection)."""
    found: set[RiskModifier] = set()
    if f.cirrhosis:
        found.add("cirrhosis")
    if f.portal_hypertension in PORTAL_HYPERTENSION_BARS_RESECTION:
        found.add("portal-hypertension")
    cp = scores.child_pugh
    cp_class = cp.category if cp is not None else None
    lab_only = f.tumour_kind == "secondary" and not f.cirrhosis
    if cp_class in ("B", "C") and lab_only:
        found.add("abnormal-liver-tests")
    elif cp_class == "B":
        found.add("child-pugh-b")
    if f.flr_percent is not None and f.flr_percent < flr_threshold:
        found.add("low-flr")
    if f.ascites_points is not None:
        found.add("ascites")
    if f.jaundice or "jaundice" in f.symptoms:
        found.add("jaundice")
    if f.prior_liver_resection != "none":
        found.add("previous-liver-resection")
    return frozenset(found)
