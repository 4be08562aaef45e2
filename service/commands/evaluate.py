"""``liver-cds evaluate FILE [--at TIME] [--patient ID] [--json] [--cards]``: assess one patient.

FILE is a CDS Hooks request (its ``prefetch`` is read), a Bundle, a single resource or a
JSON array of resources. The patient is ``context.patientId`` of a hook request, else
``--patient``, else the only Patient resource in the file. The output is written for a
clinician (verdict, deciding rule, options, facts with their sources, scores with their
inputs, missing and stale data, assumptions, data-quality notes); ``--json`` prints the
whole assessment for machines. ``--cards`` shows the CDS cards instead, as a clinician sees
them in the EHR (with ``--json``: the exact ``{"cards": [...]}`` response body).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.clinical.model import Assessment, DataQualityNote
    from service.settings import Settings


class InputError(ValueError):
    """The file cannot be used; the message says why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="hook request, Bundle, resource or array of resources (JSON)")
    parser.add_argument(
        "--at",
        metavar="TIME",
        help="evaluation time, ISO 8601 (default: now; without timezone: UTC)",
    )
    parser.add_argument(
        "--patient", metavar="ID", help="patient id (when the file is not a hook request)"
    )
    parser.add_argument("--json", action="store_true", help="print the assessment as JSON")
    parser.add_argument(
        "--cards",
        action="store_true",
        help="show the CDS cards the service would answer (with --json: the response body)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="also validate every resource with fhir.resources R4B (slow)",
    )
    parser.add_argument(
        "--lookback-days",
        type=int,
        default=None,
        help="lookback window for labs and ECOG (default: LIVER_CDS_LOOKBACK_DAYS or 90)",
    )


def parse_time(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--at: not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def load_resources(data: Any, patient: str | None) -> tuple[list[Any], str, list[DataQualityNote]]:
    """(resources, patient id, notes) from a hook request, Bundle, resource or array."""
    from service.fhir.read import flatten

    notes: list[DataQualityNote] = []
    resources: list[Any] = []
    if isinstance(data, dict) and "hook" in data and "context" in data:
        context = data.get("context")
        ctx_patient = context.get("patientId") if isinstance(context, dict) else None
        prefetch = data.get("prefetch") or {}
        if not isinstance(prefetch, dict):
            raise InputError("prefetch is not an object")
        for value in prefetch.values():
            resources += flatten(value, notes)
        patient = patient or (ctx_patient if isinstance(ctx_patient, str) else None)
    elif isinstance(data, list):
        for value in data:
            resources += flatten(value, notes)
    elif isinstance(data, dict):
        resources += flatten(data, notes)
    else:
        raise InputError("the file is not a JSON object or array")
    if patient is None:
        ids = {
            r.get("id")
            for r in resources
            if isinstance(r, dict) and r.get("resourceType") == "Patient"
        }
        ids.discard(None)
        if len(ids) != 1:
            raise InputError(
                "cannot tell which patient to assess: give --patient "
                f"({len(ids)} Patient resources in the file)"
            )
        patient = str(ids.pop())
    return resources, patient, notes


def run(args: argparse.Namespace) -> int:
    import orjson

    from service.clinical.engine import assess
    from service.clinical.thresholds import thresholds_from_settings
    from service.settings import Settings, SettingsError

    try:
        raw = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"liver-cds evaluate: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        data = orjson.loads(raw)
        resources, patient_id, notes = load_resources(data, args.patient)
        at = parse_time(args.at)
        settings = Settings.from_env()
        lookback = args.lookback_days
        if lookback is None:
            lookback = settings.lookback_days
    except orjson.JSONDecodeError:
        print(f"liver-cds evaluate: {args.file} is not valid JSON", file=sys.stderr)
        return 2
    except (InputError, SettingsError) as exc:
        print(f"liver-cds evaluate: {exc}", file=sys.stderr)
        return 2
    assessment = assess(
        resources,
        patient_id=patient_id,
        at=at,
        notes=notes,
        strict=args.strict,
        thresholds=thresholds_from_settings(lookback),
    )
    try:
        output = format_output(assessment, args, settings)
    except ValueError as exc:  # card content that fails its checks (ContentError)
        print(f"liver-cds evaluate: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(output)
    return 0


def format_output(
    assessment: Assessment, args: argparse.Namespace, settings: Settings | None = None
) -> str:
    """The chosen output format: the assessment (text or JSON) or the cards (text or JSON)."""
    if getattr(args, "cards", False):
        return format_cards(assessment, as_json=getattr(args, "json", False), settings=settings)
    if getattr(args, "json", False):
        import orjson

        from service.clinical.export import assessment_to_dict

        return (
            orjson.dumps(
                assessment_to_dict(assessment), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
            ).decode()
            + "\n"
        )
    return format_text(assessment)


def format_cards(assessment: Assessment, *, as_json: bool, settings: Settings | None) -> str:
    """The cards the service would answer for this assessment."""
    import orjson

    from service.render.cards import RenderContext, render_cards
    from service.render.terminal import format_cards_for_terminal
    from service.settings import Settings

    settings = settings or Settings()
    ctx = RenderContext(
        patient_id=assessment.facts.patient_id,
        smart_app_url=settings.smart_app_url,
        cards_dir=settings.cards_dir,
    )
    cards = render_cards(assessment, ctx)
    if as_json:
        return orjson.dumps({"cards": cards}, option=orjson.OPT_INDENT_2).decode() + "\n"
    return format_cards_for_terminal(cards)


# --------------------------------------------------------------------------------------------
# Text for a clinician
# --------------------------------------------------------------------------------------------


_FACT_INPUTS: dict[str, tuple[str, ...]] = {
    "child_pugh": ("bilirubin", "albumin", "inr"),
    "portal_hypertension": ("platelets", "cirrhosis"),
}
"""Facts the rules consult through a score or a derived fact, for the ``*`` marks."""


def _day(value: datetime | None) -> str:
    return value.date().isoformat() if value is not None else ""


def format_text(a: Assessment) -> str:
    f = a.facts
    out: list[str] = []
    add = out.append
    add(f"Patient {f.patient_id}, evaluated {f.evaluated_at.isoformat(timespec='minutes')}")
    if a.verdict is None:
        add("No current liver malignancy found: no cards (rule 0).")
    else:
        add(f"Verdict: {a.verdict.upper()} (rule {a.rule})")
        add("")
        add("Options (R = recommended, o = offered):")
        for o in a.options:
            mark = "R" if o.recommended else "o"
            qual = f" ({o.qualifier})" if o.qualifier else ""
            origin = f"  [{o.rule}]" if o.rule.startswith("addition") else ""
            add(f"  {mark}  {o.code}{qual}{origin}")
        if a.heuristics:
            add("  [H] heuristic used: " + ", ".join(a.heuristics))
    if f.evidence:
        add("")
        add("Facts:")
        used = set(a.facts_used)
        for fact, inputs in _FACT_INPUTS.items():
            if fact in used:
                used.update(inputs)
        for e in f.evidence:
            star = "*" if e.fact in used else " "
            when = f"  {_day(e.date)}" if e.date else ""
            src = f"  [{', '.join(e.sources)}]" if e.sources else ""
            add(f" {star} {e.fact}: {e.value}{when}{src}")
        add("   (* consulted by the rules up to the deciding one)")
    scores = a.scores.all()
    if scores:
        add("")
        add("Scores:")
        for s in scores:
            cat = f" ({s.category})" if s.category else ""
            add(f"  {s.name}: {s.value}{cat}")
            for i in s.inputs:
                pts = f" -> {i.points} pt" if i.points is not None else ""
                assumed = " (assumed)" if i.assumed and "assumed" not in i.value else ""
                when = f", {_day(i.date)}" if i.date else ""
                add(f"      {i.name}: {i.value}{when}{pts}{assumed}")
            if s.unknown_inputs:
                add(f"      unknown: {', '.join(s.unknown_inputs)}")
            if s.note:
                add(f"      note: {s.note}")
    if a.missing:
        add("")
        add("Missing or stale data:")
        for m in a.missing:
            kind = "essential" if m.essential else "would refine"
            stale = f", stale since {_day(m.stale_since)}" if m.stale_since else ""
            detail = f": {m.detail}" if m.detail else ""
            add(f"  - {m.fact} ({kind}{stale}){detail}")
    for title, items in (("Assumptions", a.assumptions), ("Notes", a.notes)):
        if items:
            add("")
            add(f"{title}:")
            out.extend(f"  - {item}" for item in items)
    if a.risk_modifiers:
        add("")
        add("Risk modifiers: " + ", ".join(sorted(a.risk_modifiers)))
    if a.data_quality:
        add("")
        add("Data quality:")
        out.extend(f"  - {n.resource}: {n.problem}" for n in a.data_quality)
    return "\n".join(out) + "\n"
