"""The benchmark's workloads and its arithmetic, checked without timing anything.

The benchmark (``bench/``) is only worth its figures if it sends what it claims to send:
W1 a realistic colorectal patient with ~30 unrelated Conditions and ~300 unrelated
Observations, W2 the same with 10,000, W3 the same patient on a FHIR server with no
prefetch; every resource belongs to the bench patient, the unrelated ones use codes the
rules never read, and the patient reaches a verdict by the full path. These tests check
those shapes and the small pure functions that turn hey's output into the table. No
assertion here is about speed (the brief: speed is measured in bench/, never asserted).
"""

from __future__ import annotations

import math
import re
import shutil
import statistics
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from pipeline_harness import evaluate_request

# bench/ lives next to tests/ at the repository root, which pytest does not put on
# sys.path (only tests/ itself, see conftest.py).
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from bench import instructions, profile, run, soak, workloads  # noqa: E402
from bench.prototypes import serve_patched  # noqa: E402
from service.clinical.engine import assess  # noqa: E402
from service.fhir import codes  # noqa: E402
from service.fhir.bundle import unpack  # noqa: E402
from service.protocol import find_service, parse_hook_request  # noqa: E402

SERVICE = find_service("liver-metastasis-resectability")
CLINICAL_IDS = {"crc-primary", "liver-mets", "bili", "alb", "inr", "plt", "crea", "na", "cea"}


def _entries(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"]]


def _resources(request: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key, value in request["prefetch"].items():
        out.extend(unpack(value, key).resources)
    return out


@pytest.fixture(scope="module")
def w1() -> dict[str, Any]:
    return workloads.w1()


@pytest.fixture(scope="module")
def w2() -> dict[str, Any]:
    return workloads.w2()


def _unrelated(resources: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    prefix = "other-obs-" if kind == "Observation" else "other-cond-"
    return [r for r in resources if r["resourceType"] == kind and r["id"].startswith(prefix)]


def test_w1_is_a_patient_with_30_unrelated_conditions_and_300_unrelated_observations(
    w1: dict[str, Any],
) -> None:
    conditions = _entries(w1["prefetch"]["conditions"])
    observations = _entries(w1["prefetch"]["observations"])
    assert len(_unrelated(conditions, "Condition")) == 30
    assert len(_unrelated(observations, "Observation")) == 300
    assert {r["id"] for r in conditions + observations} >= CLINICAL_IDS
    assert w1["prefetch"]["patient"]["id"] == workloads.PATIENT_ID


def test_w2_is_the_same_patient_with_10000_unrelated_observations(
    w1: dict[str, Any], w2: dict[str, Any]
) -> None:
    observations = _entries(w2["prefetch"]["observations"])
    assert len(_unrelated(observations, "Observation")) == 10_000
    w1_clinical = [r for r in _resources(w1) if not r["id"].startswith("other-obs-")]
    w2_clinical = [r for r in _resources(w2) if not r["id"].startswith("other-obs-")]
    assert w1_clinical == w2_clinical


@pytest.mark.parametrize("name", ["w1", "w2"])
def test_every_resource_has_an_id_and_belongs_to_the_bench_patient(
    name: str, request: pytest.FixtureRequest
) -> None:
    resources = _resources(request.getfixturevalue(name))
    ids = [r["id"] for r in resources]
    assert all(isinstance(i, str) and i for i in ids)
    assert len(ids) == len(set(ids))
    for r in resources:
        if r["resourceType"] == "Patient":
            assert r["id"] == workloads.PATIENT_ID
        else:
            assert r["subject"] == {"reference": f"Patient/{workloads.PATIENT_ID}"}


@pytest.mark.parametrize("name", ["w1", "w2"])
def test_prefetch_bundles_are_searchsets_of_matches(
    name: str, request: pytest.FixtureRequest
) -> None:
    prefetch = request.getfixturevalue(name)["prefetch"]
    for key in ("conditions", "observations"):
        bundle = prefetch[key]
        assert bundle["resourceType"] == "Bundle"
        assert bundle["type"] == "searchset"
        assert bundle["total"] == len(bundle["entry"])
        assert {e["search"]["mode"] for e in bundle["entry"]} == {"match"}


def test_unrelated_resources_use_codes_the_rules_do_not_read(w1: dict[str, Any]) -> None:
    resources = _resources(w1)
    unrelated = _unrelated(resources, "Observation")
    assert all(codes.observation_kind(obs["code"]["coding"]) is None for obs in unrelated)
    clinical = [r for r in resources if r["resourceType"] == "Observation" and r not in unrelated]
    assert all(codes.observation_kind(obs["code"]["coding"]) is not None for obs in clinical)
    for cond in _unrelated(resources, "Condition"):
        for coding in cond["code"]["coding"]:
            assert not codes.condition_tags(coding["system"], coding["code"]), coding


def test_the_bench_patient_reaches_the_expected_verdict_by_the_full_path(
    w1: dict[str, Any],
) -> None:
    """The benchmark refuses to measure a service that stops early (e.g. labs stale)."""
    assessment = assess(_resources(w1), patient_id=workloads.PATIENT_ID, at=workloads.EVALUATED_AT)
    assert assessment.verdict == workloads.EXPECTED_VERDICT
    assert assessment.scores.child_pugh is not None


@pytest.mark.parametrize("name", ["w1", "w2"])
def test_hook_requests_pass_the_protocol_check(name: str, request: pytest.FixtureRequest) -> None:
    assert SERVICE is not None
    hook = parse_hook_request(request.getfixturevalue(name), SERVICE)
    assert hook.patient_id == workloads.PATIENT_ID
    assert set(hook.prefetch or {}) == set(SERVICE.prefetch)


def test_w3_sends_no_prefetch_but_a_fhir_server_and_its_token() -> None:
    assert SERVICE is not None
    request = workloads.w3("http://127.0.0.1:9/fhir/R4", "bench-token")
    hook = parse_hook_request(request, SERVICE)
    assert hook.prefetch is None
    assert hook.fhir_server == "http://127.0.0.1:9/fhir/R4"
    assert hook.access_token == "bench-token"


def test_w3_server_holds_w1s_resources(w1: dict[str, Any]) -> None:
    held = {(r["resourceType"], r["id"]) for r in workloads.w3_resources()}
    sent = {(r["resourceType"], r["id"]) for r in _resources(w1)}
    assert held == sent


def test_the_benchmark_raises_the_body_limit_above_w2(w2: dict[str, Any]) -> None:
    body = orjson.dumps(w2)
    assert len(body) > 5 * 1024 * 1024  # above the default LIVER_CDS_MAX_BODY_BYTES
    env = run.bench_env("/tmp/unused", "warning")
    assert int(env["LIVER_CDS_MAX_BODY_BYTES"]) >= len(body)


HEY_OUTPUT = """
Summary:
  Total:\t6.0123 secs
  Slowest:\t0.1432 secs
  Fastest:\t0.0051 secs
  Average:\t0.0470 secs
  Requests/sec:\t165.3000

Latency distribution:
  10% in 0.0101 secs
  25% in 0.0200 secs
  50% in 0.0318 secs
  75% in 0.0600 secs
  90% in 0.1000 secs
  95% in 0.1192 secs
  99% in 0.1428 secs

Status code distribution:
  [200]\t990 responses
  [503]\t4 responses

Error distribution:
  [3]\tPost "http://127.0.0.1:1/": dial tcp 127.0.0.1:1: connect: connection refused
"""


def test_parse_hey_reads_rate_percentiles_and_counts_every_failure() -> None:
    result = run.parse_hey(HEY_OUTPUT)
    assert result.rps == pytest.approx(165.3)
    assert result.p50_ms == pytest.approx(31.8)
    assert result.p95_ms == pytest.approx(119.2)
    assert result.p99_ms == pytest.approx(142.8)
    assert result.requests == 990 + 4 + 3
    assert result.errors == 4 + 3


def test_parse_hey_without_percentiles_gives_nan_not_zero() -> None:
    result = run.parse_hey("Requests/sec:\t0.0000\n")
    assert math.isnan(result.p50_ms)
    assert result.errors == 0


WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:8124/
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   145.71us   25.13us   1.20ms   93.41%
  15003 requests in 2.00s, 1.87MB read
Requests/sec:   7144.13
BENCH requests=15003 errors=2 status_errors=5 p50_us=139.0 p95_us=163.0 p99_us=223.0
"""


def test_parse_wrk_reads_the_script_line_in_microseconds_and_counts_every_failure() -> None:
    result = run.parse_wrk(WRK_OUTPUT)
    assert result.requests == 15003
    assert result.errors == 2 + 5
    assert (result.p50_us, result.p95_us, result.p99_us) == (139.0, 163.0, 223.0)


def test_parse_wrk_refuses_output_without_the_script_line() -> None:
    with pytest.raises(RuntimeError, match="no BENCH line"):
        run.parse_wrk("Requests/sec:   7144.13\n")


def test_the_wrk_script_posts_the_body_file_pauses_and_prints_what_parse_wrk_reads() -> None:
    script = run.WRK_SCRIPT
    assert 'wrk.method = "POST"' in script
    assert 'os.getenv("BENCH_BODY_FILE")' in script
    assert f"function delay()\n  return {run.SINGLE_GAP_MS}\nend" in script, "isolated calls"
    for name in ("requests", "errors", "status_errors", "p50_us", "p95_us", "p99_us"):
        assert f"{name}=" in script


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (bench/run.py installs it)"
)
def test_wrk_runs_the_script_against_a_server_that_checks_the_posted_body(
    tmp_path: Path,
) -> None:
    body = b'{"hook": "patient-view"}'
    seen: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            seen.append(self.rfile.read(int(self.headers["Content-Length"])))
            ok = self.headers["Content-Type"] == "application/json"
            answer = b'{"cards": []}'
            self.send_response(200 if ok else 415)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (tmp_path / "body.json").write_bytes(body)
        (tmp_path / "single.lua").write_text(run.WRK_SCRIPT)
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        result = run.run_wrk_single(
            shutil.which("wrk") or "wrk",
            url,
            str(tmp_path / "body.json"),
            str(tmp_path / "single.lua"),
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.requests > 0 and result.errors == 0
    assert set(seen) == {body}
    assert 0 < result.p50_us <= result.p99_us


def _row(workload: str, target: str, rps: float, p50: float, cpu: float) -> run.Row:
    return run.Row(
        workload=workload,
        target=target,
        rps=rps,
        p50_ms=p50,
        p95_ms=p50,
        p99_ms=p50,
        single_p50_ms=p50,
        single_cpu_ms=cpu,
        cpu_ms_per_req=cpu,
        peak_rss_mb=100.0,
        errors=0,
    )


def test_ratios_are_medians_of_paired_repeats() -> None:
    runs = [
        _row("W1", "floor", 400, 2.0, 2.0),
        _row("W1", "service", 200, 4.0, 4.0),  # repeat 1: 0.5x
        _row("W1", "floor", 100, 2.0, 2.0),  # a noisy repeat: both slow
        _row("W1", "service", 60, 6.0, 6.0),  # repeat 2: 0.6x
        _row("W1", "floor", 300, 2.0, 2.0),
        _row("W1", "service", 210, 3.0, 3.0),  # repeat 3: 0.7x
    ]
    rows = {r["target"]: r for r in run.table(runs)}
    assert rows["service"]["rps_ratio"] == pytest.approx(0.6)
    assert rows["service"]["rps_ratios"] == pytest.approx([0.5, 0.6, 0.7])
    assert rows["service"]["single_p50_ratio"] == pytest.approx(2.0)
    assert rows["service"]["rps"] == 200
    assert rows["floor"]["repeats"] == 3
    assert "rps_ratio" not in rows["floor"]


def test_targets_are_judged_on_the_service_rows() -> None:
    runs = [
        _row("W0", "floor", 4000, 0.4, 0.3),
        _row("W0", "service", 1500, 1.0, 0.8),  # 0.375x throughput, 2.5x single p50: met
        _row("W1", "floor", 400, 2.0, 2.0),
        _row("W1", "service", 180, 5.5, 4.0),  # 0.45x, 2.75x: missed
        _row("W2", "floor", 10, 100.0, 100.0),
        _row("W2", "service", 8, 90.0, 130.0),
    ]
    checks = {label: met for label, _, met in run.check_targets(run.table(runs), cold=1.2)}
    assert checks == {
        "W0 throughput >= 0.35x floor": True,
        "W0 single-request p50 <= 3.0x floor": True,
        "W1 throughput >= 0.75x floor": False,
        "W1 single-request p50 <= 1.5x floor": False,
        "W2 p50 <= 1.0x floor": True,
        "W2 peak RSS <= 160 MB": True,
        "cold start <= 2.0 s": True,
    }


def test_a_verdict_shows_the_spread_of_its_pairs() -> None:
    # W1 throughput at 0.70, 0.80 and 0.76x: met by the median, missed by one pair in three.
    runs = [
        _row("W1", "floor", 1000, 1.0, 1.0),
        _row("W1", "service", 700, 1.6, 1.4),
        _row("W1", "floor", 1000, 1.0, 1.0),
        _row("W1", "service", 800, 1.4, 1.3),
        _row("W1", "floor", 1000, 1.0, 1.0),
        _row("W1", "service", 760, 1.5, 1.3),
    ]
    checks = {
        label: (measured, met)
        for label, measured, met in run.check_targets(run.table(runs), cold=None)
    }
    measured, met = checks["W1 throughput >= 0.75x floor"]
    assert met and measured.startswith("0.76x (pairs 0.70-0.80x, met in 2 of 3)")
    measured, met = checks["W1 single-request p50 <= 1.5x floor"]
    assert met and "(pairs 1.40-1.60x, met in 2 of 3)" in measured


_PROJECT_DIRS = ("service/", "fhir/", "clinical/", "protocol/", "render/", "store/")


def test_the_profile_groups_name_only_code_that_exists() -> None:
    # A group naming a moved file (clinical/facts.py became the package clinical/facts/)
    # or a deleted function silently hands its samples to the group of a caller.
    sources = "\n".join(p.read_text() for p in (ROOT / "service").rglob("*.py"))
    for stage, functions, files in profile.STAGES:
        for fragment in files:
            if fragment.startswith(_PROJECT_DIRS):
                path = fragment if fragment.startswith("service/") else "service/" + fragment
                assert (ROOT / path).exists(), f"{stage}: {fragment} is not in the project"
        for name in functions:
            if "." not in name:  # dotted names are methods and closures of libraries
                pattern = rf"^\s*(?:async def|def|class) {re.escape(name)}"
                assert re.search(pattern, sources, re.M), f"{stage}: no {name} in service/"


def test_a_fact_builder_frame_counts_as_fact_decoding() -> None:
    frames = [
        "assess (/app/service/clinical/engine.py:56)",
        "facts_from_selection (/app/service/clinical/facts/__init__.py:190)",
        "liver_function_facts (/app/service/clinical/facts/liver.py:92)",
    ]
    assert profile.stage_of(frames) == "fact decoding"
    assert profile.stage_of(frames[:1]) == "rules and scores"


def test_w0_is_the_small_fixture_chart_and_reaches_its_verdict() -> None:
    request = workloads.w0()
    assert len(orjson.dumps(request)) < 20 * 1024
    assert parse_hook_request(request, SERVICE).patient_id == request["context"]["patientId"]
    evaluation = evaluate_request(request, at=workloads.EVALUATED_AT)
    assert evaluation.assessment.verdict == workloads.EXPECTED_VERDICT


def test_soak_rss_growth_compares_the_first_and_last_tenth_after_warm_up() -> None:
    samples = [
        (float(t), 500.0 if t < 5 else 100.0 + (10.0 if t >= 55 else 0.0)) for t in range(60)
    ]
    first, last, growth = soak.rss_growth(samples)
    assert (first, last) == (100.0, 110.0)
    assert growth == pytest.approx(10.0)


def test_soak_rss_growth_needs_samples_after_warm_up() -> None:
    with pytest.raises(ValueError):
        soak.rss_growth([(0.0, 100.0), (1.0, 100.0)])


def test_an_unknown_prototype_patch_is_refused() -> None:
    with pytest.raises(SystemExit):
        serve_patched.apply("no-such-patch")


def test_the_audit_probes_replace_the_store_functions_they_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A probe that patched a renamed function would add an attribute nobody calls and
    # price nothing; these names must be the store's own.
    from service.store import sql

    batch, sqlite = sql.SqlStore._write_audit_batch, sql._write_audit_sqlite
    monkeypatch.setattr(sql.SqlStore, "_write_audit_batch", batch)  # restored afterwards
    monkeypatch.setattr(sql, "_write_audit_sqlite", sqlite)
    serve_patched.apply("auditnodb")
    assert sql._write_audit_sqlite is not sqlite and sql.SqlStore._write_audit_batch is batch
    serve_patched.apply("auditnowrite")
    assert sql.SqlStore._write_audit_batch is not batch


def test_the_queued_log_prototype_formats_and_writes_on_the_listener_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The prototype must move the work it prices: the logging call only enqueues, the
    # listener's thread formats and writes, and stopping the listener writes what is queued.
    import io
    import logging
    import threading

    from service.observability import StderrHandler

    formatted_on: list[str] = []

    class Recording(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            formatted_on.append(threading.current_thread().name)
            return super().format(record)

    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    logger = logging.getLogger("liver_cds.test.queuelog")
    logger.propagate = False
    handler = StderrHandler()
    handler.setFormatter(Recording("%(message)s"))
    logger.addHandler(handler)
    try:
        listener = serve_patched.log_through_queue(logger)
        assert handler not in logger.handlers
        logger.warning("hook call")
        listener.stop()
    finally:
        logger.handlers.clear()
    assert stream.getvalue() == "hook call\n"
    assert formatted_on and threading.current_thread().name not in formatted_on


def test_the_instruction_driver_runs_every_stage_and_a_whole_hook_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What bench/instructions.py runs under callgrind, run once without it: every stage it
    # names exists, and the whole ASGI call answers 200 (the driver raises otherwise).
    monkeypatch.setattr(instructions, "WARM_UP", 1)
    monkeypatch.setattr(sys, "stderr", sys.stderr)  # the driver points stderr at /dev/null
    for stage in instructions.STAGES:
        instructions.drive("w0", stage, calls=1)


def test_callgrind_output_is_read_for_its_instruction_total() -> None:
    stderr = "==1== Events    : Ir\n==1== Collected : 4337174959\n==1==\n"
    match = instructions._IREFS.search(stderr)
    assert match is not None and int(match.group(1)) == 4_337_174_959


def test_the_metrics_probe_replaces_the_function_the_app_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import service.app as app_module

    original = app_module.count_hook_call
    monkeypatch.setattr(app_module, "count_hook_call", original)  # restored afterwards
    serve_patched.apply("nometrics")
    assert app_module.count_hook_call is not original


def test_the_counted_calls_all_run_inside_the_one_marker_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # callgrind counts only while the C function behind functools.reduce runs: every call,
    # and nothing else, must happen inside that one call.
    inside = {"depth": 0, "entered": 0}
    real_reduce = instructions.functools.reduce

    def spy_reduce(*args: Any) -> Any:
        inside["depth"] += 1
        inside["entered"] += 1
        try:
            return real_reduce(*args)
        finally:
            inside["depth"] -= 1

    monkeypatch.setattr(instructions.functools, "reduce", spy_reduce)
    seen: list[int] = []
    instructions.call_counted(lambda: seen.append(inside["depth"]), 7)
    assert seen == [1] * 7 and inside["entered"] == 1
    assert instructions.MARKER == "functools_reduce"


def test_a_count_of_nothing_is_refused_not_reported_as_zero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Done:
        returncode = 0
        stderr = "==1== Events    : Ir\n==1== Collected : 0\n"

    monkeypatch.setattr(instructions.subprocess, "run", lambda *a, **k: Done())
    with pytest.raises(RuntimeError, match="counted nothing"):
        instructions.count("w0", "render_cards", 10)


def test_a_baseline_checkout_is_paired_with_the_service_like_a_variant() -> None:
    def row(target: str, cpu: float) -> run.Row:
        return run.Row(
            workload="W0", target=target, rps=1000 / cpu, p50_ms=1.0, p95_ms=2.0,
            p99_ms=3.0, single_p50_ms=cpu, single_cpu_ms=cpu, cpu_ms_per_req=cpu,
            peak_rss_mb=100.0, errors=0, loadavg=1.0,
        )  # fmt: skip

    runs = [row("floor", 0.1), row("service", 1.0), row("baseline", 2.0)]
    runs += [row("floor", 0.1), row("service", 1.2), row("baseline", 1.8)]
    baseline = next(r for r in run.table(runs) if r["target"] == "baseline")
    assert baseline["cpu_vs_service"] == pytest.approx(statistics.median([2.0, 1.5]))
