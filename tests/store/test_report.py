"""The feedback report: outcomes, acceptance per option, override reasons, unknown cards."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

import pytest

from service.commands import feedback_report
from service.store import SqlStore
from service.store.report import UNKNOWN_CARD, build_report

from .helpers import accepted, hook_call, new_uuid, overridden

DAY1 = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
DAY2 = datetime(2025, 3, 2, 10, 0, tzinfo=UTC)


async def fill(store: SqlStore) -> None:
    """Three resectable cards (resection + mdt-review), one not-resectable card (palliative
    + mdt-review), and feedback: resection accepted twice, mdt-review once, one override per
    verdict plus one on an unknown card."""
    cards = []
    for n in range(3):
        call = hook_call(
            verdict="resectable",
            options={"resection": f"res-{n}", "mdt-review": f"mdt-{n}"},
        )
        cards.append(call.card_uuids[0])
        store.audit(call)
    palliative = hook_call(
        verdict="not-resectable",
        options={"systemic-therapy": "sys-0", "mdt-review": "mdt-3"},
    )
    store.audit(palliative)
    await store.flush_audit()
    await store.save_feedback(
        [
            accepted(cards[0], "res-0", "mdt-0", at=DAY1),
            accepted(cards[1], "res-1", at=DAY2),
            overridden(cards[2], "already-reviewed-by-mdt", at=DAY2),
            overridden(palliative.card_uuids[0], "patient-declined", at=DAY1),
            overridden("card-from-elsewhere", None, at=DAY2),
        ]
    )


async def test_counts_by_outcome_and_total(store: SqlStore) -> None:
    await fill(store)
    report = await build_report(store.engine)

    assert report.total == 5
    assert report.by_outcome == {"accepted": 2, "overridden": 3}


async def test_acceptance_rate_per_option_joins_suggestions_to_options(store: SqlStore) -> None:
    await fill(store)
    report = await build_report(store.engine)
    by_code = {o.option_code: o for o in report.options}

    assert (by_code["resection"].shown, by_code["resection"].offered) == (3, 3)
    assert by_code["resection"].accepted == 2
    assert by_code["resection"].acceptance_rate == pytest.approx(2 / 3)
    assert (by_code["mdt-review"].shown, by_code["mdt-review"].offered) == (4, 4)
    assert by_code["mdt-review"].accepted == 1
    assert (by_code["systemic-therapy"].offered, by_code["systemic-therapy"].accepted) == (1, 0)
    assert by_code["systemic-therapy"].acceptance_rate == 0.0


async def test_override_reasons_are_grouped_by_the_cards_verdict(store: SqlStore) -> None:
    await fill(store)
    report = await build_report(store.engine)

    assert report.override_reasons == {
        "not-resectable": {"patient-declined": 1},
        "resectable": {"already-reviewed-by-mdt": 1},
        UNKNOWN_CARD: {"(no reason given)": 1},
    }
    assert report.reason_displays["patient-declined"] == "Patient declined"


async def test_feedback_for_unknown_cards_is_reported(store: SqlStore) -> None:
    await fill(store)
    report = await build_report(store.engine)

    assert report.unknown_card_items == 1
    assert report.unknown_card_uuids == ["card-from-elsewhere"]


async def test_since_keeps_feedback_acted_on_from_that_moment(store: SqlStore) -> None:
    await fill(store)
    report = await build_report(store.engine, since=DAY2)

    assert report.total == 3
    assert report.by_outcome == {"accepted": 1, "overridden": 2}


async def test_accepted_suggestions_no_audit_knows_are_counted_apart(store: SqlStore) -> None:
    await store.save_feedback([accepted(new_uuid(), "who-knows")])
    report = await build_report(store.engine)

    assert report.unmapped_accepted_suggestions == 1
    assert report.options == []


async def test_an_empty_database_reports_zero(store: SqlStore) -> None:
    report = await build_report(store.engine)
    assert (report.total, report.by_outcome) == (0, {"accepted": 0, "overridden": 0})


def run_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    feedback_report.add_arguments(parser)
    return feedback_report.run(parser.parse_args(argv))


async def test_the_command_prints_json_with_total_and_by_outcome(
    store: SqlStore,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await fill(store)
    monkeypatch.setenv("LIVER_CDS_DATABASE_URL", database_url)

    # The command runs its own event loop, as it does from the shell.
    import asyncio

    code = await asyncio.to_thread(run_command, ["--json", "--since", "2025-03-02"])

    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["total"] == 3
    assert printed["by_outcome"] == {"accepted": 1, "overridden": 2}
    assert printed["acceptance_by_option"]["resection"]["accepted"] == 1
    assert printed["unknown_cards"]["items"] == 1


async def test_the_command_prints_a_readable_summary(
    store: SqlStore,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await fill(store)
    monkeypatch.setenv("LIVER_CDS_DATABASE_URL", database_url)
    import asyncio

    assert await asyncio.to_thread(run_command, []) == 0
    out = capsys.readouterr().out
    assert "5 item(s)" in out
    assert "resection" in out and "67%" in out
    assert "already-reviewed-by-mdt" in out
    assert "card-from-elsewhere" in out


def test_the_command_refuses_a_missing_sqlite_file(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LIVER_CDS_DATABASE_URL", f"sqlite:///{tmp_path}/absent.db")
    assert run_command([]) == 2
    assert "no database" in capsys.readouterr().err


def test_a_malformed_since_is_an_argument_error() -> None:
    with pytest.raises(SystemExit):
        run_command(["--since", "last tuesday"])
