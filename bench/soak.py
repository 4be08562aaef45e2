"""Soak run: mixed hook calls and feedback at concurrency 32 against the real server.

Usage::

    .venv/bin/python bench/soak.py              # 60 s, concurrency 32
    .venv/bin/python bench/soak.py --seconds 20 --json soak.json

It starts ``liver-cds serve --workers 1`` on a free loopback port with a fresh SQLite
database, and sends for the given time a mix of hook calls (80 %: W1-shaped patients,
prefetch given) and feedback posts (20 %: for cards the service really returned, with
their real suggestion ids; one in ten for an unknown card; a fifth of them repeated
byte for byte to exercise idempotency). It samples the server's RSS every second.

At the end it stops the server with SIGTERM (a clean shutdown, which must write every
queued audit record) and reads the database: every hook call answered 200 must have its
audit row, and every distinct feedback item acknowledged with 200 must be stored exactly
once. It prints the figures and exits non-zero when any request failed, a row is missing
or duplicated, or RSS grew by 10 % or more between the first and the last tenth of the
run after a 5 s warm-up. The load loop is bounded in time and count and only talks to
127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import workloads  # noqa: E402
from bench.run import SERVICE_PATH, free_port, loadavg, server, wait_ready  # noqa: E402

MAX_REQUESTS = 2_000_000
WARM_UP_S = 5.0
MAX_GROWTH_PCT = 10.0
OVERRIDE_REASON = {
    "system": "https://liver-cds.org/fhir/CodeSystem/override-reason",
    "code": "already-reviewed-by-mdt",
    "display": "Already reviewed by the MDT",
}


@dataclass
class SoakState:
    """What the workers observed; shared by all of them (one event loop, no locks needed)."""

    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    latencies_by_kind: dict[str, list[float]] = field(default_factory=dict)
    rss: list[tuple[float, float]] = field(default_factory=list)
    cards: list[tuple[str, list[str]]] = field(default_factory=list)
    """(card uuid, suggestion uuids) of recent answers, for realistic feedback."""
    feedback_sent: list[bytes] = field(default_factory=list)
    """Recent feedback bodies, to repeat some of them."""
    feedback_acknowledged: set[bytes] = field(default_factory=set)
    """Distinct feedback bodies answered 200 (each holds one item)."""
    sent: int = 0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_growth(
    samples: Sequence[tuple[float, float]], warm_up_s: float = WARM_UP_S
) -> tuple[float, float, float]:
    """(first, last, growth %): medians of the first and last tenth of the samples taken
    after ``warm_up_s`` (seconds, RSS MB) pairs; growth relative to the first."""
    warm = [mb for t, mb in samples if t >= warm_up_s]
    if not warm:
        raise ValueError("no RSS sample after the warm-up; run longer")
    tenth = max(1, len(warm) // 10)
    first, last = statistics.median(warm[:tenth]), statistics.median(warm[-tenth:])
    return first, last, (last - first) / first * 100


def feedback_body(state: SoakState) -> bytes:
    """One feedback item for a card the service returned (one in ten: an unknown card)."""
    now = datetime.now(UTC).isoformat()
    if state.cards and random.random() < 0.9:
        card, suggestions = random.choice(state.cards)
    else:
        card, suggestions = str(uuid.uuid4()), [str(uuid.uuid4())]
    item: dict[str, Any]
    if random.random() < 0.5 and suggestions:
        item = {
            "card": card,
            "outcome": "accepted",
            "outcomeTimestamp": now,
            "acceptedSuggestions": [{"id": random.choice(suggestions)}],
        }
    else:
        item = {
            "card": card,
            "outcome": "overridden",
            "outcomeTimestamp": now,
            "overrideReason": {"reason": OVERRIDE_REASON, "userComment": "seen at tumour board"},
        }
    return orjson.dumps({"feedback": [item]})


def remember_cards(state: SoakState, body: bytes) -> None:
    for card in orjson.loads(body).get("cards", []):
        ids = [s["uuid"] for s in card.get("suggestions", []) if "uuid" in s]
        state.cards.append((card["uuid"], ids))
    del state.cards[:-200]


async def drive(base: str, seconds: float, concurrency: int, pid: int) -> SoakState:
    hook_body = orjson.dumps(workloads.w1())
    state = SoakState()
    start = time.perf_counter()
    stop_at = start + seconds
    headers = {"content-type": "application/json"}

    async def worker(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < stop_at and state.sent < MAX_REQUESTS:
            state.sent += 1
            kind = "hook" if random.random() < 0.8 else "feedback"
            if kind == "hook":
                url, body = base + SERVICE_PATH, hook_body
            else:
                url = base + SERVICE_PATH + "/feedback"
                if state.feedback_sent and random.random() < 0.2:
                    body = random.choice(state.feedback_sent)
                else:
                    body = feedback_body(state)
                    state.feedback_sent.append(body)
                    del state.feedback_sent[:-100]
            t0 = time.perf_counter()
            try:
                r = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                state.statuses[f"{kind}:{type(exc).__name__}"] += 1
                continue
            state.latencies.append(time.perf_counter() - t0)
            state.latencies_by_kind.setdefault(kind, []).append(time.perf_counter() - t0)
            state.statuses[f"{kind}:{r.status_code}"] += 1
            if r.status_code == 200:
                if kind == "hook":
                    remember_cards(state, r.content)
                else:
                    state.feedback_acknowledged.add(body)

    async def sampler() -> None:
        while time.perf_counter() < stop_at:
            state.rss.append((time.perf_counter() - start, rss_mb(pid)))
            await asyncio.sleep(1)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        await asyncio.gather(sampler(), *(worker(client) for _ in range(concurrency)))
    return state


def stored_counts(db: Path) -> dict[str, int]:
    """Rows in the audit and feedback tables, read after the server has stopped."""
    with sqlite3.connect(db) as conn:
        audit_ok = conn.execute(
            "SELECT COUNT(*) FROM liver_cds_audit WHERE status = 200"
        ).fetchone()[0]
        feedback = conn.execute("SELECT COUNT(*) FROM liver_cds_feedback").fetchone()[0]
        distinct = conn.execute(
            "SELECT COUNT(*) FROM (SELECT DISTINCT card_uuid, outcome, outcome_timestamp "
            "FROM liver_cds_feedback)"
        ).fetchone()[0]
    return {"audit_200": audit_ok, "feedback": feedback, "feedback_distinct": distinct}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="liver-cds-soak-")
    db = Path(tmp) / "soak.db"
    env = {
        **os.environ,
        "LIVER_CDS_DATABASE_URL": f"sqlite:///{db}",
        "LIVER_CDS_LOG_LEVEL": "warning",
        "LIVER_CDS_AUTH": "off",
        "PYTHONPATH": str(ROOT),
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    load_start = loadavg()
    with server("service", port, env) as proc:
        wait_ready(base + SERVICE_PATH, orjson.dumps(workloads.w1()))
        started = time.perf_counter()
        state = asyncio.run(drive(base, args.seconds, args.concurrency, proc.pid))
        elapsed = time.perf_counter() - started
        peak = _peak_rss(proc.pid)
    # server() has sent SIGTERM and waited: the audit queue is flushed by now.
    stored = stored_counts(db)

    total = sum(state.statuses.values())
    errors = sum(n for k, n in state.statuses.items() if not k.endswith(":200"))
    hooks_ok = state.statuses.get("hook:200", 0)
    first, last, growth = rss_growth(state.rss)
    lat = sorted(state.latencies)
    p50 = lat[len(lat) // 2] * 1000 if lat else float("nan")
    p99 = lat[int(len(lat) * 0.99)] * 1000 if lat else float("nan")
    # The readiness probe (wait_ready) is one more hook call answered 200, with its audit row.
    audit_ok = stored["audit_200"] == hooks_ok + 1
    feedback_ok = (
        stored["feedback"] == stored["feedback_distinct"] == len(state.feedback_acknowledged)
    )
    print(
        f"soak: {args.seconds:.0f} s at concurrency {args.concurrency}: {total} requests "
        f"({total / elapsed:.0f}/s), errors {errors}; load average {load_start:.2f} -> "
        f"{loadavg():.2f}"
    )
    print(
        "  by kind and status: " + ", ".join(f"{k} {n}" for k, n in sorted(state.statuses.items()))
    )
    print(f"  latency p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    for kind, values in sorted(state.latencies_by_kind.items()):
        ordered = sorted(values)
        print(
            f"    {kind}: p50 {ordered[len(ordered) // 2] * 1000:.1f} ms, "
            f"p99 {ordered[int(len(ordered) * 0.99)] * 1000:.1f} ms"
        )
    print(
        f"  RSS after warm-up {first:.1f} MB -> end {last:.1f} MB: growth {growth:+.1f} % "
        f"(peak {peak:.1f} MB, {len(state.rss)} samples)"
    )
    print(
        f"  audit rows for 200 answers: {stored['audit_200']} of {hooks_ok + 1} "
        f"({'all' if audit_ok else 'MISMATCH'}); feedback rows: {stored['feedback']} for "
        f"{len(state.feedback_acknowledged)} distinct acknowledged items "
        f"({'exactly once' if feedback_ok else 'MISMATCH'})"
    )
    ok = errors == 0 and growth < MAX_GROWTH_PCT and audit_ok and feedback_ok
    print("  PASS" if ok else "  FAIL")
    if args.json:
        result = {
            "seconds": args.seconds,
            "concurrency": args.concurrency,
            "requests": total,
            "requests_per_s": total / elapsed,
            "errors": errors,
            "statuses": dict(state.statuses),
            "latency_ms": {"p50": p50, "p99": p99},
            "rss_mb": {"first": first, "last": last, "growth_pct": growth, "peak": peak},
            "stored": stored,
            "hooks_ok": hooks_ok,
            "feedback_acknowledged": len(state.feedback_acknowledged),
            "pass": ok,
        }
        Path(args.json).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0 if ok else 1


def _peak_rss(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    sys.exit(main())
