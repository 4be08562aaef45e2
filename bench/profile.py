"""Where the server's time goes under load: py-spy samples grouped by stage of the hot path.

Usage::

    .venv/bin/pip install py-spy                     # once (a wheel with the binary)
    .venv/bin/python bench/profile.py --workload w0  # 15 s of W0 at concurrency 16, log level info
    .venv/bin/python bench/profile.py --workload w2 --seconds 30 --raw w2.txt
    .venv/bin/python bench/profile.py --workload w1 --patch gcparse

It starts the real server (``liver-cds serve --workers 1``, or the prototype launcher
with ``--patch``), drives it with ``hey``, samples it with ``py-spy record --gil``
(Python frames of the thread holding the GIL, 250 Hz) and assigns every sample to one
stage of the hot path by the innermost frame that names one (table below). Only the GIL
holder is sampled because one worker's throughput is bounded by GIL time, whichever
thread holds it; a thread waiting in ``epoll`` or on a queue, or inside SQLite with the
GIL released, costs the hook calls nothing. ``--raw`` keeps the collapsed stacks
(flamegraph.pl / speedscope input).

Two stages need a word. "orjson parse (+GC)" is the time the samples spend *in*
``parse_json`` itself: orjson is C code, so py-spy attributes its time, and any garbage
collection triggered while it allocates, to that Python frame. "free parsed request" is
Starlette's request-response frame itself: it drops the last reference to the request,
so freeing tens of thousands of parsed dicts and lists lands there.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import workloads  # noqa: E402
from bench.run import (  # noqa: E402
    SERVICE_PATH,
    bench_env,
    ensure_tool,
    free_port,
    server,
    wait_ready,
)

SAMPLE_RATE_HZ = 250

# (stage, function-name prefixes, file-path fragments), tried from the innermost frame
# outwards; the first frame that matches a stage decides the sample's stage.
STAGES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("JSON depth check", ("json_depth",), ()),
    ("repeated-key check", ("check_repeated_envelope_keys",), ()),
    ("selective parse (skim)", (), ("fhir/skim.py", "msgspec/")),
    ("orjson parse (+GC)", ("parse_json",), ()),
    ("request body read", ("read_body", "Request.stream"), ()),
    ("request shape", ("parse_hook_request",), ("protocol/request.py",)),
    ("FHIR fetch (httpx)", (), ("fhir/client.py", "httpx/", "httpcore/", "anyio/")),
    ("prefetch unpack", (), ("fhir/bundle.py", "fhir/prefetch.py", "fhir/template.py")),
    ("resource selection", ("select", "_select_", "_belongs"), ()),
    ("fact decoding", (), ("fhir/read.py", "clinical/facts/", "fhir/units.py", "fhir/codes.py")),
    ("rules and scores", (), ("clinical/rules.py", "clinical/scores.py", "clinical/engine.py")),
    ("card rendering", (), ("service/render/", "uuid.py")),
    (
        "response (serialise and send)",
        ("ORJSONResponse", "json_response"),
        ("starlette/responses.py",),
    ),
    (
        "audit (queue, SQLite writer)",
        (),
        ("service/store/", "protocol/audit.py", "sqlalchemy/", "aiosqlite/", "greenlet"),
    ),
    ("logging", (), ("logging/", "service/observability.py")),
    ("metrics", (), ("prometheus_client/",)),
    ("free parsed request", ("request_response.<locals>.app.<locals>.app",), ()),
    ("hook handler (app.py) itself", (), ("service/app.py",)),
    ("HTTP server (uvicorn, httptools)", (), ("uvicorn/", "asyncio/", "uvloop/", "threading.py")),
    ("Starlette routing and middleware", (), ("starlette/",)),
]


def split_frame(frame: str) -> tuple[str, str]:
    """``"select (/work/main/service/fhir/read.py:812)"`` -> ``("select", ".../read.py")``."""
    name, _, where = frame.partition(" (")
    return name, where.rsplit(":", 1)[0]


def stage_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        name, path = split_frame(frame)
        for stage, functions, files in STAGES:
            if name.startswith(functions) or any(f in path for f in files):
                return stage
    return "other"


def summarise(collapsed: str) -> tuple[int, collections.Counter[str]]:
    """Total samples and samples per stage of py-spy's collapsed ("raw") output."""
    totals: collections.Counter[str] = collections.Counter()
    count = 0
    for line in collapsed.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count += int(n)
        totals[stage_of(stack.split(";"))] += int(n)
    return count, totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="w1", choices=["w0", "w1", "w2"])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--patch", default="", help="prototype patches (serve_patched.py)")
    parser.add_argument("--raw", metavar="FILE", help="keep py-spy's collapsed stacks")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    hey = ensure_tool("hey")
    body = orjson.dumps(getattr(workloads, args.workload)())
    tmp = tempfile.mkdtemp(prefix="liver-cds-profile-")
    env = bench_env(tmp, args.log_level)
    port = free_port()
    url = f"http://127.0.0.1:{port}{SERVICE_PATH}"
    target = f"service+{args.patch}" if args.patch else "service"
    raw = Path(args.raw) if args.raw else Path(tmp) / "stacks.txt"
    body_file = Path(tmp) / "body.json"
    body_file.write_bytes(body)
    with server(target, port, env) as proc:
        wait_ready(url, body)
        load = subprocess.Popen(
            [
                hey,
                "-m",
                "POST",
                "-T",
                "application/json",
                "-D",
                str(body_file),
                "-c",
                str(args.concurrency),
                "-z",
                f"{args.seconds + 2}s",
                "-t",
                "60",
                url,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1)
        subprocess.run(
            [
                py_spy,
                "record",
                "-p",
                str(proc.pid),
                "-d",
                str(int(args.seconds)),
                "-r",
                str(SAMPLE_RATE_HZ),
                "-f",
                "raw",
                "-o",
                str(raw),
                "--gil",
            ],
            check=True,
            capture_output=True,
        )
        out, _ = load.communicate()
    rate = next((ln.split()[-1] for ln in out.splitlines() if "Requests/sec" in ln), "?")
    count, totals = summarise(raw.read_text())
    held = 100 * count / (SAMPLE_RATE_HZ * int(args.seconds))
    print(
        f"{args.workload.upper()} {target}: {rate} req/s under load, {count} samples "
        f"(the GIL was held {held:.0f} % of the time)"
    )
    for stage, n in totals.most_common():
        print(f"  {100 * n / count:5.1f} %  {stage}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
