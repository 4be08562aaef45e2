"""Properties of the decision table over random facts, and of ``assess`` over random data.

The rule set v2 invariant (clinical-rules.md §3, "Invariant"), held over random facts:
- a resectable or potentially-resectable verdict always offers a resection option or liver
  augmentation;
- no resection is recommended with jaundice, Child-Pugh C, or hcc with bilirubin above normal
  or portal hypertension present, suspected or not excluded;
- no hemihepatectomy is recommended with an unknown FLR or after a previous hemihepatectomy
  (and neither hemihepatectomy nor augmentation is offered after one);
- no hemihepatectomy is offered at all with a low FLR, except as *o* in rules 13 and 20.
And further:
- resection is never recommended under ECOG >= 2, Child-Pugh B with cirrhosis or hcc, a
  pancreas or neuroendocrine-carcinoma primary, or hcc with macrovascular invasion or
  extrahepatic disease;
- a deceased patient gets no cards; monitoring is never offered for pancreas or NEC;
- mdt-review is always recommended when there is a verdict;
- a missing essential fact gives ``indeterminate`` unless rules 1-4a decided;
- the same facts always give the same result;
- ``assess`` never raises, whatever the resources look like.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.clinical.engine import assess
from service.clinical.model import Facts, Measurement
from service.clinical.order_checks import critical_stops
from service.clinical.rules import RULE_IDS, decide, essential_unknown
from service.clinical.scores import compute_scores

from .builders import AT, NORMAL_LABS, PID, RECENT, colorectal_right, facts

RESECTIONS = {"resection-right-hepatectomy", "resection-left-hepatectomy", "resection-local"}
HEMIHEPATECTOMIES = {"resection-right-hepatectomy", "resection-left-hepatectomy"}
SECTIONS = {
    "right": ["right-anterior", "right-posterior"],
    "left": ["left-lateral", "left-medial"],
    "caudate": ["caudate"],
}


def _lab(value: float, unit: str) -> Measurement:
    return Measurement(round(value, 1), unit, RECENT, "Observation/x")


def _mostly(common: list[float], low: float, high: float) -> st.SearchStrategy[float]:
    """Values at and around the cut-offs most of the time, any value in range otherwise:
    uniform values alone almost never give a Child-Pugh A patient, so the resectable rows
    would go untested."""
    return st.one_of(st.sampled_from(common), st.sampled_from(common), st.floats(low, high))


LAB_VALUES: tuple[tuple[str, str, st.SearchStrategy[float]], ...] = (
    ("bilirubin", "mg/dL", _mostly([0.7, 0.5, 1.0, 1.9, 0.7, 2.0, 3.0, 3.1], 0.2, 8.0)),
    ("albumin", "g/dL", _mostly([4.2, 4.5, 4.0, 3.6, 4.2, 3.5, 2.8, 2.7], 1.5, 5.5)),
    ("inr", "", _mostly([1.0, 0.9, 1.1, 1.2, 1.0, 1.69, 1.7, 2.3, 2.4], 0.8, 4.0)),
    ("platelets", "10^9/L", _mostly([85, 120, 230], 20, 400)),
    ("creatinine", "mg/dL", _mostly([0.9], 0.3, 6.0)),
    ("sodium", "mmol/L", _mostly([139], 118, 150)),
    ("cea", "ng/mL", _mostly([3.0, 250], 0.5, 500)),
    ("afp", "ng/mL", _mostly([8.0, 1000, 1400], 1, 5000)),
)


def _often(*values: Any) -> st.SearchStrategy[Any]:
    """One of ``values``, repeats giving weight; hypothesis leans to the first one, so the
    first is the value that lets the rules run on to the resectable rows."""
    return st.sampled_from(values)


PRIMARIES = (
    *("colorectal",) * 4,
    *("neuroendocrine",) * 2,
    "neuroendocrine-carcinoma",
    "pancreas",
    "breast",
    "lung",
    "stomach",
    "other",
    "unknown",
)


@st.composite
def random_facts(draw: st.DrawFn, operable: bool = False) -> Facts:
    """Random patients, weighted so that every row of the table is reached often (a uniform
    draw almost never gives a confirmed, Child-Pugh A, ECOG 0-1 patient). ``operable``
    draws only confirmed hcc or metastases at ECOG 0-1 with a Child-Pugh A panel, so that
    the rows from rule 8 on, where resection is decided, get most of its examples."""
    labs: dict[str, Measurement] = {}
    for name, unit, values in LAB_VALUES:
        if draw(_often(*(True,) * 11, False)):  # present eleven times in twelve
            labs[name] = _lab(draw(values), unit)
    normal_liver = operable
    if normal_liver:  # a Child-Pugh A panel, the platelets and AFP drawn as above
        labs |= {k: v for k, v in NORMAL_LABS.items() if k in ("bilirubin", "albumin", "inr")}
    kind = draw(
        _often("secondary", "hcc")
        if operable
        else _often(
            *("secondary",) * 5,
            *("hcc",) * 4,
            None,
            "other-liver-primary",
            "unspecified",
        )
    )
    primary = draw(_often(*PRIMARIES)) if kind == "secondary" else None
    distribution = draw(
        _often("right", "right", "left", "caudate", "bilobar", "bilobar", "diffuse")
        if operable
        else _often("right", "right", "left", "caudate", "bilobar", "diffuse", "unknown")
    )
    single_section = distribution == "caudate" or (
        distribution in ("right", "left") and draw(_often(False, True))
    )
    section = draw(st.sampled_from(SECTIONS[distribution])) if single_section else None
    extrahepatic = draw(
        _often(False, False, False, False, True) if operable else _often(False, True)
    )
    cirrhosis = draw(_often(False, True))
    portal_hypertension = draw(
        _often("absent", "present", "suspected", "not-excluded", "unknown")
        if cirrhosis
        else _often("absent", "absent", "present")
    )
    return facts(
        tumour_kind=kind,
        liver_kinds=frozenset({kind}) if kind else frozenset(),
        confirmed=operable or draw(_often(True, True, True, True, True, True, True, False)),
        primary_site=primary,
        distribution=distribution,
        single_segment=single_section and draw(st.booleans()),
        single_section=single_section,
        section=section,
        surface=draw(st.booleans()),
        lesion_count=draw(_often(1, 2, 3, 4, 5, 8, 10, 11, 25, None)),
        largest_cm=draw(_often(2.0, 1.0, 3.0, 3.1, 4.0, 5.0, 5.1, 9.0, None)),
        macrovascular_invasion=draw(_often(*(False,) * (9 if operable else 3), True)),
        extrahepatic_disease=extrahepatic,
        extrahepatic_limited=extrahepatic and draw(st.booleans()),
        cirrhosis=cirrhosis,
        portal_hypertension=portal_hypertension,
        bilirubin_above_normal=draw(_often(*(False,) * (6 if operable else 3), True)),
        jaundice=draw(_often(*(False,) * (9 if operable else 4), True)),
        ascites_points=None if normal_liver else draw(_often(None, None, None, 2, 3)),
        encephalopathy_points=None if normal_liver else draw(_often(None, None, None, 2, 3)),
        ecog=draw(_often(0, 1) if operable else _often(0, 0, 0, 0, 1, 1, 1, 2, 3, 4, 5, None)),
        flr_percent=draw(_often(50.0, None, None, None, 15.0, 19.9, 20.0, 30.0, 39.9, 40.0, 60.0)),
        age=draw(_often(60, 52, 66, 80, None)),
        symptoms=frozenset(
            draw(
                st.sets(
                    st.sampled_from(
                        ["jaundice", "ascites", "weight-loss", "nausea", "abdominal-pain"]
                    ),
                    max_size=2,
                )
            )
        ),
        prior_liver_resection=draw(_often("none", "none", "none", "hemihepatectomy", "other")),
        procedures_checked=draw(_often(True, True, True, False)),
        deceased=not operable and draw(_often(*(False,) * 12, True)),
        labs=labs,
    )


any_facts = st.one_of(random_facts(), random_facts(operable=True))
"""Half broad, half operable patients: what the invariant tests draw from."""


@st.composite
def major_resection_low_flr(draw: st.DrawFn) -> Facts:
    """Operable patients whose resection by location is a hemihepatectomy, with a low,
    borderline or unknown FLR: where the FLR rules (13, 13a, 20, 20a), their fallback and
    the previous-resection modifier meet."""
    f = draw(random_facts(operable=True))
    return replace(
        f,
        distribution=draw(_often("right", "left")),
        single_segment=False,
        single_section=False,
        section=None,
        flr_percent=draw(_often(15.0, None, 5.0, 19.9, 20.0, 30.0, 39.9, 50.0)),
        lesion_count=draw(_often(1, 2, 3, 4, 5)),
        largest_cm=draw(_often(2.0, 3.0, 4.0, 6.0)),
    )


flr_facts = st.one_of(any_facts, major_resection_low_flr())


@st.composite
def operable_hcc(draw: st.DrawFn) -> Facts:
    """Operable hcc with each portal hypertension finding, bilirubin above normal or
    jaundice: where rules 10, 12a, 12b and 14 part."""
    f = draw(random_facts(operable=True))
    cirrhosis = draw(st.booleans())
    distribution = draw(_often("right", "left", "caudate", "right"))
    caudate = distribution == "caudate"
    return replace(
        f,
        tumour_kind="hcc",
        primary_site=None,
        liver_kinds=frozenset({"hcc"}),
        cirrhosis=cirrhosis,
        portal_hypertension=draw(
            _often("not-excluded", "present", "suspected", "absent")
            if cirrhosis
            else _often("absent", "present")
        ),
        bilirubin_above_normal=draw(_often(False, True)),
        jaundice=draw(_often(False, False, True)),
        macrovascular_invasion=False,
        extrahepatic_disease=False,
        distribution=distribution,
        single_segment=caudate,
        single_section=caudate,
        section="caudate" if caudate else None,
        lesion_count=draw(_often(1, 2, 3, 4)),
        largest_cm=draw(_often(2.0, 3.0, 4.5)),
        flr_percent=draw(_often(50.0, None, 30.0)),
    )


hcc_facts = st.one_of(
    any_facts,
    operable_hcc(),
    random_facts(operable=True).map(lambda f: replace(f, jaundice=True)),
)
"""Broad patients, operable hcc, and operable patients with jaundice (rules 4a and 10)."""


def _flr_low(f: Facts) -> bool:
    """§2 flr_low, written out again from the spec: FLR known and below 40 % with cirrhosis
    or Child-Pugh B, otherwise 20 %."""
    if f.flr_percent is None:
        return False
    cp = compute_scores(f).child_pugh
    compromised = f.cirrhosis or (cp is not None and cp.category == "B")
    return f.flr_percent < (40.0 if compromised else 20.0)


# --- the v2 invariant --------------------------------------------------------------------------


@settings(max_examples=1000, deadline=None)
@given(flr_facts)
def test_invariant_resectable_verdict_offers_a_resection_or_augmentation(f: Facts) -> None:
    a = decide(f)
    if a.verdict in ("resectable", "potentially-resectable"):
        assert (RESECTIONS | {"liver-augmentation"}) & set(a.offered), a.rule


@settings(max_examples=1000, deadline=None)
@given(hcc_facts)
def test_invariant_no_resection_recommended_under_jaundice_child_pugh_c_or_hcc_contraindication(
    f: Facts,
) -> None:
    a = decide(f)
    cp = compute_scores(f).child_pugh
    barred = (
        f.jaundice
        or (cp is not None and cp.category == "C")
        or (
            f.tumour_kind == "hcc"
            and (
                f.bilirubin_above_normal
                or f.portal_hypertension in ("present", "suspected", "not-excluded")
            )
        )
    )
    if barred:
        assert not RESECTIONS & set(a.recommended), a.rule


@settings(max_examples=1000, deadline=None)
@given(flr_facts)
def test_invariant_no_hemihepatectomy_recommended_with_unknown_flr_or_after_one(f: Facts) -> None:
    a = decide(f)
    if f.flr_percent is None or f.prior_liver_resection == "hemihepatectomy":
        assert not HEMIHEPATECTOMIES & set(a.recommended), a.rule
    if f.prior_liver_resection == "hemihepatectomy":
        assert not (HEMIHEPATECTOMIES | {"liver-augmentation"}) & set(a.offered), a.rule


@settings(max_examples=1000, deadline=None)
@given(flr_facts)
def test_invariant_no_hemihepatectomy_with_a_low_flr_except_o_in_rules_13_and_20(f: Facts) -> None:
    a = decide(f)
    assert a.flr_low is (None if f.flr_percent is None else _flr_low(f)) or a.verdict is None
    if _flr_low(f):
        hemis = [o for o in a.options if o.code in HEMIHEPATECTOMIES]
        for option in hemis:
            assert a.rule in ("13", "20") and not option.recommended, a.rule


# --- further safety properties -------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(any_facts)
def test_resection_never_recommended_when_contraindicated(f: Facts) -> None:
    a = decide(f)
    cp = compute_scores(f).child_pugh
    contraindicated = (
        (f.ecog is not None and f.ecog >= 2)
        or (cp is not None and cp.category == "B" and (f.cirrhosis or f.tumour_kind == "hcc"))
        or f.primary_site in ("pancreas", "neuroendocrine-carcinoma")
        or (f.tumour_kind == "hcc" and (f.macrovascular_invasion or f.extrahepatic_disease))
        or f.tumour_kind in ("unspecified", "other-liver-primary")
    )
    if contraindicated:
        assert not RESECTIONS & set(a.recommended)


@settings(max_examples=500, deadline=None)
@given(st.one_of(any_facts, hcc_facts, flr_facts))
def test_no_option_is_recommended_that_signing_it_would_stop_as_critical(f: Facts) -> None:
    # docs/clinical.md item 38: the patient-view card and the order-sign check agree; an
    # option a critical stop holds for may be offered, never recommended.
    a = decide(f)
    for option in a.options:
        if option.recommended and option.code != "mdt-review":
            assert not critical_stops(a, option.code), (a.rule, option.code)


@settings(max_examples=200, deadline=None)
@given(any_facts)
def test_deceased_no_cards_and_no_monitoring_for_pancreas_or_nec(f: Facts) -> None:
    a = decide(f)
    if f.deceased:
        assert a.verdict is None and a.options == ()
    if f.primary_site in ("pancreas", "neuroendocrine-carcinoma"):
        assert "monitoring" not in a.offered


@settings(max_examples=200, deadline=None)
@given(any_facts)
def test_mdt_review_always_recommended(f: Facts) -> None:
    a = decide(f)
    if a.verdict is not None:
        assert "mdt-review" in a.recommended
    else:
        assert a.rule == "0" and a.options == ()


@settings(max_examples=200, deadline=None)
@given(any_facts)
def test_missing_essential_fact_is_indeterminate_unless_rules_1_to_4a(f: Facts) -> None:
    a = decide(f)
    if f.tumour_kind is not None and not f.deceased and essential_unknown(f, a.scores):
        assert a.verdict == "indeterminate" or a.rule in ("1", "1a", "2", "3", "4", "4a")
        assert any(m.essential for m in a.missing) or a.rule == "2"


@settings(max_examples=100, deadline=None)
@given(any_facts)
def test_same_facts_same_result(f: Facts) -> None:
    assert decide(f) == decide(copy.deepcopy(f))


@settings(max_examples=100, deadline=None)
@given(any_facts)
def test_options_unique_and_recommended_first(f: Facts) -> None:
    a = decide(f)
    codes = [o.code for o in a.options]
    assert len(codes) == len(set(codes))
    flags = [o.recommended for o in a.options]
    assert flags == sorted(flags, reverse=True)


# --- assess never raises ------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.sampled_from(
        ["final", "C78.7", "2026-05-01", "umol/L", f"Patient/{PID}", "http://loinc.org"]
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*prefix, i))
    return found


@st.composite
def mutated_resources(draw: st.DrawFn) -> list[Any]:
    resources: list[Any] = copy.deepcopy(colorectal_right())
    for _ in range(draw(st.integers(1, 6))):
        index = draw(st.integers(0, len(resources) - 1))
        paths = _paths(resources[index])
        path = draw(st.sampled_from(paths))
        replacement = draw(json_values)
        if not path:
            resources[index] = replacement
            continue
        target = resources[index]
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = replacement
    return resources


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_resources())
def test_assess_never_raises_on_mutated_resources(resources: list[Any]) -> None:
    a = assess(resources, patient_id=PID, at=AT)
    assert a.rule in RULE_IDS
    for note in a.data_quality:
        assert isinstance(note.resource, str) and isinstance(note.problem, str)
