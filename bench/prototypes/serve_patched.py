"""Run ``liver-cds`` with prototype patches applied, to measure a proposed change.

Usage (normally through the benchmark, which passes the same arguments)::

    .venv/bin/python bench/run.py --workloads w1 --variants "gcparse;noaudit"
    .venv/bin/python bench/prototypes/serve_patched.py --patch gcparse serve --port 8000

``service/`` is not edited: each patch replaces one function or adds one call at start-up
in this process only, so the HTTP benchmark can compare the service as it is with the
service as it would be after the change. A patch is either a *prototype* of a proposed
change (docs/performance.md lists the gains measured this way) or a
*probe* that removes a piece of work to measure what it costs (``nodepth``, ``noaudit``,
...): probes are not proposals, they only put a price on a stage.

Prototypes
  gcparse       ``gc.disable()`` around ``orjson.loads`` in ``parse_json``: a JSON document
                cannot contain a reference cycle, so collections triggered while orjson
                allocates tens of thousands of dicts can only scan live objects.
  gcthreshold=N ``gc.set_threshold(N, 10, 10)`` at start-up (default N is 700): fewer young
                collections per request.

  auditbatch=L:B the audit writer lingers L ms (default 50) for batches of up to B
                records (default 100).

  malloc=MMAP:TRIM glibc ``mallopt`` at start-up: bodies below MMAP bytes (default 1 MiB) come
                from the heap instead of a fresh mmap, and up to TRIM bytes (default 16 MiB)
                of free heap are kept, so a 180 KiB body is not faulted in anew per call.

  switchinterval=S ``sys.setswitchinterval(S)`` at start-up (default 0.005 s): how long a
                thread waiting for the GIL lets the running one keep it.

  queuelog      the log lines are formatted and written by a ``QueueListener`` thread: the
                thread answering hook calls only enqueues each record.

Probes (cost of a stage; not proposals)
  nodepth       skip the JSON nesting-depth scan (orjson's own 1024-level cap remains).
  nodupcheck    skip the repeated patientId/fhirServer key check.
  noaudit       ``store.audit`` does nothing (no audit row, no aiosqlite thread work).
  auditnowrite  records are handed over and taken by the writer, which builds and writes
                nothing: prices the hand-over and the writer's wake-ups alone.
  auditnodb     the writer builds each batch's rows and SQL pages but sends nothing to
                SQLite: with ``auditnowrite``, separates the Python of a batch from the
                database's part.
  nometrics     Prometheus counters and histograms of the hook call do nothing.
  nolog         no INFO lines (the service's and uvicorn's access log at WARNING): prices
                the per-call log lines; the service itself never runs this way.
  gcstats=FILE  time every garbage collection (gc.callbacks) and write, at exit, the
                count and total pause per generation to FILE as JSON.
"""

from __future__ import annotations

import argparse
import gc
import logging
import logging.handlers
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _after_start(action: Callable[[], None]) -> None:
    """Run ``action`` once the app's lifespan start-up has opened everything."""
    import service.app as app_module

    original = app_module._start

    async def patched(*args: Any, **kwargs: Any) -> Any:
        resources = await original(*args, **kwargs)
        action()
        return resources

    app_module._start = patched  # type: ignore[assignment]


def gcparse(_: str) -> None:
    import orjson

    import service.app as app_module
    from service.protocol import jsonbody

    original = jsonbody.parse_json

    def parse_json(
        body: bytes, *, max_depth: int, decode: Callable[[bytes], Any] = orjson.loads
    ) -> Any:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return original(body, max_depth=max_depth, decode=decode)
        finally:
            if enabled:
                gc.enable()

    jsonbody.parse_json = parse_json
    app_module.parse_json = parse_json  # type: ignore[assignment]


def gcthreshold(value: str) -> None:
    threshold = int(value or 10_000)
    _after_start(lambda: gc.set_threshold(threshold, 10, 10))


def nodepth(_: str) -> None:
    from service import jsondepth

    jsondepth.json_depth = lambda body, limit: 0


def nodupcheck(_: str) -> None:
    import service.app as app_module

    app_module.check_repeated_envelope_keys = lambda body, parsed: None  # type: ignore[assignment]


def noaudit(_: str) -> None:
    from service.store.sql import SqlStore

    SqlStore.audit = lambda self, record: None  # type: ignore[method-assign]


def auditnowrite(_: str) -> None:
    from service.store.sql import SqlStore

    async def nothing(self: SqlStore, engine: Any, records: Any) -> None:
        return None

    SqlStore._write_audit_batch = nothing  # type: ignore[method-assign]


def auditnodb(_: str) -> None:
    import service.store.sql as sql

    async def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    sql._write_audit_sqlite = nothing  # type: ignore[assignment]


def nometrics(_: str) -> None:
    import service.app as app_module

    def nothing(service: str, status: int, verdict: str, latency_s: float | None) -> None:
        return None

    app_module.count_hook_call = nothing  # type: ignore[assignment]


def auditbatch(value: str) -> None:
    from service.store.sql import SqlStore

    linger_ms, _, batch = (value or "50:100").partition(":")
    original = SqlStore.__init__

    def patched(self: SqlStore, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("audit_linger_s", float(linger_ms) / 1000)
        kwargs.setdefault("audit_batch", int(batch or 100))
        original(self, *args, **kwargs)

    SqlStore.__init__ = patched  # type: ignore[method-assign]


def switchinterval(value: str) -> None:
    sys.setswitchinterval(float(value or 0.005))


def malloc(value: str) -> None:
    """glibc's ``mallopt``: M_MMAP_THRESHOLD and M_TRIM_THRESHOLD in bytes (``MMAP:TRIM``)."""
    import ctypes

    mmap_threshold, _, trim_threshold = (value or "1048576:16777216").partition(":")
    libc = ctypes.CDLL(None)
    libc.mallopt(-3, int(mmap_threshold))  # M_MMAP_THRESHOLD
    libc.mallopt(-1, int(trim_threshold or 16_777_216))  # M_TRIM_THRESHOLD


def nolog(_: str) -> None:
    def quiet() -> None:
        for name in ("liver_cds", "uvicorn.access"):
            logging.getLogger(name).setLevel(logging.WARNING)

    _after_start(quiet)


def log_through_queue(logger: logging.Logger) -> logging.handlers.QueueListener:
    """Move ``logger``'s :class:`~service.observability.StderrHandler` behind a queue: the
    logging call only enqueues the record, a ``QueueListener`` thread formats and writes it
    (the logging cookbook's "Dealing with handlers that block"). Returns the started
    listener (``stop()`` writes what is queued)."""
    import queue

    from service.observability import StderrHandler

    class Deferred(logging.handlers.QueueHandler):
        def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
            return record  # formatted by the listener's handler, on its thread

    moved = [h for h in logger.handlers if isinstance(h, StderrHandler)]
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    for handler in moved:
        logger.removeHandler(handler)
    logger.addHandler(Deferred(records))
    listener = logging.handlers.QueueListener(records, *moved, respect_handler_level=True)
    listener.start()
    return listener


def queuelog(_: str) -> None:
    _after_start(lambda: log_through_queue(logging.getLogger()))


def gcstats(path: str) -> None:
    import atexit
    import json
    import time

    starts: dict[int, float] = {}
    totals: dict[int, list[float]] = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}

    def callback(phase: str, info: dict[str, int]) -> None:
        generation = info["generation"]
        if phase == "start":
            starts[generation] = time.perf_counter()
        elif generation in starts:
            totals[generation][0] += 1
            totals[generation][1] += time.perf_counter() - starts.pop(generation)

    def write() -> None:
        data = {
            f"gen{g}": {"collections": int(n), "seconds": round(s, 6)}
            for g, (n, s) in totals.items()
        }
        Path(path or "gcstats.json").write_text(json.dumps(data))

    gc.callbacks.append(callback)
    atexit.register(write)


PATCHES: dict[str, Callable[[str], None]] = {
    "gcparse": gcparse,
    "gcthreshold": gcthreshold,
    "nodepth": nodepth,
    "nodupcheck": nodupcheck,
    "noaudit": noaudit,
    "auditnowrite": auditnowrite,
    "auditnodb": auditnodb,
    "nometrics": nometrics,
    "gcstats": gcstats,
    "auditbatch": auditbatch,
    "nolog": nolog,
    "queuelog": queuelog,
    "malloc": malloc,
    "switchinterval": switchinterval,
}


def apply(spec: str) -> list[str]:
    """Apply the comma-separated patches of ``spec`` (``name`` or ``name=value``)."""
    applied = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, value = item.partition("=")
        if name not in PATCHES:
            raise SystemExit(f"unknown patch {name!r}; known: {', '.join(PATCHES)}")
        PATCHES[name](value)
        applied.append(item)
    return applied


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patch", default="", help="comma-separated patches")
    args, rest = parser.parse_known_args()
    apply(args.patch)
    from service.cli import main as cli_main

    return cli_main(rest)


if __name__ == "__main__":
    sys.exit(main())
