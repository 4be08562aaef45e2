"""Properties of the decision table over random facts, and of ``assess`` over random data.

- resection is never recommended under ECOG >= 2, Child-Pugh B or C, a pancreas primary,
  or hcc with macrovascular invasion, extrahepatic disease or portal hypertension;
- mdt-review is always recommended when there is a verdict;
- a missing essential fact gives ``indeterminate`` unless rules 1-4 decided;
- the same facts always give the same result;
- ``assess`` never raises, whatever the resources look like.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.clinical.engine import assess
from service.clinical.model import Facts, Measurement
from service.clinical.rules import decide, essential_unknown
from service.clinical.scores import compute_scores

from .builders import AT, PID, RECENT, colorectal_right, facts

RESECTIONS = {"resection-right-hepatectomy", "resection-left-hepatectomy", "resection-local"}


def _lab(value: float, unit: str) -> Measurement:
    return Measurement(round(value, 1), unit, RECENT, "Observation/x")


@st.composite
def random_facts(draw: st.DrawFn) -> Facts:
    labs: dict[str, Measurement] = {}
    for name, unit, low, high in (
        ("bilirubin", "mg/dL", 0.2, 8.0),
        ("albumin", "g/dL", 1.5, 5.5),
        ("inr", "", 0.8, 4.0),
        ("platelets", "10^9/L", 20, 400),
        ("creatinine", "mg/dL", 0.3, 6.0),
        ("sodium", "mmol/L", 118, 150),
        ("cea", "ng/mL", 0.5, 500),
    ):
        if draw(st.booleans()) or (name in ("bilirubin", "albumin", "inr") and draw(st.booleans())):
            labs[name] = _lab(draw(st.floats(low, high)), unit)
    kind = draw(st.sampled_from([None, "hcc", "secondary", "other-liver-primary"]))
    primary = (
        draw(
            st.sampled_from(
                [
                    "colorectal",
                    "neuroendocrine",
                    "pancreas",
                    "breast",
                    "lung",
                    "stomach",
                    "other",
                    "unknown",
                ]
            )
        )
        if kind == "secondary"
        else None
    )
    distribution = draw(st.sampled_from(["right", "left", "bilobar", "diffuse", "unknown"]))
    return facts(
        tumour_kind=kind,
        liver_kinds=frozenset({kind}) if kind else frozenset(),
        confirmed=draw(st.booleans()) or draw(st.booleans()),
        primary_site=primary,
        distribution=distribution,
        single_segment=draw(st.booleans()) and distribution in ("right", "left", "bilobar"),
        surface=draw(st.booleans()),
        lesion_count=draw(st.none() | st.integers(1, 25)),
        largest_cm=draw(st.none() | st.floats(0.3, 15.0).map(lambda x: round(x, 1))),
        macrovascular_invasion=draw(st.booleans()),
        extrahepatic_disease=draw(st.booleans()),
        cirrhosis=draw(st.booleans()),
        portal_hypertension=draw(st.sampled_from(["present", "suspected", "absent"])),
        ascites_points=draw(st.sampled_from([None, 2, 3])),
        encephalopathy_points=draw(st.sampled_from([None, 2, 3])),
        ecog=draw(st.none() | st.integers(0, 5)),
        flr_percent=draw(st.none() | st.floats(5.0, 90.0)),
        age=draw(st.none() | st.integers(18, 95)),
        symptoms=frozenset(
            draw(
                st.sets(
                    st.sampled_from(
                        ["jaundice", "ascites", "weight-loss", "nausea", "abdominal-pain"]
                    )
                )
            )
        ),
        labs=labs,
    )


@settings(max_examples=200, deadline=None)
@given(random_facts())
def test_resection_never_recommended_when_contraindicated(f: Facts) -> None:
    a = decide(f)
    cp = compute_scores(f).child_pugh
    contraindicated = (
        (f.ecog is not None and f.ecog >= 2)
        or (cp is not None and cp.category in ("B", "C"))
        or f.primary_site == "pancreas"
        or (
            f.tumour_kind == "hcc"
            and (
                f.macrovascular_invasion
                or f.extrahepatic_disease
                or f.portal_hypertension in ("present", "suspected")
            )
        )
    )
    if contraindicated:
        assert not RESECTIONS & set(a.recommended)


@settings(max_examples=200, deadline=None)
@given(random_facts())
def test_mdt_review_always_recommended(f: Facts) -> None:
    a = decide(f)
    if a.verdict is not None:
        assert "mdt-review" in a.recommended
    else:
        assert a.rule == "0" and a.options == ()


@settings(max_examples=200, deadline=None)
@given(random_facts())
def test_missing_essential_fact_is_indeterminate_unless_rules_1_to_4(f: Facts) -> None:
    a = decide(f)
    if f.tumour_kind is not None and essential_unknown(f, a.scores):
        assert a.verdict == "indeterminate" or a.rule in ("1", "2", "3", "4")
        assert any(m.essential for m in a.missing) or a.rule == "2"


@settings(max_examples=100, deadline=None)
@given(random_facts())
def test_same_facts_same_result(f: Facts) -> None:
    assert decide(f) == decide(copy.deepcopy(f))


@settings(max_examples=100, deadline=None)
@given(random_facts())
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
    assert a.rule in {str(n) for n in range(24)}
    for note in a.data_quality:
        assert isinstance(note.resource, str) and isinstance(note.problem, str)
