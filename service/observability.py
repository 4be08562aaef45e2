"""Metrics (Prometheus) and structured logging.

Metric objects live here so every layer increments the same ones; ``app.py`` serves
them at ``/metrics`` through :func:`metrics_route`. Loggers are plain ``logging`` loggers
under ``liver_cds``; pass structured fields with ``extra={...}`` and never a token, a JWT
or resource contents.

Logging is configured once per process by :func:`configure_logging` (our own loggers)
and :func:`uvicorn_log_config` (uvicorn's error and access logs, handed to
``uvicorn.run(log_config=...)``). Both install the same formatter, so an operator's log
pipeline sees one JSON object per line whatever produced it. The formatter also drops
any extra field that looks like a credential: a safety net under the rule that callers
never pass one.
"""

from __future__ import annotations

import functools
import json
import logging
import logging.config
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, TextIO

from prometheus_client import CollectorRegistry, Counter, Histogram, make_asgi_app
from pythonjsonlogger.orjson import OrjsonFormatter
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from service.settings import Settings

REGISTRY = CollectorRegistry(auto_describe=True)

HOOK_CALLS = Counter(
    "liver_cds_hook_calls",
    "CDS Hooks service calls by service id, HTTP status and verdict.",
    ["service", "status", "verdict"],
    registry=REGISTRY,
)
HOOK_LATENCY = Histogram(
    "liver_cds_hook_latency_seconds",
    "Latency of CDS Hooks service calls (request received to response ready).",
    ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
FHIR_FETCH_LATENCY = Histogram(
    "liver_cds_fhir_fetch_latency_seconds",
    "Latency of one FHIR server request (one page).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
FHIR_FETCH_FAILURES = Counter(
    "liver_cds_fhir_fetch_failures",
    "FHIR server requests that failed, by reason (timeout, connect, status, body, budget).",
    ["reason"],
    registry=REGISTRY,
)
FEEDBACK_ITEMS = Counter(
    "liver_cds_feedback_items",
    "Feedback items received, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
JWT_FAILURES = Counter(
    "liver_cds_jwt_failures",
    "Rejected CDS client JWTs, by reason.",
    ["reason"],
    registry=REGISTRY,
)


def count_hook_call(service: str, status: int, verdict: str, latency_s: float | None) -> None:
    """One hook call in :data:`HOOK_CALLS` and, when ``latency_s`` is given, in
    :data:`HOOK_LATENCY`.

    Why not ``HOOK_CALLS.labels(...)`` at the call site: ``labels()`` checks its keyword
    names, takes the metric's lock and looks the child up again on every call: about 60,000
    instructions of a W0 call's 4.2 million for the two metrics (``bench/instructions.py``),
    43,000 fewer with the children kept. The label values are few and fixed (service ids,
    HTTP statuses, verdicts), so each child is looked up once and kept
    (:func:`_hook_call_child`); prometheus-client keeps the same child for as long as its
    labels are not removed, and nothing here removes them.
    """
    _hook_call_child(service, status, verdict).inc()
    if latency_s is not None:
        _hook_latency_child(service).observe(latency_s)


@functools.lru_cache(maxsize=512)
def _hook_call_child(service: str, status: int, verdict: str) -> Any:
    return HOOK_CALLS.labels(service=service, status=str(status), verdict=verdict)


@functools.lru_cache(maxsize=64)
def _hook_latency_child(service: str) -> Any:
    return HOOK_LATENCY.labels(service=service)


def get_logger(name: str) -> logging.Logger:
    """A logger under the ``liver_cds`` namespace, e.g. ``get_logger("fhir.client")``."""
    return logging.getLogger(f"liver_cds.{name}")


# --------------------------------------------------------------------------------------
# /metrics
# --------------------------------------------------------------------------------------

MULTIPROCESS_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's own switch for multi-process mode (``--workers`` > 1).

It is read by prometheus-client when the metric objects above are created, so it has to
be in the environment before the workers import this module; the operations guide says
how. It is not a ``LIVER_CDS_*`` setting because the library, not we, decides by it.
"""


def metrics_route(
    path: str = "/metrics",
    registry: CollectorRegistry | None = None,
    *,
    allows: Callable[[str | None], bool] | None = None,
) -> Route:
    """``GET /metrics``: every metric of ``registry`` (default :data:`REGISTRY`) in the
    Prometheus text exposition format, served by prometheus-client's own ASGI app (which
    also honours ``Accept-Encoding: gzip`` and ``?name[]=`` filters).

    With several uvicorn workers each process has its own counters; when
    ``PROMETHEUS_MULTIPROC_DIR`` is set the route aggregates the files all workers
    write there instead, so a scrape that lands on any worker sees the whole service.

    ``allows`` decides from the request's ``Authorization`` header whether it may read
    the metrics (see ``service/security/internal.py``); a refused request gets the 404
    of an unknown path.
    """
    source = REGISTRY if registry is None else registry
    multiprocess_dir = os.environ.get(MULTIPROCESS_ENV, "")
    if multiprocess_dir and registry is None:
        from prometheus_client import multiprocess

        source = CollectorRegistry()
        multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
            source, path=multiprocess_dir
        )
    return Route(path, _MetricsApp(make_asgi_app(source), allows), methods=["GET"], name="metrics")


class _MetricsApp:
    """prometheus-client's ASGI app behind the access rule (an ASGI class, so Starlette's
    ``Route`` calls it as an app, not as a request handler)."""

    def __init__(self, app: ASGIApp, allows: Callable[[str | None], bool] | None) -> None:
        self._app = app
        self._allows = allows

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._allows is not None:
            authorization = Headers(scope=scope).get("authorization")
            if not self._allows(authorization):
                # The application's own 404 for an unknown path, byte for byte.
                raise HTTPException(status_code=404)
        await self._app(scope, receive, send)


# --------------------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------------------

REDACTED_FIELDS: Final = frozenset(
    {
        "token",
        "accesstoken",
        "idtoken",
        "refreshtoken",
        "authorization",
        "fhirauthorization",
        "jwt",
        "bearer",
        "password",
        "secret",
        "clientsecret",
        "auditkey",
    }
)
"""Extra-field names (lower case, ``_`` and ``-`` removed) that are never written.

``access_token``, ``Authorization``, ``fhirAuthorization`` and ``jwt`` all match. The
field is dropped, not masked, so nothing about the secret (not even its length) leaks.
"""

_JWT_RE: Final = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
_BEARER_RE: Final = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")
REDACTION: Final = "[redacted]"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)
# uvicorn adds a terminal-coloured copy of some messages; it is noise in a log pipeline.
_DROPPED_EXTRAS: Final = frozenset({"color_message"})

_TEXT_EXTRA_RE: Final = re.compile(r"[\s\"=]")


def _normalise(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


@functools.lru_cache(maxsize=1024)
def is_secret_field(name: str) -> bool:
    """True when an extra field of this name must never be logged (cached: field names
    are a small fixed set, and this runs for every extra of every line)."""
    return _normalise(name) in REDACTED_FIELDS


def scrub(text: str) -> str:
    """``text`` with anything shaped like a JWT or a bearer credential replaced.

    The second line of defence: a message that interpolated a token by mistake still
    does not reach the log.
    """
    if "eyJ" in text:
        text = _JWT_RE.sub(REDACTION, text)
    if "earer" in text or "EARER" in text:
        text = _BEARER_RE.sub(r"\1 " + REDACTION, text)
    return text


def _clean(value: Any, depth: int = 0) -> Any:
    """A JSON-friendly copy of ``value`` with secret keys dropped and strings scrubbed."""
    if isinstance(value, str):
        return scrub(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= 6:
        return scrub(repr(value))
    if isinstance(value, Mapping):
        return {
            str(k): _clean(v, depth + 1) for k, v in value.items() if not is_secret_field(str(k))
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v, depth + 1) for v in value]
    return scrub(str(value))


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    attributes = vars(record)
    if not attributes.keys() - _RECORD_ATTRS:  # the common case for library records
        return {}
    return {
        key: _clean(value)
        for key, value in attributes.items()
        if key not in _RECORD_ATTRS
        and key not in _DROPPED_EXTRAS
        and not key.startswith("_")
        and not is_secret_field(key)
    }


def _access_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Structured fields of a uvicorn access-log line.

    uvicorn logs ``'%s - "%s %s HTTP/%s" %d'`` with (client, method, path, version,
    status) as arguments; splitting them lets a pipeline filter on status without
    parsing the message.
    """
    args = record.args
    if record.name != "uvicorn.access" or not isinstance(args, tuple) or len(args) != 5:
        return {}
    client, method, path, http_version, status = args
    return {
        "client": _clean(client),
        "method": _clean(method),
        "path": _clean(path),
        "http_version": _clean(http_version),
        "status": status if isinstance(status, int) else _clean(status),
    }


@functools.lru_cache(maxsize=4)
def _iso_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def _iso_time(created: float) -> str:
    """UTC ISO 8601 with milliseconds, e.g. ``2026-06-01T12:00:00.123Z``."""
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return f"{_iso_second(seconds)}.{millis:03d}Z"


_TRACE_FIELDS: Final = {"exc_info": "exc", "stack_info": "stack"}


class JsonFormatter(OrjsonFormatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``event`` and extras.

    python-json-logger does the formatting (the record's extras, a dict logged as the
    message, exception and stack text, orjson encoding); this class names the fields and
    applies the redaction above to everything it collected. ``time`` is UTC ISO 8601 with
    milliseconds; ``event`` is the formatted message (scrubbed); extras (``hookInstance``,
    ``latency_ms``, ...) follow as their own keys, secret-named ones dropped and the rest
    scrubbed (:func:`_clean`). An exception adds ``exc_type`` and ``exc`` (the traceback
    text), a stack ``stack``.
    """

    def __init__(self) -> None:
        # No format fields: the four named fields are added below, extras by the library.
        super().__init__([], reserved_attrs=sorted(_RECORD_ATTRS | _DROPPED_EXTRAS))

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        collected: dict[str, Any] = {}
        super().add_fields(collected, record, message_dict)
        log_data["time"] = _iso_time(record.created)
        log_data["level"] = record.levelname.lower()
        log_data["logger"] = record.name
        log_data["event"] = scrub(record.message)
        log_data.update(_access_fields(record))
        if record.exc_info and record.exc_info[0] is not None:
            log_data["exc_type"] = record.exc_info[0].__name__
        for key, value in collected.items():
            if key in _TRACE_FIELDS:
                log_data[_TRACE_FIELDS[key]] = scrub(str(value))
            elif not is_secret_field(str(key)):
                log_data.setdefault(str(key), _clean(value))

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        try:
            return super().jsonify_log_record(log_data)
        except TypeError:  # e.g. an int beyond 64 bits; the stdlib encoder copes
            return json.dumps(log_data, ensure_ascii=False, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """``time level logger: event key=value ...`` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            _iso_time(record.created),
            f"{record.levelname:<7}",
            f"{record.name}:",
            scrub(record.getMessage()),
        ]
        for key, value in _extras(record).items():
            shown = value if isinstance(value, str) else json.dumps(value, default=str)
            if isinstance(value, str) and (not value or _TEXT_EXTRA_RE.search(value)):
                shown = json.dumps(value, ensure_ascii=False)
            parts.append(f"{key}={shown}")
        line = " ".join(parts)
        if record.exc_info and record.exc_info[0] is not None:
            line += "\n" + scrub(self.formatException(record.exc_info))
        if record.stack_info:
            line += "\n" + scrub(self.formatStack(record.stack_info))
        return line


def _access_query_values_removed(record: logging.LogRecord) -> bool:
    """A uvicorn access line's path with its query values dropped (names kept).

    uvicorn logs the path with its query string: ``/smart/callback?code=...&state=...``
    carries the SMART authorization code, ``/smart/launch?...&launch=...`` the EHR's launch
    token. Neither may reach the log; ``/smart/callback?code&state`` still says what came.
    """
    args = record.args
    if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
        path = args[2]
        if isinstance(path, str) and "?" in path:
            route, _, query = path.partition("?")
            names = "&".join(part.split("=", 1)[0] for part in query.split("&") if part)
            record.args = (args[0], args[1], f"{route}?{names}", args[3], args[4])
    return True


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the call.

    A plain ``StreamHandler(sys.stderr)`` keeps the stream it was built with, which is
    wrong once a test runner or a process manager has replaced ``sys.stderr``.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.addFilter(_access_query_values_removed)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """Ignored: the stream is always the current ``sys.stderr``."""


_QUIET_LOGGERS: Final = ("httpx", "httpcore", "hpack", "asyncio", "aiosqlite")
"""Libraries whose INFO/DEBUG lines carry URLs with query strings (patient ids) or noise."""


def resolve_format(settings: Settings, stream: TextIO | None = None) -> str:
    """``json`` or ``text``: ``auto`` means JSON unless stderr is a terminal."""
    if settings.log_format in ("json", "text"):
        return settings.log_format
    target = sys.stderr if stream is None else stream
    try:
        interactive = target.isatty()
    except (AttributeError, ValueError):
        interactive = False
    return "text" if interactive else "json"


def _level(settings: Settings) -> int:
    level = logging.getLevelName(settings.log_level.upper())
    return level if isinstance(level, int) else logging.INFO


def make_formatter(settings: Settings) -> logging.Formatter:
    """The formatter :func:`configure_logging` installs (JSON or text)."""
    return JsonFormatter() if resolve_format(settings) == "json" else TextFormatter()


def configure_logging(settings: Settings) -> None:
    """Send every log record of the process to stderr in the configured format.

    Idempotent: calling it again (one ``create_app`` per test) replaces the handler it
    installed before and leaves handlers others added (pytest's ``caplog``) alone.
    Also turns off what every log record would otherwise look up (:func:`_lean_records`).
    """
    _lean_records()
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, StderrHandler):  # ours, from here or from uvicorn_log_config
            root.removeHandler(old)
    handler = StderrHandler()
    handler.setFormatter(make_formatter(settings))
    root.addHandler(handler)
    level = _level(settings)
    root.setLevel(level)
    logging.getLogger("liver_cds").setLevel(level)
    quiet = max(level, logging.WARNING)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
    # uvicorn's loggers propagate to the root handler when uvicorn_log_config is used;
    # when uvicorn configured its own handlers, leave them alone.


def _lean_records() -> None:
    """Stop ``logging`` from collecting, for every record, what no line of ours writes.

    By default each ``LogRecord`` finds its caller's source file, line and function (a
    walk up the stack), and looks up the thread's name, the process id and, because
    uvicorn imports :mod:`multiprocessing`, the process's name. Neither formatter writes
    any of them (a line is time, level, logger, event and the extras), and each call's
    two lines (the access line and ``hook call``) paid for them. These module switches are
    the ones the Python Logging HOWTO lists under "Optimization"; they save about 1.7 µs
    per record. An operator's own formatter that printed those fields would see them empty.
    """
    logging._srcfile = None  # the HOWTO's documented switch
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def uvicorn_log_config(settings: Settings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for ``uvicorn.run(log_config=...)``.

    uvicorn applies it in every worker process before our app starts. It installs the
    same formatter on the root logger and lets ``uvicorn``, ``uvicorn.error`` and
    ``uvicorn.access`` propagate to it, so access lines look like ours.
    """
    level = logging.getLevelName(_level(settings))
    formatter = "json" if resolve_format(settings) == "json" else "text"
    quiet = logging.getLevelName(max(_level(settings), logging.WARNING))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": f"{__name__}.JsonFormatter"},
            "text": {"()": f"{__name__}.TextFormatter"},
        },
        "handlers": {
            "stderr": {"()": f"{__name__}.StderrHandler", "formatter": formatter},
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": level, "propagate": True},
            "liver_cds": {"handlers": [], "level": level, "propagate": True},
            **{
                name: {"handlers": [], "level": quiet, "propagate": True} for name in _QUIET_LOGGERS
            },
        },
    }
