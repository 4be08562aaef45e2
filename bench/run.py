"""Benchmark the service against its floor, with a real HTTP load generator.

Usage::

    .venv/bin/python bench/run.py            # W0, W1, W2, W3, cold start; 10 s runs, 3 repeats
    .venv/bin/python bench/run.py --duration 5 --repeat 1 --workloads w1,cold
    .venv/bin/python bench/run.py --workloads w1 --variants "gcparse;noaudit"  # prototypes
    .venv/bin/python bench/run.py --workloads w0,w1 --baseline /tmp/before  # A/B two commits

For each workload it starts the real service (``liver-cds serve --workers 1``) and the
floor server (``bench/floor.py``: read the body, parse it with orjson, answer
``{"cards": []}``) on the same uvicorn settings (uvloop, httptools, one worker), drives
both with ``hey`` (Debian package, installed if absent) and prints requests/s under load
(``-c 16``), p50/p95/p99 latency under load, the single-connection p50 (``-c 1``: the
latency one EHR sees), the server's CPU time per request, peak RSS (VmHWM) and the ratios
to the floor. Cold start is process start to the first answered W1 call.

hey prints its percentiles to a tenth of a millisecond, which is a tenth of a small
chart's whole call: a change of 50 µs in a single call cannot show in it. And hey's
single-connection run sends each request the moment the previous answer arrives, so
whatever a server does after answering (the service's log line and audit hand-over) is
paid by the next request. So the latency of a single call is also measured with ``wrk``
(Debian package, installed if absent; its histogram keeps microseconds): one connection,
:data:`SINGLE_GAP_MS` between an answer and the next request, so every call meets an idle
server, as an EHR's call for one opened chart does (columns ``1c µs`` and its ratios). The
targets stay judged on hey's figures, the method the issue set them with; wrk's lighter
client makes the floor faster, so its ratios are the stricter ones.

``--variants`` adds targets ``service+<patches>``: the service started through
``bench/prototypes/serve_patched.py`` with prototype patches (a proposed change, or a
probe that removes one stage to price it). Variants run in the same repeats as the
service, so the column ``vs svc`` (median paired ratio of CPU per request to the plain
service) isolates the patch from the machine's background load. ``--baseline DIR`` does the same
for a whole commit: the target ``baseline`` is the service of another checkout (a ``git
worktree`` of the commit before a change), so a change is priced against the code before
it in the same repeats.

The machine is shared and noisy: each run is repeated (``--repeat``), floor and service
alternate within a repeat so both see the same background load, and the table shows
medians; the ratio columns are medians of the per-repeat (paired) ratios. CPU time per
request (from ``/proc/<pid>/stat``) is the steadiest figure when other work competes for
the cores. The load average is printed with the results.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import workloads  # noqa: E402

SERVICE_PATH = "/cds-services/liver-metastasis-resectability"
UVICORN_FLAGS = ["--loop", "uvloop", "--http", "httptools", "--workers", "1", "--no-access-log"]
LOAD_CONCURRENCY = 16
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

TARGETS = {
    "w0_rps_ratio": 0.35,  # W0 (14 KB chart) throughput >= 0.35 x floor, one worker
    "w0_single_p50_ratio": 3.0,  # W0 single-request p50 <= 3 x floor's
    "w1_rps_ratio": 0.75,  # W1 throughput >= 0.75 x floor, one worker
    "w1_single_p50_ratio": 1.5,  # W1 single-request p50 <= 1.5 x floor's
    "w2_p50_ratio": 1.0,  # W2 p50 <= 1.0 x floor's W2 latency
    "w2_peak_rss_mb": 160.0,  # W2 peak RSS no higher than round 1's (149 MB, + noise)
    "cold_start_s": 2.0,  # process start to first answer <= 2 s
}


@dataclass
class SingleLatency:
    """wrk's single-connection run: requests, failures and latency percentiles in µs."""

    requests: int
    errors: int
    p50_us: float
    p95_us: float
    p99_us: float


SINGLE_GAP_MS = 2
"""Milliseconds wrk waits after each answer before the next request (``delay()``)."""

WRK_SCRIPT = f"""\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local file = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.body = file:read("*a")
file:close()

function delay()
  return {SINGLE_GAP_MS}
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d errors=%d status_errors=%d p50_us=%.1f p95_us=%.1f p99_us=%.1f\\n",
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""
"""wrk's script: POST the body file named by ``BENCH_BODY_FILE``, wait
:data:`SINGLE_GAP_MS` after each answer, then print one machine-readable line
(``parse_wrk``) from wrk's own histogram."""

SINGLE_WRK_SECONDS = 2.0


@dataclass
class LoadResult:
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    requests: int
    errors: int


@dataclass
class Row:
    workload: str
    target: str
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    single_p50_ms: float
    single_cpu_ms: float
    cpu_ms_per_req: float
    peak_rss_mb: float
    errors: int
    loadavg: float = 0.0
    single_p50_us: float = float("nan")
    """Single-connection p50 measured by wrk, in µs (``nan`` when not measured)."""
    extra: dict[str, Any] = field(default_factory=dict)


# --- processes --------------------------------------------------------------------------------


def ensure_tool(name: str) -> str:
    """The path of load generator ``name`` (``hey``, ``wrk``), installed from Debian's
    package of that name when absent and this process may (root with apt-get)."""
    found = shutil.which(name)
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing {name} (Debian package) ...", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", name],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit(f"bench needs '{name}' (apt-get install {name})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def wait_ready(url: str, body: bytes, timeout: float = 30.0) -> tuple[float, httpx.Response]:
    """Poll until a POST of ``body`` answers 200; return the seconds it took and the answer."""
    start = time.perf_counter()
    deadline = start + timeout
    last = "no answer"
    while time.perf_counter() < deadline:
        try:
            r = httpx.post(
                url, content=body, headers={"content-type": "application/json"}, timeout=30
            )
            if r.status_code == 200:
                return time.perf_counter() - start, r
            last = f"{r.status_code} {r.text[:300]}"
        except httpx.TransportError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"server at {url} not ready after {timeout} s (last answer: {last})")


def verdict_of(response: httpx.Response) -> str | None:
    """``source.topic.code`` of the first card (the verdict), or None when there is none."""
    cards = response.json().get("cards") or []
    return cards[0].get("source", {}).get("topic", {}).get("code") if cards else None


def service_command(port: int, patches: str = "") -> list[str]:
    """``liver-cds serve`` on ``port``, through the prototype launcher when ``patches``."""
    python = sys.executable
    if patches:
        script = str(ROOT / "bench" / "prototypes" / "serve_patched.py")
        return [python, script, "--patch", patches, "serve", "--port", str(port), "--workers", "1"]
    cli = str(Path(python).parent / "liver-cds")
    return [cli, "serve", "--port", str(port), "--workers", "1"]


@contextlib.contextmanager
def server(target: str, port: int, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``target`` on ``port`` (``floor``, ``service``, ``service+<patches>`` or
    ``baseline``, the service of the checkout named by ``--baseline``);
    stop it afterwards with SIGTERM (a clean shutdown), SIGKILL after 10 s.

    The server's stderr goes to a file (a pipe nobody reads would fill and block it at
    log level info); its tail is printed if the server fails.
    """
    cwd = ROOT
    if target == "floor":
        cmd = [sys.executable, "-m", "uvicorn", "bench.floor:app", "--port", str(port)]
        cmd += UVICORN_FLAGS
    elif target == "baseline":
        # The same command from another checkout: its service package comes first on the
        # path, ahead of this venv's editable install of this one.
        cwd = Path(env["LIVER_CDS_BENCH_BASELINE"])
        env = {**env, "PYTHONPATH": str(cwd)}
        cmd = service_command(port)
    else:
        cmd = service_command(port, target.partition("+")[2])
    with tempfile.NamedTemporaryFile(prefix=f"liver-cds-bench-{target}-", suffix=".log") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            yield proc
        except Exception:
            log.flush()
            tail = Path(log.name).read_text(errors="replace")[-2000:]
            print(f"--- {target} stderr (tail) ---\n{tail}", file=sys.stderr)
            raise
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def peak_rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# --- load -------------------------------------------------------------------------------------


def run_hey(
    hey: str,
    url: str,
    body_file: str,
    *,
    concurrency: int,
    duration: float | None,
    requests: int | None = None,
) -> LoadResult:
    cmd = [hey, "-m", "POST", "-T", "application/json", "-D", body_file, "-c", str(concurrency)]
    cmd += ["-z", f"{duration}s"] if duration else ["-n", str(requests)]
    cmd += ["-t", "60"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    return parse_hey(out)


def parse_hey(out: str) -> LoadResult:
    """Read hey's text summary: requests/s, latency percentiles, status and error counts.

    Any status other than 200 and every transport error (hey's "Error distribution")
    counts as an error.
    """
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    rps = float(found.group(1)) if found else 0.0

    def pct(p: int) -> float:
        m = re.search(rf"\s{p}%+ in ([\d.]+) secs", out)
        return float(m.group(1)) * 1000 if m else float("nan")

    statuses = re.findall(r"\[(\d+)\]\s+(\d+) responses", out)
    ok = sum(int(n) for code, n in statuses if code == "200")
    not_ok = sum(int(n) for code, n in statuses if code != "200")
    transport = out.split("Error distribution:")[1] if "Error distribution:" in out else ""
    failed = sum(int(n) for n in re.findall(r"\[(\d+)\]\t", transport))
    return LoadResult(rps, pct(50), pct(95), pct(99), ok + not_ok + failed, not_ok + failed)


def run_wrk_single(wrk: str, url: str, body_file: str, script: str) -> SingleLatency:
    """Single calls on one connection for :data:`SINGLE_WRK_SECONDS`, each after a pause
    of :data:`SINGLE_GAP_MS` (wrk)."""
    cmd = [wrk, "-t1", "-c1", f"-d{SINGLE_WRK_SECONDS:g}s", "--timeout", "60s", "-s", script]
    env = {**os.environ, "BENCH_BODY_FILE": body_file}
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True, env=env).stdout
    return parse_wrk(out)


def parse_wrk(out: str) -> SingleLatency:
    """Read the line :data:`WRK_SCRIPT` prints; every transport error and every status
    outside 2xx/3xx (wrk's ``status`` errors) counts as an error."""
    found = re.search(r"^BENCH (.*)$", out, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"wrk printed no BENCH line:\n{out[-500:]}")
    fields = dict(item.split("=", 1) for item in found.group(1).split())
    return SingleLatency(
        requests=int(fields["requests"]),
        errors=int(fields["errors"]) + int(fields["status_errors"]),
        p50_us=float(fields["p50_us"]),
        p95_us=float(fields["p95_us"]),
        p99_us=float(fields["p99_us"]),
    )


def single_requests(body: bytes) -> int:
    """Sequential requests for the single-connection latency (fewer for multi-MB bodies)."""
    return 200 if len(body) < 1_000_000 else 30


def measure(
    hey: str,
    target: str,
    workload: str,
    body: bytes,
    duration: float,
    env: dict[str, str],
    *,
    expect_verdict: str | None = None,
    concurrency: int = LOAD_CONCURRENCY,
    wrk: tuple[str, str] | None = None,
) -> Row:
    """One run: start ``target``, check its answer, single-connection then loaded runs.

    ``wrk`` is (wrk's path, :data:`WRK_SCRIPT`'s file): the single-connection latency is
    then also measured with wrk, after hey's single-connection run."""
    port = free_port()
    url = f"http://127.0.0.1:{port}{SERVICE_PATH}"
    load_before = loadavg()
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        f.write(body)
        f.flush()
        with server(target, port, env) as proc:
            _, first = wait_ready(url, body)
            if target != "floor" and expect_verdict is not None:
                got = verdict_of(first)
                if got != expect_verdict:
                    raise RuntimeError(
                        f"{workload}: the service answered verdict {got!r}, "
                        f"expected {expect_verdict!r}; the benchmark would not measure the "
                        "full path"
                    )
            cpu_before = cpu_seconds(proc.pid)
            single = run_hey(
                hey, url, f.name, concurrency=1, duration=None, requests=single_requests(body)
            )
            single_cpu = cpu_seconds(proc.pid) - cpu_before
            precise = run_wrk_single(wrk[0], url, f.name, wrk[1]) if wrk else None
            cpu_before = cpu_seconds(proc.pid)
            load = run_hey(hey, url, f.name, concurrency=concurrency, duration=duration)
            cpu = cpu_seconds(proc.pid) - cpu_before
            rss = peak_rss_mb(proc.pid)
    return Row(
        workload=workload,
        target=target,
        rps=load.rps,
        p50_ms=load.p50_ms,
        p95_ms=load.p95_ms,
        p99_ms=load.p99_ms,
        single_p50_ms=single.p50_ms,
        single_cpu_ms=single_cpu * 1000 / max(single.requests, 1),
        cpu_ms_per_req=cpu * 1000 / max(load.requests, 1),
        peak_rss_mb=rss,
        errors=load.errors + single.errors + (precise.errors if precise else 0),
        loadavg=load_before,
        single_p50_us=precise.p50_us if precise else float("nan"),
    )


def cold_start(
    body: bytes, env: dict[str, str], repeats: int = 5, target: str = "service"
) -> list[float]:
    """Seconds from process start to the first answered W1 hook call."""
    times = []
    for _ in range(repeats):
        port = free_port()
        url = f"http://127.0.0.1:{port}{SERVICE_PATH}"
        start = time.perf_counter()
        with server(target, port, env):
            wait_ready(url, body, timeout=60)
            times.append(time.perf_counter() - start)
    return times


# --- aggregation and report -------------------------------------------------------------------

NUMERIC = (
    "rps",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "single_p50_ms",
    "single_cpu_ms",
    "cpu_ms_per_req",
    "peak_rss_mb",
    "single_p50_us",
)


def median_rows(runs: list[Row]) -> Row:
    """The median of each figure over repeated runs of one workload and target."""
    first = runs[0]
    values = {k: statistics.median(getattr(r, k) for r in runs) for k in NUMERIC}
    return Row(
        workload=first.workload,
        target=first.target,
        errors=sum(r.errors for r in runs),
        loadavg=statistics.median(r.loadavg for r in runs),
        **values,
    )


def paired_ratios(
    runs: list[Row],
    workload: str,
    target: str,
    figure: Callable[[Row], float],
    base: str = "floor",
) -> list[float]:
    """figure(target run) / figure(base run of the same repeat), one per repeat."""
    bases = [r for r in runs if r.workload == workload and r.target == base]
    mine = [r for r in runs if r.workload == workload and r.target == target]
    return [figure(m) / figure(b) for m, b in zip(mine, bases, strict=False) if figure(b)]


def paired_ratio(
    runs: list[Row],
    workload: str,
    target: str,
    figure: Callable[[Row], float],
    base: str = "floor",
) -> float:
    """Median over repeats of figure(target run) / figure(base run of the same repeat)."""
    ratios = paired_ratios(runs, workload, target, figure, base)
    return statistics.median(ratios) if ratios else float("nan")


def table(runs: list[Row]) -> list[dict[str, Any]]:
    """Median figures per workload and target, with paired ratios to the floor (and, for
    variants, to the plain service)."""
    keys = list(dict.fromkeys((r.workload, r.target) for r in runs))
    out = []
    for workload, target in keys:
        group = [r for r in runs if r.workload == workload and r.target == target]
        row = asdict(median_rows(group))
        row["repeats"] = len(group)
        if target != "floor":
            row["rps_ratio"] = paired_ratio(runs, workload, target, lambda r: r.rps)
            # Each repeat's own ratio too: a target met by the median but missed by one
            # pair in three is met on some hours of a shared machine and not on others.
            row["rps_ratios"] = paired_ratios(runs, workload, target, lambda r: r.rps)
            row["single_p50_ratios"] = paired_ratios(
                runs, workload, target, lambda r: r.single_p50_ms
            )
            row["single_p50_ratio"] = paired_ratio(
                runs, workload, target, lambda r: r.single_p50_ms
            )
            row["cpu_ratio"] = paired_ratio(runs, workload, target, lambda r: r.cpu_ms_per_req)
            row["single_p50_us_ratio"] = paired_ratio(
                runs, workload, target, lambda r: r.single_p50_us
            )
        if target.startswith("service+") or target == "baseline":
            for key, figure in (
                ("rps", lambda r: r.rps),
                ("single_p50", lambda r: r.single_p50_ms),
                ("single_cpu", lambda r: r.single_cpu_ms),
                ("cpu", lambda r: r.cpu_ms_per_req),
                ("single_p50_us", lambda r: r.single_p50_us),
            ):
                row[f"{key}_vs_service"] = paired_ratio(runs, workload, target, figure, "service")
        out.append(row)
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    """One line per workload and target: medians, then the paired ratios to the floor
    (and for variants, the paired ratios of CPU per request to the plain service)."""
    width = max([16, *(len(r["target"]) + 2 for r in rows)])
    header = (
        f"{'workload':<9}{'target':<{width}}{'req/s':>8}{'p50':>8}{'p95':>8}{'p99':>8}"
        f"{'1-conn':>8}{'1c CPU':>8}{'CPU/req':>9}{'RSS MB':>8}{'err':>5}{'1c µs':>8}"
        f"{'rps/fl':>8}{'1c/fl':>7}{'cpu/fl':>8}{'1cµs/fl':>8}"
        f"{'1cCPU/svc':>10}{'CPU/svc':>9}{'1cµs/svc':>9}"
    )
    print(header)
    units = f"{'ms':>8}{'ms':>8}{'ms':>8}{'p50 ms':>8}{'ms':>8}{'ms':>9}{'':>13}{'wrk p50':>8}"
    print(f"{'':<{9 + width + 8}}{units}")
    print("-" * len(header))
    for r in rows:
        ratios = ""
        if "rps_ratio" in r and r["rps_ratio"] == r["rps_ratio"]:  # not NaN (no floor)
            ratios = (
                f"{r['rps_ratio']:>8.2f}{r['single_p50_ratio']:>7.2f}{r['cpu_ratio']:>8.2f}"
                f"{r['single_p50_us_ratio']:>8.2f}"
            )
        elif "rps_ratio" in r:
            ratios = f"{'-':>8}{'-':>7}{'-':>8}{'-':>8}"
        if "cpu_vs_service" in r:
            ratios += (
                f"{r['single_cpu_vs_service']:>10.2f}{r['cpu_vs_service']:>9.2f}"
                f"{r['single_p50_us_vs_service']:>9.2f}"
            )
        print(
            f"{r['workload']:<9}{r['target']:<{width}}{r['rps']:>8.0f}{r['p50_ms']:>8.1f}"
            f"{r['p95_ms']:>8.1f}{r['p99_ms']:>8.1f}{r['single_p50_ms']:>8.2f}"
            f"{r['single_cpu_ms']:>8.2f}{r['cpu_ms_per_req']:>9.2f}{r['peak_rss_mb']:>8.1f}"
            f"{r['errors']:>5}{r['single_p50_us']:>8.0f}{ratios}"
        )


def _pairs(ratios: list[float], kept: int) -> str:
    """`` (pairs 0.67-0.83x, met in 2 of 3)``: the spread behind a median verdict, ``kept``
    being how many of the pairs' ``ratios`` meet the target on their own."""
    if len(ratios) < 2:
        return ""
    return f" (pairs {min(ratios):.2f}-{max(ratios):.2f}x, met in {kept} of {len(ratios)})"


def check_targets(rows: list[dict[str, Any]], cold: float | None) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for every target whose workload was run."""
    service = {r["workload"]: r for r in rows if r["target"] == "service"}
    out: list[tuple[str, str, bool]] = []
    for name in ("W0", "W1"):
        if name not in service:
            continue
        row, key = service[name], name.lower()
        rps_target, p50_target = TARGETS[f"{key}_rps_ratio"], TARGETS[f"{key}_single_p50_ratio"]
        rps_ratios, single_ratios = row["rps_ratios"], row["single_p50_ratios"]
        rps_pairs = _pairs(rps_ratios, sum(x >= rps_target for x in rps_ratios))
        single_pairs = _pairs(single_ratios, sum(x <= p50_target for x in single_ratios))
        out.append(
            (
                f"{name} throughput >= {rps_target}x floor",
                f"{row['rps_ratio']:.2f}x{rps_pairs}",
                row["rps_ratio"] >= rps_target,
            )
        )
        out.append(
            (
                f"{name} single-request p50 <= {p50_target}x floor",
                f"{row['single_p50_ratio']:.2f}x ({row['single_p50_ms']:.2f} ms){single_pairs}; "
                f"wrk {row['single_p50_us_ratio']:.2f}x ({row['single_p50_us']:.0f} µs)",
                row["single_p50_ratio"] <= p50_target,
            )
        )
    if "W2" in service:
        w2 = service["W2"]
        out.append(
            (
                f"W2 p50 <= {TARGETS['w2_p50_ratio']}x floor",
                f"{w2['single_p50_ratio']:.2f}x",
                w2["single_p50_ratio"] <= TARGETS["w2_p50_ratio"],
            )
        )
        out.append(
            (
                f"W2 peak RSS <= {TARGETS['w2_peak_rss_mb']:.0f} MB",
                f"{w2['peak_rss_mb']:.0f} MB",
                w2["peak_rss_mb"] <= TARGETS["w2_peak_rss_mb"],
            )
        )
    if cold is not None:
        out.append(
            (
                f"cold start <= {TARGETS['cold_start_s']} s",
                f"{cold:.2f} s",
                cold <= TARGETS["cold_start_s"],
            )
        )
    return out


def bench_env(tmp: str, log_level: str) -> dict[str, str]:
    return {
        **os.environ,
        "LIVER_CDS_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
        "LIVER_CDS_LOG_LEVEL": log_level,
        "LIVER_CDS_AUTH": "off",
        "PYTHONPATH": str(ROOT),
        # W2 carries 10,000 realistic Observations (~5.3 MB), above the 5 MB default limit.
        "LIVER_CDS_MAX_BODY_BYTES": str(16 * 1024 * 1024),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per workload and target")
    parser.add_argument("--workloads", default="w0,w1,w2,w3,cold")
    parser.add_argument(
        "--log-level",
        default="info",
        help="LIVER_CDS_LOG_LEVEL of the service (default info, the production default: "
        "one log line per call; every call is audited either way)",
    )
    parser.add_argument(
        "--variants",
        default="",
        help="semicolon-separated patch sets; each adds a target service+<patches> run "
        "through bench/prototypes/serve_patched.py (see that file), e.g. 'gcparse;noaudit'",
    )
    parser.add_argument(
        "--no-floor", action="store_true", help="measure the service only (no ratios)"
    )
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="add a target 'baseline': the service from another checkout of this repository "
        "(e.g. `git worktree add /tmp/before <commit>`), run in the same repeats so the "
        "column CPU/svc is its paired ratio to this checkout's service",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=LOAD_CONCURRENCY,
        help=f"connections of the loaded runs (default {LOAD_CONCURRENCY}; round 1 used 8)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    wanted = set(args.workloads.split(","))
    hey = ensure_tool("hey")
    tmp = tempfile.mkdtemp(prefix="liver-cds-bench-")
    wrk_script = Path(tmp) / "single.lua"
    wrk_script.write_text(WRK_SCRIPT)
    wrk = (ensure_tool("wrk"), str(wrk_script))
    env = bench_env(tmp, args.log_level)
    variants = [v.strip() for v in args.variants.split(";") if v.strip()]
    targets: tuple[str, ...] = ("service",) if args.no_floor else ("floor", "service")
    targets += tuple(f"service+{v}" for v in variants)
    if args.baseline:
        env["LIVER_CDS_BENCH_BASELINE"] = str(Path(args.baseline).resolve())
        targets += ("baseline",)

    bodies: dict[str, bytes] = {}
    if "w0" in wanted:
        bodies["W0"] = orjson.dumps(workloads.w0())
    if "w1" in wanted:
        bodies["W1"] = orjson.dumps(workloads.w1())
    if "w2" in wanted:
        bodies["W2"] = orjson.dumps(workloads.w2())

    started = datetime.now(UTC)
    loads = [loadavg()]
    runs: list[Row] = []
    with contextlib.ExitStack() as stack:
        if "w3" in wanted:
            from bench.fhir_fetch import w3_setup

            bodies["W3"] = stack.enter_context(w3_setup()).body
        for name, body in bodies.items():
            print(f"{name}: request body {len(body) / 1024:.0f} KiB", file=sys.stderr)
        for repeat in range(args.repeat):
            order = targets if repeat % 2 == 0 else tuple(reversed(targets))
            for name, body in bodies.items():
                for target in order:
                    row = measure(
                        hey,
                        target,
                        name,
                        body,
                        args.duration,
                        env,
                        expect_verdict=workloads.EXPECTED_VERDICT,
                        concurrency=args.concurrency,
                        wrk=wrk,
                    )
                    runs.append(row)
                    print(
                        f"  repeat {repeat + 1} {name} {row.target}: {row.rps:.0f} req/s, "
                        f"1-conn p50 {row.single_p50_ms:.2f} ms (wrk {row.single_p50_us:.0f} µs), "
                        f"{row.cpu_ms_per_req:.2f} ms CPU/req, load {row.loadavg:.2f}",
                        file=sys.stderr,
                    )
                    loads.append(loadavg())

    rows = table(runs)
    result: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "loadavg_median": statistics.median(loads),
        "settings": {
            "duration_s": args.duration,
            "repeat": args.repeat,
            "concurrency": args.concurrency,
            "log_level": args.log_level,
            "variants": variants,
        },
        "rows": rows,
        "runs": [asdict(r) for r in runs],
    }
    print()
    print(
        f"{result['started']}  {result['machine']}  load average (1 min, median) "
        f"{result['loadavg_median']:.2f}  log level {args.log_level}"
    )
    if rows:
        print_table(rows)
    cold: float | None = None
    if "cold" in wanted:
        w1_body = orjson.dumps(workloads.w1())
        print()
        for target in ("service", *(f"service+{v}" for v in variants)):
            times = cold_start(w1_body, env, target=target)
            median = statistics.median(times)
            cold = median if target == "service" else cold
            print(
                f"cold start {target} (process start -> first W1 answer), {len(times)} runs: "
                f"median {median:.2f} s, min {min(times):.2f} s, max {max(times):.2f} s"
            )
            result.setdefault("cold_start_s", {})[target] = {"median": median, "runs": times}
    if not args.no_floor:
        checks = check_targets(rows, cold)
        if checks:
            print("\ntargets:")
            for label, measured, met in checks:
                print(f"  {'MET ' if met else 'MISS'} {label:<36} measured {measured}")
        result["targets"] = [{"target": t, "measured": m, "met": ok} for t, m, ok in checks]
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    errors = sum(r.errors for r in runs)
    if errors:
        print(f"\n{errors} requests failed", file=sys.stderr)
    return 1 if errors else 0


def machine() -> str:
    """CPU model and core count, for the figures table."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"


if __name__ == "__main__":
    sys.exit(main())
