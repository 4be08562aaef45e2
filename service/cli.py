"""``liver-cds`` command line: one sub-command per module in ``service/commands``.

Each command module exposes ``add_arguments(parser)`` and ``run(args) -> int`` and keeps
its heavy imports inside ``run`` so that building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("service.commands.serve", "Run the CDS Hooks service (uvicorn)."),
    "evaluate": ("service.commands.evaluate", "Assess a hook request or Bundle from a file."),
    "validate": ("service.commands.validate", "Report strict FHIR R4 problems in a file."),
    "feedback-report": ("service.commands.feedback_report", "Summarise stored feedback."),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="liver-cds",
        description="Liver CDS: CDS Hooks 2.0 service for liver metastasis resectability.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    args = parser.parse_args(argv)
    result: int = args._run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
