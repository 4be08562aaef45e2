"""``liver-cds evaluate FILE [--at TIME] [--patient ID] [--json] [--cards]``: assess one patient.

FILE is a CDS Hooks request (its ``prefetch`` is read), a Bundle, a single resource or a
JSON array of resources. Whatever the file, it is evaluated by the service's one pipeline
(``service/pipeline.py``), as a hook call is, with every ``LIVER_CDS_*`` setting applied.
The patient is ``context.patientId`` of a hook request, else
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
    from service.clinical.model import Assessment
    from service.pipeline import Evaluation


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


def hook_request_of(data: Any, patient: str | None) -> dict[str, Any]:
    """The file as a hook request: itself when it is one, else one built around it.

    A Bundle, a single resource or an array of them is unpacked by the service's Bundle
    rules (``service/fhir/bundle.py``) and its resources are sorted into the prefetch keys
    of the patient-view service by type, each as a searchset Bundle, so that the request
    then takes exactly the path a hook call takes. Resources of types no key asks for are
    left out (the engine would ignore them). The patient is ``--patient``, else
    ``context.patientId``, else the only Patient resource in the file.
    """
    from service.fhir.bundle import BundleShapeError, unpack
    from service.fhir.prefetch import expected_type
    from service.protocol.declaration import LIVER_METASTASIS_RESECTABILITY

    if isinstance(data, dict) and "hook" in data and "context" in data:
        request = dict(data)
        context = request.get("context")
        if patient is not None and isinstance(context, dict):
            request["context"] = {**context, "patientId": patient}
        return request
    if isinstance(data, dict):
        values: list[Any] = [data]
    elif isinstance(data, list):
        values = data
    else:
        raise InputError("the file is not a JSON object or array")
    resources: list[dict[str, Any]] = []
    for index, value in enumerate(values):
        try:
            resources += unpack(value, f"item {index}").resources
        except BundleShapeError as exc:
            raise InputError(exc.message) from None
    if patient is None:
        ids = {r.get("id") for r in resources if r.get("resourceType") == "Patient"}
        ids.discard(None)
        if len(ids) != 1:
            raise InputError(
                "cannot tell which patient to assess: give --patient "
                f"({len(ids)} Patient resources in the file)"
            )
        patient = str(ids.pop())
    prefetch: dict[str, Any] = {}
    for key, template in LIVER_METASTASIS_RESECTABILITY.prefetch.items():
        rtype = template.lstrip("/").partition("?")[0].partition("/")[0]
        found = [r for r in resources if r.get("resourceType") == rtype]
        if expected_type(template) is not None:  # a read: the one resource, if any
            prefetch[key] = next((r for r in found if r.get("id") == patient), None)
        else:
            entries = [{"resource": r} for r in found]
            prefetch[key] = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    return {
        "hook": LIVER_METASTASIS_RESECTABILITY.hook,
        "hookInstance": "liver-cds-evaluate",
        "context": {"userId": "Practitioner/liver-cds-cli", "patientId": patient},
        "prefetch": prefetch,
    }


def run(args: argparse.Namespace) -> int:
    import asyncio
    import dataclasses

    import orjson

    from service.pipeline import DataUnavailable, PrefetchShapeError, evaluate
    from service.protocol import ProtocolError, parse_hook_request
    from service.protocol.declaration import SERVICES
    from service.settings import Settings, SettingsError

    try:
        raw = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"liver-cds evaluate: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        data = orjson.loads(raw)
        request = hook_request_of(data, args.patient)
        at = parse_time(args.at)
        settings = Settings.from_env()
        changes: dict[str, Any] = {}
        if args.lookback_days is not None:
            changes["lookback_days"] = args.lookback_days
        if args.strict:
            changes["strict_fhir"] = True
        if changes:
            settings = dataclasses.replace(settings, **changes)
            settings.check()
        service = next((s for s in SERVICES if s.hook == request.get("hook")), None)
        if service is None:
            raise InputError(f"no service of this server answers hook {request.get('hook')!r}")
        hook = parse_hook_request(request, service)
        evaluation = asyncio.run(evaluate(service, hook, settings=settings, at=at))
    except orjson.JSONDecodeError:
        print(f"liver-cds evaluate: {args.file} is not valid JSON", file=sys.stderr)
        return 2
    except (InputError, SettingsError) as exc:
        print(f"liver-cds evaluate: {exc}", file=sys.stderr)
        return 2
    except (ProtocolError, PrefetchShapeError, DataUnavailable) as exc:
        print(f"liver-cds evaluate: {exc.message}", file=sys.stderr)
        return 2
    except ValueError as exc:  # card content that fails its checks (ContentError)
        print(f"liver-cds evaluate: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(format_output(evaluation, args))
    return 0


def format_output(evaluation: Evaluation, args: argparse.Namespace) -> str:
    """The chosen output format: the assessment (text or JSON) or the cards (text or JSON)."""
    if getattr(args, "cards", False):
        return format_cards(evaluation.cards, as_json=getattr(args, "json", False))
    if getattr(args, "json", False):
        import orjson

        from service.clinical.export import assessment_to_dict

        return (
            orjson.dumps(
                assessment_to_dict(evaluation.assessment),
                option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS,
            ).decode()
            + "\n"
        )
    return format_text(evaluation.assessment)


def format_cards(cards: list[dict[str, Any]], *, as_json: bool) -> str:
    """The cards the service answers, exactly as the hook endpoint sends them."""
    import orjson

    from service.render.terminal import format_cards_for_terminal

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
