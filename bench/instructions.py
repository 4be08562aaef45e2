"""Instructions per call of each hot-path stage, counted by callgrind: A/B on a noisy machine.

Usage::

    .venv/bin/python bench/instructions.py                          # W0: every stage
    .venv/bin/python bench/instructions.py --workload w1 --stages "asgi call,render_cards"
    .venv/bin/python bench/instructions.py --json before.json       # keep for a later diff

Timings on a shared two-core machine move by 30 % from one minute to the next, so a
change worth 5 % of a call cannot be seen with a clock. ``valgrind --tool=callgrind``
counts the instructions the process executes instead: the same code on the same input
gives the same count to within a few hundred thousandths, whatever else the machine is
doing. Only the calls themselves are counted: after the set-up and the warm-up, the driver
makes its ``--calls`` calls of the stage inside one call of the C function behind
``functools.reduce``, and callgrind collects only while that function runs
(``--collect-atstart=no --toggle-collect=functools_reduce``). The count divided by
``--calls`` is the stage's instructions per call, within about 0.2 % from run to run.
(The first version counted two whole runs, with and without the calls, and took the
difference: start-up's few billion instructions then varied by more than a small
stage's whole count, about ±150k per call at 200 calls.) Instructions are not time
(a cache miss costs more than an add), so a change is confirmed with ``bench/run.py``
before it is claimed as a speed-up; but they rank where the work is, and they show
whether a change removed work.

The stages are those of ``bench/stages.py`` plus ``asgi call``: one whole hook call
through the ASGI application (lifespan run, SQLite audit store, log level info, the log
written to /dev/null), driven with raw ASGI messages as uvicorn would, without a client.
It is what the service does per call beyond the HTTP server, on the thread that answers
hook calls: callgrind keeps its collection switch per thread, so the audit writer's
threads are not counted (``noaudit`` changes the count by 6k: the hand-over). Their
share is priced per thread from ``/proc`` under load (docs/performance.md).

Needs valgrind (``apt-get install valgrind``) and a Python whose ``_functools`` keeps its
symbol names (pyenv's and Debian's do; the count says so when it found nothing to count).
A stage run takes about 30 s; stages run two at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import functools
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import workloads  # noqa: E402

ASGI_STAGE = "asgi call"
WARM_UP = 20
_IREFS = re.compile(r"Collected\s*:\s*(\d+)")
MARKER = "functools_reduce"
"""The C function (CPython's ``functools.reduce``) inside which the counted calls run:
callgrind counts instructions only while it is on the stack."""


def call_counted(fn: Callable[[], object], calls: int) -> None:
    """``fn()`` ``calls`` times, all inside one :data:`MARKER` call (what callgrind counts)."""
    functools.reduce(lambda _, __: fn(), range(calls), None)


def _asgi_caller(body: bytes, settings: Any) -> tuple[Callable[[], None], Callable[[], None]]:
    """(one hook call through the app, shutdown): the app's lifespan is entered once."""
    from asgi_lifespan import LifespanManager

    from bench.stages import SERVICE_PATH
    from service.app import create_app

    app = create_app(settings, clock=lambda: workloads.EVALUATED_AT)
    loop = asyncio.new_event_loop()

    async def enter() -> tuple[LifespanManager, Any]:
        # Generous timeouts: under callgrind a start-up or shutdown takes 50 times longer.
        manager = LifespanManager(app, startup_timeout=600, shutdown_timeout=600)
        return manager, await manager.__aenter__()

    manager, running = loop.run_until_complete(enter())
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]

    async def call() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": SERVICE_PATH,
            "raw_path": SERVICE_PATH.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        status: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await running.app(scope, receive, send)
        if status != [200]:
            raise RuntimeError(f"hook call answered {status}")

    def shutdown() -> None:
        loop.run_until_complete(manager.__aexit__(None, None, None))
        loop.close()

    return (lambda: loop.run_until_complete(call())), shutdown


def drive(workload: str, stage: str | None, calls: int) -> None:
    """Set up every stage, warm the chosen one up, then call it ``calls`` times."""
    from bench.stages import bench_settings, pipeline_stages

    body = orjson.dumps(getattr(workloads, workload)())
    settings = bench_settings(tempfile.mkdtemp(prefix="liver-cds-instr-"), "info")
    stages = dict(pipeline_stages(body, settings))
    # The log goes where a server's would, but not to the terminal.
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (the process ends after this)
    asgi, shutdown = _asgi_caller(body, settings)
    stages[ASGI_STAGE] = asgi
    logging.getLogger().setLevel(logging.INFO)
    for fn in stages.values():  # the same warm-up in every run, so it cancels out
        for _ in range(WARM_UP):
            fn()
    if stage is not None:
        call_counted(stages[stage], calls)
    shutdown()


def count(workload: str, stage: str, calls: int) -> int:
    """Instructions callgrind counted in the ``calls`` calls of ``stage`` (one driver run)."""
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        "--collect-atstart=no",
        f"--toggle-collect={MARKER}",
        sys.executable,
        str(Path(__file__).resolve()),
        "--drive",
        stage,
        "--workload",
        workload,
        "--calls",
        str(calls),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    match = _IREFS.search(proc.stderr)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"callgrind run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    counted = int(match.group(1))
    if counted == 0 and calls > 0:
        raise RuntimeError(
            f"callgrind counted nothing: this Python's {MARKER} has no symbol to toggle on"
        )
    return counted


STAGES = (
    "HookBodyParser (skim+depth)",
    "repeated-key check",
    "parse_hook_request",
    "prefetch.resolve (unpack)",
    "select (read.py)",
    "assess (select+facts+rules)",
    "render_cards",
    "pipeline.evaluate (resolve+assess+cards)",
    "orjson.dumps response",
    "card_ids (audit)",
    ASGI_STAGE,
)
"""The stages counted by default (names as in bench/stages.py, plus the whole call)."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="w0", choices=["w0", "w1", "w2"])
    parser.add_argument("--stages", help="comma-separated stage names (default: all)")
    parser.add_argument("--calls", type=int, default=200, help="calls counted per stage")
    parser.add_argument("--json", metavar="FILE", help="also write the counts as JSON")
    parser.add_argument("--drive", help=argparse.SUPPRESS)  # the run under callgrind
    args = parser.parse_args()
    if args.drive is not None:
        try:
            drive(args.workload, args.drive or None, args.calls)
        except BaseException:
            import traceback

            traceback.print_exc(file=sys.__stderr__)
            return 1
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind not found: apt-get install valgrind", file=sys.stderr)
        return 2
    names = args.stages.split(",") if args.stages else list(STAGES)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        runs = {name: pool.submit(count, args.workload, name, args.calls) for name in names}
        per_call = {name: run.result() / args.calls for name, run in runs.items()}
    print(f"{args.workload.upper()}: instructions per call ({args.calls} calls, callgrind)")
    for name, value in per_call.items():
        print(f"  {name:<42}{value / 1000:>12,.0f} k")
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(per_call, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
