"""The order check at signing (clinical-rules §8): each liver-directed draft order against
the patient's assessment.

Pure, like the rest of the engine: an :class:`Assessment` and the orders in, one
:class:`OrderFinding` per order out. The rows of §8 apply in order, the first that holds
decides the order's card:

1. a critical stop holds for it           -> ``critical``
2. a warning stop holds for it            -> ``warning``
3. the assessment is indeterminate        -> ``info``: it cannot be checked yet
4. the assessment offers the option       -> no card (agreeing orders are never nagged)
5. the assessment does not offer it       -> ``warning``: not among the options

With no current liver malignancy, or a deceased patient (rule 0), nothing is checked. The
stops are written one function each, named for what they check; each returns the facts it
found (with values and dates) so the card can show them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from service.clinical.model import Assessment, Evidence, Facts, Measurement, OfferedOption
from service.fhir.orders import DraftOrder

__all__ = ["OrderFinding", "Stop", "alternatives", "check_orders"]

Indicator = Literal["critical", "warning", "info"]
Finding = Literal["critical-stop", "warning-stop", "indeterminate", "agrees", "not-offered"]

HEMIHEPATECTOMY: Final = frozenset({"resection-right-hepatectomy", "resection-left-hepatectomy"})
RESECTION: Final = HEMIHEPATECTOMY | {"resection-local"}
NEVER_STOPPED_BY_FUNCTION: Final = frozenset(
    {"transplant-evaluation", "best-supportive-care", "mdt-review", "monitoring"}
)
"""Orders the liver-function and performance-status stop leaves alone (§8)."""
NEVER_NOT_OFFERED: Final = frozenset({"mdt-review"})
"""An MDT review is offered in every verdict: never "not among the options"."""


@dataclass(frozen=True)
class Stop:
    """A stop that holds for an order: its code (the key of its wording in cards/), its
    severity, and the facts that make it hold, with values and dates."""

    code: str
    severity: Literal["critical", "warning"]
    facts: tuple[Evidence, ...]


@dataclass(frozen=True)
class OrderFinding:
    """What §8 says about one order: which row decided, the card's indicator (None: no
    card), and the stops that hold (all of the deciding severity, most severe first)."""

    order: DraftOrder
    finding: Finding
    indicator: Indicator | None
    stops: tuple[Stop, ...] = ()


def check_orders(assessment: Assessment, orders: Iterable[DraftOrder]) -> list[OrderFinding]:
    """One finding per liver-directed order; none at all under rule 0."""
    if assessment.verdict is None:
        return []
    return [check_order(assessment, order) for order in orders]


def check_order(assessment: Assessment, order: DraftOrder) -> OrderFinding:
    stops = [stop for check in STOPS if (stop := check(assessment, order.options)) is not None]
    critical = tuple(s for s in stops if s.severity == "critical")
    if critical:
        return OrderFinding(order, "critical-stop", "critical", critical)
    warnings = tuple(s for s in stops if s.severity == "warning")
    if warnings:
        return OrderFinding(order, "warning-stop", "warning", warnings)
    if assessment.verdict == "indeterminate":
        return OrderFinding(order, "indeterminate", "info")
    if order.options & (set(assessment.offered) | NEVER_NOT_OFFERED):
        return OrderFinding(order, "agrees", None)
    return OrderFinding(order, "not-offered", "warning")


def alternatives(assessment: Assessment, finding: OrderFinding) -> tuple[OfferedOption, ...]:
    """The assessment's options an order card may propose instead of the order: never the
    order's own option, and none that a critical stop holds for.

    §8 has the card offer "the options the assessment does offer"; where the table offers
    what §8 stops (rule 12a recommends TACE to a jaundiced patient, and jaundice stops TACE,
    TARE, HAIC and resection), proposing it on the card that stops it would contradict the
    card. The conservative reading keeps only the options no critical stop holds for
    (docs/clinical.md). MDT review is never stopped, so it always remains.
    """
    out = []
    for option in assessment.options:
        if option.code in finding.order.options:
            continue
        alone = frozenset({option.code})
        stopped = (check(assessment, alone) for check in CRITICAL_STOPS)
        if any(stop is not None and stop.severity == "critical" for stop in stopped):
            continue
        out.append(option)
    return tuple(out)


# --- the facts a stop shows ------------------------------------------------------------------


def _lab(facts: Facts, name: str, label: str) -> Evidence | None:
    m: Measurement | None = facts.labs.get(name)  # type: ignore[call-overload]
    if m is None:
        return None
    shown = m.original or f"{m.value:g} {m.unit}".strip()
    return Evidence(label, shown, m.date, (m.source,))


def _observed(facts: Facts, name: str, label: str, unit: str = "") -> Evidence | None:
    m = facts.observed.get(name)
    if m is None:
        return None
    return Evidence(label, f"{m.value:g}{unit}", m.date, (m.source,))


def _child_pugh(a: Assessment) -> Evidence | None:
    cp = a.scores.child_pugh
    if cp is None:
        return None
    dates = [i.date for i in cp.inputs if i.date is not None]
    return Evidence("Child-Pugh", f"{cp.category} ({cp.value} points)", _latest(dates))


def _latest(dates: list[datetime]) -> datetime | None:
    return max(dates) if dates else None


def _present(*items: Evidence | None) -> tuple[Evidence, ...]:
    return tuple(item for item in items if item is not None)


def _recorded(label: str, value: str = "recorded") -> Evidence:
    return Evidence(label, value)


# --- the stops (§8), in the order of the spec ----------------------------------------------------

StopCheck = Callable[[Assessment, frozenset[str]], Stop | None]


def stop_failing_liver_or_performance(a: Assessment, options: frozenset[str]) -> Stop | None:
    """Critical: any liver-directed order except transplant evaluation, supportive care,
    MDT review and monitoring, with Child-Pugh C (cirrhosis or hcc) or ECOG >= 3."""
    if options <= NEVER_STOPPED_BY_FUNCTION:
        return None
    f = a.facts
    cp = a.scores.child_pugh
    found: list[Evidence | None] = []
    if cp is not None and cp.category == "C" and (f.cirrhosis or f.tumour_kind == "hcc"):
        found += [_child_pugh(a), _recorded("cirrhosis") if f.cirrhosis else None]
    if f.ecog is not None and f.ecog >= 3:
        found.append(_observed(f, "ecog", "ECOG") or Evidence("ECOG", str(f.ecog)))
    facts = _present(*found)
    return Stop("failing-liver-or-performance", "critical", facts) if facts else None


def stop_jaundice(a: Assessment, options: frozenset[str]) -> Stop | None:
    """Critical: resection, TACE, TARE or HAIC with jaundice."""
    if not options & (RESECTION | {"tace", "tare", "haic"}) or not a.facts.jaundice:
        return None
    facts = _present(_lab(a.facts, "bilirubin", "total bilirubin"))
    if "jaundice" in a.facts.symptoms:
        facts += (_recorded("jaundice (Condition)"),)
    return Stop("jaundice", "critical", facts or (_recorded("jaundice"),))


def stop_previous_hemihepatectomy(a: Assessment, options: frozenset[str]) -> Stop | None:
    """Critical: a hemihepatectomy after a previous hemihepatectomy."""
    f = a.facts
    if not options & HEMIHEPATECTOMY or f.prior_liver_resection != "hemihepatectomy":
        return None
    sources = (f.prior_liver_resection_source,) if f.prior_liver_resection_source else ()
    facts = (
        Evidence(
            "previous liver resection",
            "hemihepatectomy or larger",
            f.prior_liver_resection_date,
            sources,
        ),
    )
    return Stop("previous-hemihepatectomy", "critical", facts)


def stop_hemihepatectomy_child_pugh_b(a: Assessment, options: frozenset[str]) -> Stop | None:
    """Critical: a hemihepatectomy with Child-Pugh B, or worse.

    Child-Pugh C stops every order only with cirrhosis or hcc (the first stop); a
    hemihepatectomy at class C without cirrhosis (laboratory values and ascites alone, rule
    4a) is stopped here, as it is at class B: a worse class never checks more leniently."""
    cp = a.scores.child_pugh
    if not options & HEMIHEPATECTOMY or cp is None or cp.category not in ("B", "C"):
        return None
    return Stop("hemihepatectomy-child-pugh-b", "critical", _present(_child_pugh(a)))


def stop_hemihepatectomy_hcc_portal_or_bilirubin(
    a: Assessment, options: frozenset[str]
) -> Stop | None:
    """Critical: a hemihepatectomy in hcc with portal hypertension present or suspected, or
    bilirubin above the upper limit of normal."""
    f = a.facts
    if not options & HEMIHEPATECTOMY or f.tumour_kind != "hcc":
        return None
    found: list[Evidence | None] = []
    if f.portal_hypertension in ("present", "suspected"):
        found.append(
            Evidence(
                "portal hypertension", f"{f.portal_hypertension} ({f.portal_hypertension_basis})"
            )
        )
        if f.portal_hypertension_basis == "platelets":
            found.append(_lab(f, "platelets", "platelets"))
    if f.bilirubin_above_normal:
        found.append(_lab(f, "bilirubin", "total bilirubin (above the upper limit of normal)"))
    facts = _present(*found)
    return Stop("hemihepatectomy-hcc-portal-or-bilirubin", "critical", facts) if facts else None


def stop_resection_hcc_vascular_or_extrahepatic(
    a: Assessment, options: frozenset[str]
) -> Stop | None:
    """Critical: any resection in hcc with macrovascular invasion or extrahepatic disease."""
    f = a.facts
    if not options & RESECTION or f.tumour_kind != "hcc":
        return None
    facts: tuple[Evidence, ...] = ()
    if f.macrovascular_invasion:
        presumed = " (presumed from portal vein thrombosis)" if f.macrovascular_presumed else ""
        facts += (_recorded("macrovascular invasion", "recorded" + presumed),)
    if f.extrahepatic_disease:
        facts += (_recorded("extrahepatic disease"),)
    return Stop("resection-hcc-vascular-or-extrahepatic", "critical", facts) if facts else None


def stop_tace_child_pugh_8(a: Assessment, options: frozenset[str]) -> Stop | None:
    """Critical: TACE with a Child-Pugh score of 8 or more."""
    cp = a.scores.child_pugh
    if "tace" not in options or cp is None or not isinstance(cp.value, int) or cp.value < 8:
        return None
    return Stop("tace-child-pugh-8", "critical", _present(_child_pugh(a)))


def stop_hemihepatectomy_flr(a: Assessment, options: frozenset[str]) -> Stop | None:
    """Warning: a hemihepatectomy with a low or unknown future liver remnant (an FLR is
    rarely coded, so this warns rather than alarms)."""
    if not options & HEMIHEPATECTOMY:
        return None
    f = a.facts
    if f.flr_percent is None:
        return Stop(
            "hemihepatectomy-flr", "warning", (_recorded("future liver remnant", "not recorded"),)
        )
    if a.flr_low:
        return Stop(
            "hemihepatectomy-flr",
            "warning",
            _present(_observed(f, "flr", "future liver remnant", " %")),
        )
    return None


def stop_embolisation_hcc_macrovascular(a: Assessment, options: frozenset[str]) -> Stop | None:
    """Warning: TACE or TARE in hcc with macrovascular invasion (main portal vein or branch
    cannot be told apart from the codes)."""
    f = a.facts
    if not options & {"tace", "tare"} or f.tumour_kind != "hcc" or not f.macrovascular_invasion:
        return None
    return Stop("embolisation-hcc-macrovascular", "warning", (_recorded("macrovascular invasion"),))


def stop_transplant_hcc_extrahepatic(a: Assessment, options: frozenset[str]) -> Stop | None:
    """Warning: transplant evaluation in hcc with extrahepatic disease."""
    f = a.facts
    if (
        "transplant-evaluation" not in options
        or f.tumour_kind != "hcc"
        or not f.extrahepatic_disease
    ):
        return None
    return Stop("transplant-hcc-extrahepatic", "warning", (_recorded("extrahepatic disease"),))


CRITICAL_STOPS: Final[tuple[StopCheck, ...]] = (
    stop_failing_liver_or_performance,
    stop_jaundice,
    stop_previous_hemihepatectomy,
    stop_hemihepatectomy_child_pugh_b,
    stop_hemihepatectomy_hcc_portal_or_bilirubin,
    stop_resection_hcc_vascular_or_extrahepatic,
    stop_tace_child_pugh_8,
)
"""The stops of §8 whose stop is critical, in the order of the spec."""
WARNING_STOPS: Final[tuple[StopCheck, ...]] = (
    stop_hemihepatectomy_flr,
    stop_embolisation_hcc_macrovascular,
    stop_transplant_hcc_extrahepatic,
)
"""The stops of §8 that only warn."""
STOPS: Final[tuple[StopCheck, ...]] = CRITICAL_STOPS + WARNING_STOPS
"""Every stop of §8, critical ones first, each checked for every order."""


def critical_stops(assessment: Assessment, option: str) -> tuple[Stop, ...]:
    """The critical stops that would hold for an order of ``option`` for this patient.

    The decision table uses it so that a patient-view card never recommends what the
    order check at signing stops (rules.py, :func:`~service.clinical.rules.decide`).
    Only the critical stops are checked: a warning stop would be built (with its facts)
    only to be dropped."""
    options = frozenset({option})
    stops: list[Stop] = []
    for check in CRITICAL_STOPS:  # a loop, not two nested generators: once per option
        stop = check(assessment, options)
        if stop is not None and stop.severity == "critical":
            stops.append(stop)
    return tuple(stops)
