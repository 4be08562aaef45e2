"""``liver-cds feedback-report [--since DATE] [--json]``: what clinicians did with the cards.

Reads the database named by ``LIVER_CDS_DATABASE_URL`` (read-only: it never creates or
migrates a schema). Text for people, ``--json`` for scripts (at least ``total`` and
``by_outcome``).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.store.report import FeedbackReport


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since",
        type=_parse_since,
        metavar="DATE",
        help="only feedback whose outcome timestamp is on or after DATE "
        "(YYYY-MM-DD or an ISO 8601 date-time; UTC when no zone is given)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    import asyncio
    import sys

    import orjson
    from sqlalchemy.exc import SQLAlchemyError

    from service.settings import Settings, SettingsError
    from service.store.urls import DatabaseUrlError

    try:
        settings = Settings.from_env()
        report = asyncio.run(_report(settings.database_url, args.since))
    except (SettingsError, DatabaseUrlError, FileNotFoundError) as exc:
        print(f"liver-cds feedback-report: {exc}", file=sys.stderr)
        return 2
    except (OSError, SQLAlchemyError) as exc:
        print(f"liver-cds feedback-report: database error ({type(exc).__name__})", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.write(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_report(report))
    return 0


async def _report(database_url: str, since: datetime | None) -> FeedbackReport:
    from service.store.engine import create_engine
    from service.store.report import build_report
    from service.store.urls import parse_database_url

    target = parse_database_url(database_url)
    if target.sqlite_path is not None and not target.sqlite_path.exists():
        raise FileNotFoundError(f"no database at {target.sqlite_path}")
    engine = create_engine(target)
    try:
        return await build_report(engine, since)
    finally:
        await engine.dispose()


def _parse_since(raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--since: {raw!r} is not a date (YYYY-MM-DD) or ISO 8601 date-time"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def format_report(report: FeedbackReport) -> str:
    """The report as a person reads it in a terminal."""
    since = report.since.isoformat() if report.since else "the beginning"
    lines = [f"Feedback since {since}: {report.total} item(s)"]
    for outcome, count in sorted(report.by_outcome.items()):
        lines.append(f"  {outcome:<12} {count:>6}")
    lines.append("")
    lines.append("Acceptance per option (offered = cards with feedback that carried the option)")
    if report.options:
        lines.append(f"  {'option':<32} {'shown':>7} {'offered':>8} {'accepted':>9} {'rate':>6}")
        for option in report.options:
            rate = option.acceptance_rate
            rate_text = "-" if rate is None else f"{rate:.0%}"
            lines.append(
                f"  {option.option_code:<32} {option.shown:>7} {option.offered:>8} "
                f"{option.accepted:>9} {rate_text:>6}"
            )
    else:
        lines.append("  (no suggestions audited)")
    if report.unmapped_accepted_suggestions:
        lines.append(
            f"  {report.unmapped_accepted_suggestions} accepted suggestion id(s) "
            "match no audited suggestion"
        )
    lines.append("")
    lines.append("Override reasons per verdict")
    if report.override_reasons:
        for verdict, reasons in report.override_reasons.items():
            lines.append(f"  {verdict}")
            for code, count in reasons.items():
                display = report.reason_displays.get(code)
                label = f"{code} ({display})" if display and display != code else code
                lines.append(f"    {count:>6}  {label}")
    else:
        lines.append("  (no overrides)")
    lines.append("")
    lines.append(f"Feedback for unknown cards: {report.unknown_card_items} item(s)")
    for card in report.unknown_card_uuids:
        lines.append(f"  {card}")
    return "\n".join(lines) + "\n"
