"""Service settings, read once from ``LIVER_CDS_*`` environment variables.

This is the only module that reads the environment. Everything else receives a
:class:`Settings` value (or a part of it) explicitly, the way httpx passes ``Timeout``
and ``Limits`` objects around, so tests build the settings they need without
monkeypatching globals.

Every field has a safe default for local development; the README's settings table
lists them all and is checked against :data:`ENVIRONMENT_VARIABLES` by a test.

The environment is read and validated by pydantic-settings (:func:`_read_environment`):
types, ``Literal`` choices and the ``Positive`` bounds declared on the fields below are
checked by pydantic, and its errors are reworded into one :class:`SettingsError` naming the
variable. ``Settings`` itself stays a frozen dataclass so that callers build and
``dataclasses.replace`` it freely, and so that importing this module (and building settings
in tests or the CLI) does not import pydantic: only :meth:`Settings.from_env` does.
"""

from __future__ import annotations

import functools
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Annotated, Any, Literal

import annotated_types

if TYPE_CHECKING:
    from pydantic import ValidationError
    from pydantic_settings import BaseSettings

AuthMode = Literal["required", "off"]
LogFormat = Literal["json", "text", "auto"]
Positive = annotated_types.Gt(0)
"""Bound on a field: a ``LIVER_CDS_*`` value of 0 or less is refused, naming the variable."""

PREFIX = "LIVER_CDS_"
MIN_JSON_DEPTH = 16
"""Lowest accepted ``LIVER_CDS_MAX_JSON_DEPTH``: a real hook request nests 9 levels and more
(request, prefetch, Bundle, entry list, entry, Observation, code, coding list, coding), and
the selective parse relies on the levels it builds itself (6) staying under the limit."""


MIN_METRICS_TOKEN = 32
"""Shortest accepted ``LIVER_CDS_METRICS_TOKEN``: a guessable token would reopen the metrics
(and their per-reason JWT failure counts) to anyone."""
MIN_HEADER_BYTES = 4096
"""Lowest accepted ``LIVER_CDS_MAX_HEADER_BYTES``."""


class SettingsError(ValueError):
    """A ``LIVER_CDS_*`` variable holds a value that cannot be used."""


@dataclass(frozen=True)
class Settings:
    """All run-time configuration of the service.

    Field names are the environment variable names without the ``LIVER_CDS_`` prefix,
    in lower case (``database_url`` <- ``LIVER_CDS_DATABASE_URL``).
    """

    # --- HTTP and protocol -------------------------------------------------------------
    host: str = "127.0.0.1"
    port: Annotated[int, Positive] = 8000
    workers: int = 1
    public_url: str = "http://127.0.0.1:8000"
    """Base URL under which EHRs call us; JWT ``aud`` must equal the URL called under it.
    Unset, it follows ``host`` and ``port`` (:func:`default_public_url`)."""
    cors_origins: tuple[str, ...] = ("*",)
    max_body_bytes: Annotated[int, Positive] = 5 * 1024 * 1024
    body_budget_bytes: Annotated[int, Positive] = 32 * 1024 * 1024
    """Bytes of hook request bodies one worker holds at once (at least ``max_body_bytes``);
    a call beyond it waits its turn, up to ``call_budget_s``, then gets 503."""
    malloc_tuning: bool = True
    """Set glibc's malloc thresholds in ``liver-cds serve`` so that a hook body's pages are
    kept between calls instead of faulted in anew (``service/malloc.py``)."""
    max_json_depth: Annotated[int, Positive] = 64
    max_resources: Annotated[int, Positive] = 20_000
    """Resources accepted in one call (prefetch plus fetched pages together)."""
    max_header_bytes: Annotated[int, Positive] = 32 * 1024
    """Request line and headers of one request; more is refused (431) by the HTTP server,
    before authentication or the application see anything."""
    header_timeout_s: Annotated[float, Positive] = 10.0
    """Time a connection has to send a request's line and headers (counted from its first
    byte, or from the connection's opening); then it is closed (408)."""

    # --- FHIR fetch ----------------------------------------------------------------------
    fhir_timeout_s: Annotated[float, Positive] = 2.0
    """Per-request timeout towards a FHIR server (connect, read, write, pool)."""
    call_budget_s: Annotated[float, Positive] = 3.0
    """Total time budget of one hook call's FHIR fetching."""
    fhir_max_pages: Annotated[int, Positive] = 20
    fhir_max_page_bytes: int = 20 * 1024 * 1024
    fhir_allow_loopback_http: bool = True
    """Fetch from plain-http loopback FHIR servers; only honoured when auth is off."""

    # --- Clinical engine -------------------------------------------------------------------
    lookback_days: Annotated[int, Positive] = 90
    imaging_lookback_days: Annotated[int, Positive] = 90
    """Lesion count, tumour size and FLR older than this count as missing (rule set v2)."""
    strict_fhir: bool = False
    """Validate every input resource with fhir.resources R4B and report schema problems."""

    # --- Cards -----------------------------------------------------------------------------
    cards_dir: str = ""
    """Directory with the card content; empty means the ``cards/`` shipped with the service."""
    smart_app_url: str = ""

    # --- SMART on FHIR app: the full assessment view (service/smart) -----------------------
    smart_client_id: str = ""
    """Client id the EHR's authorization server registered for the app; empty: app off."""
    smart_client_secret: str = field(default="", repr=False)
    """Empty: a public client (PKCE only); set: a confidential client (client_secret_basic)."""
    smart_allowed_iss: tuple[str, ...] = ()
    """FHIR base URLs (launch ``iss``) the app accepts; required when the app is on."""
    smart_scopes: str = (
        "launch patient/Patient.rs patient/Condition.rs patient/Observation.rs patient/Procedure.rs"
    )
    smart_session_key: str = field(default="", repr=False)
    """Key signing the session cookie (at least 32 characters); empty: random per process."""
    smart_session_ttl_s: Annotated[int, Positive] = 3600
    """How long a launched session (and its access token) is kept, at most."""

    # --- Security --------------------------------------------------------------------------
    auth: AuthMode = "off"
    trust_file: str = ""
    jwt_algorithms: tuple[str, ...] = ("ES384", "RS384")
    jwt_leeway_s: int = 60
    jwks_refresh_min_interval_s: int = 60

    # --- Persistence and shared state -------------------------------------------------------
    database_url: str = field(default="sqlite:///./var/liver-cds.db", repr=False)
    redis_url: str = field(default="", repr=False)
    audit_key: str = field(default="", repr=False)
    """Secret key of the keyed hash (HMAC-SHA256) of patient ids in the audit log."""
    audit_plain_patient_id: bool = False
    retention_days: int = 0
    """Purge audit and feedback rows older than this many days; 0 keeps them forever."""

    # --- Observability -----------------------------------------------------------------------
    log_level: str = "info"
    log_format: LogFormat = "auto"
    metrics_enabled: bool = True
    metrics_token: str = field(default="", repr=False)
    """Bearer token for ``/metrics`` and ``/openapi.json``. With ``LIVER_CDS_AUTH=required``
    they are served only to a request carrying it (and not at all while it is empty); with
    auth off, to anyone when it is empty."""

    # --- Demo --------------------------------------------------------------------------------
    demo_enabled: bool = True
    fixtures_dir: str = ""
    """Directory with the demo's fixture patients; empty means the shipped ``fixtures/``."""

    extra: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    """Unrecognised ``LIVER_CDS_*`` variables (reported as a warning at start-up)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default: ``os.environ``).

        Raises :class:`SettingsError` naming the first unusable variable.
        """
        env = os.environ if environ is None else environ
        values = _read_environment(env)
        known = set(ENVIRONMENT_VARIABLES)
        extra = {k: v for k, v in env.items() if k.startswith(PREFIX) and k not in known}
        if not env.get(PREFIX + "PUBLIC_URL", "").strip():
            values["public_url"] = default_public_url(
                values.get("host", cls.host), values.get("port", cls.port)
            )
        settings = cls(**values, extra=extra)
        settings.check()
        if settings.auth == "required" and not env.get(PREFIX + "PUBLIC_URL", "").strip():
            # Every JWT's aud is checked against this URL: left at its development default,
            # every genuine token would fail with no hint why.
            raise SettingsError(
                "LIVER_CDS_AUTH=required needs LIVER_CDS_PUBLIC_URL (the base URL EHRs call; "
                "a JWT's aud must equal the URL called under it)"
            )
        return settings

    def check(self) -> None:
        """Reject combinations that cannot work, with a message naming the variable.

        Each value's type and bounds were checked when it was read (:func:`_read_environment`);
        these are the rules across fields, and the ones whose message says why.
        """
        if self.auth == "required" and not self.trust_file:
            raise SettingsError("LIVER_CDS_AUTH=required needs LIVER_CDS_TRUST_FILE")
        if self.max_json_depth < MIN_JSON_DEPTH:
            raise SettingsError(
                f"{PREFIX}MAX_JSON_DEPTH must be at least {MIN_JSON_DEPTH}: an Observation in a "
                "prefetch Bundle is already 9 levels deep"
            )
        bad = [a for a in self.jwt_algorithms if a not in ALLOWED_JWT_ALGORITHMS]
        if bad:
            raise SettingsError(
                f"LIVER_CDS_JWT_ALGORITHMS: {', '.join(bad)} not allowed "
                f"(choose from {', '.join(sorted(ALLOWED_JWT_ALGORITHMS))})"
            )
        if self.smart_client_id:
            _check_smart(self)
        if self.metrics_token and len(self.metrics_token) < MIN_METRICS_TOKEN:
            raise SettingsError(
                f"{PREFIX}METRICS_TOKEN must be at least {MIN_METRICS_TOKEN} characters "
                "(a random secret, e.g. `openssl rand -hex 32`)"
            )
        if self.max_header_bytes < MIN_HEADER_BYTES:
            raise SettingsError(
                f"{PREFIX}MAX_HEADER_BYTES must be at least {MIN_HEADER_BYTES}: a CDS client's "
                "JWT alone is often 1-2 KiB"
            )

    @property
    def smart_enabled(self) -> bool:
        """The SMART app's routes are served (``LIVER_CDS_SMART_CLIENT_ID`` is set)."""
        return bool(self.smart_client_id)

    @property
    def public_base(self) -> str:
        """``public_url`` without a trailing slash."""
        return self.public_url.rstrip("/")


def default_public_url(host: str, port: int) -> str:
    """``http://host:port``, the URL a local client reaches the service under when
    ``LIVER_CDS_PUBLIC_URL`` is not set; a wildcard bind address (``0.0.0.0``, ``::``)
    becomes the loopback address, which is what a browser on the same machine uses."""
    if host in ("", "0.0.0.0", "::", "[::]"):  # noqa: S104 (names the wildcard, binds nothing)
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _check_smart(settings: Settings) -> None:
    """The SMART app's settings: every launch ``iss`` and the redirect URI must be usable."""
    from service.security.urls import UrlError, is_https_or_loopback_http

    if not settings.smart_allowed_iss:
        raise SettingsError(
            "LIVER_CDS_SMART_CLIENT_ID needs LIVER_CDS_SMART_ALLOWED_ISS (the EHR FHIR base "
            "URLs a launch may name)"
        )
    for name, urls in (
        ("LIVER_CDS_SMART_ALLOWED_ISS", settings.smart_allowed_iss),
        ("LIVER_CDS_PUBLIC_URL", (settings.public_base,)),
    ):
        for url in urls:
            try:
                usable = is_https_or_loopback_http(url)
            except UrlError as exc:
                raise SettingsError(f"{name}: {exc}") from None
            if not usable or (settings.auth == "required" and not url.startswith("https://")):
                raise SettingsError(
                    f"{name}: https is required (http only for loopback with LIVER_CDS_AUTH=off)"
                )
    if settings.smart_session_key and len(settings.smart_session_key) < 32:
        raise SettingsError("LIVER_CDS_SMART_SESSION_KEY must be at least 32 characters")
    if settings.workers > 1:
        raise SettingsError(
            "the SMART app keeps its sessions in the process: run it with LIVER_CDS_WORKERS=1 "
            "(scale with replicas behind session affinity)"
        )


ALLOWED_JWT_ALGORITHMS = frozenset({"ES384", "RS384", "ES256", "RS256", "ES512", "RS512"})
"""Asymmetric algorithms only: never ``none`` nor any HS* (CDS Hooks 2.0, Trusting CDS Clients)."""


_SECRET_FIELDS = frozenset({"database_url", "redis_url"})
"""Fields whose value is never repeated in an error message, besides every field named like a
secret (:data:`_SECRET_WORDS`): URLs that may carry a password."""
_SECRET_WORDS = ("key", "secret", "token", "password")


def _read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``LIVER_CDS_*`` values present in ``environ``, converted to the fields' types.

    Values are stripped; booleans accept true/false, 1/0, yes/no, on/off; lists are
    comma-separated; ``auth`` and ``log_format`` are case-insensitive.
    """
    from pydantic import ValidationError
    from pydantic_settings import EnvSettingsSource
    from pydantic_settings.sources import PydanticBaseSettingsSource
    from pydantic_settings.sources.utils import parse_env_vars

    class MappingSource(EnvSettingsSource):
        """The environment source, reading the mapping given to ``from_env``."""

        def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
            self.environ = environ
            super().__init__(settings_cls)

        def _load_env_vars(self) -> Mapping[str, str | None]:
            # The extension point pydantic-settings' own DotEnvSettingsSource overrides.
            return parse_env_vars(
                self.environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
            )

    class FromMapping(_environment_model()):  # type: ignore[misc]
        """The model reading only ``environ`` (never ``os.environ`` behind the caller's back)."""

        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], **sources: PydanticBaseSettingsSource
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (MappingSource(settings_cls, environ),)

    try:
        read = FromMapping()
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    return {name: getattr(read, name) for name in read.model_fields_set}


@functools.cache
def _environment_model() -> type[BaseSettings]:
    """A pydantic-settings model with one field per :class:`Settings` field (built once).

    It is derived from the dataclass so that the field list, types, bounds and defaults are
    written once, above.
    """
    from pydantic import BeforeValidator, Field, create_model
    from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

    # Each field reads exactly the variable its alias names (LIVER_CDS_PORT, not liver_cds_port).
    config = SettingsConfigDict(
        case_sensitive=True, extra="ignore", str_strip_whitespace=True, frozen=True
    )
    hints = typing.get_type_hints(Settings, include_extras=True)
    definitions: dict[str, Any] = {}
    for f in fields(Settings):
        if f.name == "extra":
            continue
        hint = hints[f.name]
        bare = typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint
        if typing.get_origin(bare) is tuple:
            hint = Annotated[hint, NoDecode, BeforeValidator(_split_commas)]
        elif typing.get_origin(bare) is Literal:
            hint = Annotated[hint, BeforeValidator(_lower)]
        elif bare is bool:
            hint = Annotated[hint, BeforeValidator(_empty_is_false)]
        definitions[f.name] = (hint, Field(f.default, validation_alias=PREFIX + f.name.upper()))
    return create_model(
        "SettingsEnvironment", __base__=BaseSettings, __config__=config, **definitions
    )


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _empty_is_false(value: object) -> object:
    return False if isinstance(value, str) and not value.strip() else value


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


_PHRASES = {
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
}


def _describe(exc: ValidationError) -> str:
    """The first error as ``LIVER_CDS_NAME must be ..., not 'value'``."""
    error = exc.errors(include_url=False)[0]
    name = str(error["loc"][0]) if error["loc"] else PREFIX
    attr = name.removeprefix(PREFIX).lower()
    ctx = error.get("ctx") or {}
    if error["type"] in _PHRASES:
        phrase = _PHRASES[error["type"]]
    elif error["type"] == "greater_than" and ctx.get("gt") == 0:
        phrase = "must be positive"
    else:
        phrase = str(error["msg"]).replace("Input should be", "must be")
    secret = attr in _SECRET_FIELDS or any(word in attr for word in _SECRET_WORDS)
    if secret or not isinstance(error.get("input"), str):
        return f"{name} {phrase}"
    return f"{name} {phrase}, not {error['input']!r}"


ENVIRONMENT_VARIABLES: tuple[str, ...] = tuple(
    PREFIX + f.name.upper() for f in fields(Settings) if f.name != "extra"
)
"""Every variable the service reads; the README documents each one (checked by a test)."""
