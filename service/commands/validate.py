"""``liver-cds validate FILE``: strict FHIR R4 (``fhir.resources.R4B``) problems of a payload.

FILE is a resource, a Bundle, a CDS Hooks request (each prefetch value is checked) or a
JSON array of those. Prints one line per problem (resource, field path, what is wrong —
never the value) and exits 1 when there is any, 0 when every resource is valid, 2 when the
file cannot be read. Integrators run it on their own payloads before going live.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="resource, Bundle, hook request or array of them (JSON)")


def payloads(data: Any) -> list[tuple[str, Any]]:
    """(label, value) of each thing to validate in the file."""
    if isinstance(data, dict) and "hook" in data and "context" in data:
        prefetch = data.get("prefetch")
        if not isinstance(prefetch, dict):
            return []
        return [(f"prefetch.{k}", v) for k, v in prefetch.items() if v is not None]
    if isinstance(data, list):
        return [(f"[{i}]", v) for i, v in enumerate(data)]
    return [("file", data)]


def run(args: argparse.Namespace) -> int:
    import orjson

    from service.fhir.strict import validate_resource

    try:
        data = orjson.loads(Path(args.file).read_bytes())
    except OSError as exc:
        print(f"liver-cds validate: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    except orjson.JSONDecodeError:
        print(f"liver-cds validate: {args.file} is not valid JSON", file=sys.stderr)
        return 2
    problems = 0
    checked = 0
    for label, value in payloads(data):
        checked += 1
        for note in validate_resource(value):
            problems += 1
            print(f"{label}: {note.resource}: {note.problem}")
    if problems:
        print(f"{problems} problem(s) in {checked} payload(s)", file=sys.stderr)
        return 1
    print(f"OK: {checked} payload(s) valid FHIR R4 (fhir.resources R4B)")
    return 0
