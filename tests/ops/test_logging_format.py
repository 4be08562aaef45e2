"""Logs: one JSON object per line (or text on a terminal), credentials never written.

Checks the formatter through the real ``logging`` machinery: records are emitted with
``get_logger(...)`` or uvicorn's logger names and the lines read back from stderr.
"""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.observability import (
    configure_logging,
    get_logger,
    resolve_format,
    scrub,
    uvicorn_log_config,
)
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-value-that-must-not-appear"
JWT = "eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJodHRwczovL2VociJ9.c2lnbmF0dXJlLWJ5dGVz"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Leave the process's logging as it was: other tests share it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    named = {
        name: (lg.level, list(lg.handlers), lg.propagate)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "liver_cds")
        for lg in [logging.getLogger(name)]
    }
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, (lvl, hs, prop) in named.items():
        lg = logging.getLogger(name)
        lg.setLevel(lvl)
        lg.handlers[:] = hs
        lg.propagate = prop


def json_lines(text: str) -> list[dict[str, object]]:
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def test_json_line_has_time_level_logger_event_and_extras(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(Settings(log_format="json"))
    get_logger("protocol").info(
        "hook call answered", extra={"hookInstance": "d1577c69-dfbe", "latency_ms": 2.5}
    )
    (entry,) = json_lines(capsys.readouterr().err)
    assert entry["level"] == "info"
    assert entry["logger"] == "liver_cds.protocol"
    assert entry["event"] == "hook call answered"
    assert entry["hookInstance"] == "d1577c69-dfbe"
    assert entry["latency_ms"] == 2.5
    time = str(entry["time"])
    assert time.endswith("Z") and "T" in time


def test_records_skip_the_lookups_no_line_writes(capsys: pytest.CaptureFixture[str]) -> None:
    """Caller's source line, thread, process id and name: the Logging HOWTO's switches are
    off once logging is configured, and the line is what it always was."""
    configure_logging(Settings(log_format="json"))
    captured: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(record)

    keep = Keep()
    logging.getLogger().addHandler(keep)
    try:
        get_logger("app").info("hook call", extra={"hookInstance": "h-1", "status": 200})
    finally:
        logging.getLogger().removeHandler(keep)
    (record,) = captured
    assert record.funcName == "(unknown function)" and record.lineno == 0
    assert record.thread is None and record.process is None
    assert record.processName is None
    (entry,) = json_lines(capsys.readouterr().err)
    assert set(entry) == {"time", "level", "logger", "event", "hookInstance", "status"}


def test_every_record_is_exactly_one_line_even_with_newlines_and_tracebacks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(Settings(log_format="json"))
    log = get_logger("app")
    log.warning("two\nlines")
    try:
        raise ValueError("bad thing")
    except ValueError:
        log.exception("unexpected fault", extra={"hookInstance": "h-1"})
    entries = json_lines(capsys.readouterr().err)
    assert [e["event"] for e in entries] == ["two\nlines", "unexpected fault"]
    assert entries[1]["exc_type"] == "ValueError"
    assert "bad thing" in str(entries[1]["exc"])
    assert entries[1]["level"] == "error"


@pytest.mark.parametrize(
    "field", ["token", "access_token", "Authorization", "authorization", "jwt", "fhirAuthorization"]
)
def test_credential_fields_are_dropped(field: str, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_format="json"))
    get_logger("security").warning("rejected", extra={field: SECRET, "reason": "expired"})
    err = capsys.readouterr().err
    (entry,) = json_lines(err)
    assert field not in entry
    assert entry["reason"] == "expired"
    assert SECRET not in err


def test_credentials_nested_in_structured_extras_are_dropped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(Settings(log_format="json"))
    get_logger("fhir").info(
        "fetch",
        extra={
            "request": {"url": "https://fhir/x", "headers": {"Authorization": SECRET}},
            "fhir_authorization": {"access_token": SECRET, "scope": "patient/*.read"},
        },
    )
    err = capsys.readouterr().err
    assert SECRET not in err
    (entry,) = json_lines(err)
    assert entry["request"] == {"url": "https://fhir/x", "headers": {}}


def test_a_dict_logged_as_the_message_is_redacted_like_extras(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(Settings(log_format="json"))
    get_logger("fhir").info({"outcome": "ok", "access_token": SECRET, "raw": f"Bearer {SECRET}"})
    err = capsys.readouterr().err
    assert SECRET not in err
    (entry,) = json_lines(err)
    assert entry["outcome"] == "ok" and "access_token" not in entry
    assert entry["raw"] == "Bearer [redacted]"


def test_an_integer_beyond_64_bits_is_still_one_json_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(Settings(log_format="json"))
    get_logger("app").info("big", extra={"n": 2**70, "event": "not ours"})
    (entry,) = json_lines(capsys.readouterr().err)
    assert entry["n"] == 2**70
    assert entry["event"] == "big"  # an extra never replaces the four named fields


def test_jwt_and_bearer_strings_in_messages_are_scrubbed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(Settings(log_format="json"))
    get_logger("security").error("header was Bearer %s and token %s", SECRET, JWT)
    err = capsys.readouterr().err
    assert SECRET not in err
    assert JWT not in err
    assert JWT.split(".")[1] not in err
    assert "[redacted]" in json_lines(err)[0]["event"]  # type: ignore[operator]


def test_scrub_leaves_ordinary_text_alone() -> None:
    text = "Patient/123 Condition?patient=123 took 2 ms (bearer of bad news)"
    assert scrub(text) == text


def test_text_format_is_one_readable_line_with_key_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(Settings(log_format="text"))
    get_logger("protocol").info(
        "hook call answered",
        extra={"hookInstance": "abc", "latency_ms": 1.25, "note": "two words", "jwt": SECRET},
    )
    err = capsys.readouterr().err
    (line,) = err.splitlines()
    assert "INFO" in line and "liver_cds.protocol: hook call answered" in line
    assert "hookInstance=abc" in line and "latency_ms=1.25" in line
    assert 'note="two words"' in line
    assert SECRET not in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_auto_format_is_json_unless_stderr_is_a_terminal() -> None:
    auto = Settings(log_format="auto")
    assert resolve_format(auto, _Stream(tty=False)) == "json"
    assert resolve_format(auto, _Stream(tty=True)) == "text"
    assert resolve_format(Settings(log_format="json"), _Stream(tty=True)) == "json"
    assert resolve_format(Settings(log_format="text"), _Stream(tty=False)) == "text"


def test_configuring_twice_keeps_one_handler(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_format="json"))
    logging.config.dictConfig(uvicorn_log_config(Settings(log_format="json")))
    configure_logging(Settings(log_format="json"))
    get_logger("app").info("once")
    assert len(json_lines(capsys.readouterr().err)) == 1


def test_log_level_setting_filters_records(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_format="json", log_level="warning"))
    get_logger("app").info("hidden")
    get_logger("app").warning("shown")
    assert [e["event"] for e in json_lines(capsys.readouterr().err)] == ["shown"]


def test_uvicorn_access_and_error_logs_use_the_same_json_format(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logging.config.dictConfig(uvicorn_log_config(Settings(log_format="json")))
    # Exactly how uvicorn's protocol implementations log a request:
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:51000",
        "POST",
        "/cds-services/liver-metastasis-resectability",
        "1.1",
        200,
    )
    logging.getLogger("uvicorn.error").info(
        "Started server process [%d]", 42, extra={"color_message": "Started \x1b[36m%d\x1b[0m"}
    )
    access, started = json_lines(capsys.readouterr().err)
    assert access["logger"] == "uvicorn.access"
    assert access["method"] == "POST"
    assert access["path"] == "/cds-services/liver-metastasis-resectability"
    assert access["status"] == 200
    assert {"time", "level", "event"} <= access.keys()
    assert started["event"] == "Started server process [42]"
    assert "color_message" not in started


SERVER = textwrap.dedent(
    """
    import socket, sys, threading, urllib.request
    import uvicorn
    from starlette.applications import Starlette
    from service.observability import configure_logging, metrics_route, uvicorn_log_config
    from service.settings import Settings

    settings = Settings(log_format=sys.argv[1])
    configure_logging(settings)
    app = Starlette(routes=[metrics_route()])
    sock = socket.socket(); sock.bind(("127.0.0.1", 0)); port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=uvicorn_log_config(settings), access_log=True,
                            lifespan="off")
    server = uvicorn.Server(config)
    def probe():
        while not server.started:
            threading.Event().wait(0.02)
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        server.should_exit = True
    threading.Thread(target=probe, daemon=True).start()
    server.run(sockets=[sock])
    """
)


def test_a_real_uvicorn_server_writes_only_json_lines() -> None:
    """uvicorn's own start-up, access and shutdown lines all come out as JSON objects."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", SERVER, "json"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    entries = json_lines(done.stderr)  # raises if any line is not JSON
    access = [e for e in entries if e["logger"] == "uvicorn.access"]
    assert len(access) == 1
    assert access[0]["path"] == "/metrics" and access[0]["status"] == 200
    assert any(e["logger"] == "uvicorn.error" for e in entries)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_access_lines_keep_query_names_but_never_their_values(
    log_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The SMART callback's query carries the authorization code (a credential) and the
    # launch's the EHR's launch token: an access line names the parameters, not their values.
    logging.config.dictConfig(uvicorn_log_config(Settings(log_format=log_format)))
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:51000",
        "GET",
        f"/smart/callback?code={SECRET}&state=st4te-{SECRET}",
        "1.1",
        303,
    )
    err = capsys.readouterr().err
    assert SECRET not in err
    assert "/smart/callback?code&state" in err
