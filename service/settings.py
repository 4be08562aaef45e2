"""Service settings, read once from ``LIVER_CDS_*`` environment variables.

This is the only module that reads the environment. Everything else receives a
:class:`Settings` value (or a part of it) explicitly, the way httpx passes ``Timeout``
and ``Limits`` objects around, so tests build the settings they need without
monkeypatching globals.

Every field has a safe default for local development; the README's settings table
lists them all and is checked against :data:`ENVIRONMENT_VARIABLES` by a test.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Literal

AuthMode = Literal["required", "off"]
LogFormat = Literal["json", "text", "auto"]

PREFIX = "LIVER_CDS_"
MIN_JSON_DEPTH = 16
"""Lowest accepted ``LIVER_CDS_MAX_JSON_DEPTH``: a real hook request nests 9 levels and more
(request, prefetch, Bundle, entry list, entry, Observation, code, coding list, coding), and
the selective parse relies on the levels it builds itself (6) staying under the limit."""


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
    port: int = 8000
    workers: int = 1
    public_url: str = "http://127.0.0.1:8000"
    """Base URL under which EHRs call us; JWT ``aud`` must equal the URL called under it."""
    cors_origins: tuple[str, ...] = ("*",)
    max_body_bytes: int = 5 * 1024 * 1024
    max_json_depth: int = 64
    max_resources: int = 20_000
    """Resources accepted in one call (prefetch plus fetched pages together)."""

    # --- FHIR fetch ----------------------------------------------------------------------
    fhir_timeout_s: float = 2.0
    """Per-request timeout towards a FHIR server (connect, read, write, pool)."""
    call_budget_s: float = 3.0
    """Total time budget of one hook call's FHIR fetching."""
    fhir_max_pages: int = 20
    fhir_max_page_bytes: int = 20 * 1024 * 1024
    fhir_allow_loopback_http: bool = True
    """Fetch from plain-http loopback FHIR servers; only honoured when auth is off."""

    # --- Clinical engine -------------------------------------------------------------------
    lookback_days: int = 90
    imaging_lookback_days: int = 90
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
    smart_client_secret: str = ""
    """Empty: a public client (PKCE only); set: a confidential client (client_secret_basic)."""
    smart_allowed_iss: tuple[str, ...] = ()
    """FHIR base URLs (launch ``iss``) the app accepts; required when the app is on."""
    smart_scopes: str = (
        "launch patient/Patient.rs patient/Condition.rs patient/Observation.rs patient/Procedure.rs"
    )
    smart_session_key: str = ""
    """Key signing the session cookie (at least 32 characters); empty: random per process."""
    smart_session_ttl_s: int = 3600
    """How long a launched session (and its access token) is kept, at most."""

    # --- Security --------------------------------------------------------------------------
    auth: AuthMode = "off"
    trust_file: str = ""
    jwt_algorithms: tuple[str, ...] = ("ES384", "RS384")
    jwt_leeway_s: int = 60
    jwks_refresh_min_interval_s: int = 60

    # --- Persistence and shared state -------------------------------------------------------
    database_url: str = "sqlite:///./var/liver-cds.db"
    redis_url: str = ""
    audit_key: str = ""
    """Secret key of the keyed hash (HMAC-SHA256) of patient ids in the audit log."""
    audit_plain_patient_id: bool = False
    retention_days: int = 0
    """Purge audit and feedback rows older than this many days; 0 keeps them forever."""

    # --- Observability -----------------------------------------------------------------------
    log_level: str = "info"
    log_format: LogFormat = "auto"
    metrics_enabled: bool = True

    # --- Demo --------------------------------------------------------------------------------
    demo_enabled: bool = True
    fixtures_dir: str = ""
    """Directory with the demo's fixture patients; empty means the shipped ``fixtures/``."""

    extra: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    """Unrecognised ``LIVER_CDS_*`` variables (reported as a warning at start-up)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default: ``os.environ``)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        known: set[str] = set()
        for f in fields(cls):
            if f.name == "extra":
                continue
            name = PREFIX + f.name.upper()
            known.add(name)
            raw = env.get(name)
            if raw is None:
                continue
            values[f.name] = _convert(name, raw.strip(), getattr(cls, f.name, None), f.name)
        extra = {k: v for k, v in env.items() if k.startswith(PREFIX) and k not in known}
        settings = cls(**values, extra=extra)  # type: ignore[arg-type]
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
        """Reject combinations that cannot work, with a message naming the variable."""
        if self.auth not in ("required", "off"):
            raise SettingsError("LIVER_CDS_AUTH must be 'required' or 'off'")
        if self.log_format not in ("json", "text", "auto"):
            raise SettingsError("LIVER_CDS_LOG_FORMAT must be 'json', 'text' or 'auto'")
        if self.auth == "required" and not self.trust_file:
            raise SettingsError("LIVER_CDS_AUTH=required needs LIVER_CDS_TRUST_FILE")
        for name in (
            "max_body_bytes",
            "max_json_depth",
            "max_resources",
            "fhir_max_pages",
            "port",
            "lookback_days",
            "imaging_lookback_days",
        ):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{PREFIX}{name.upper()} must be positive")
        if self.max_json_depth < MIN_JSON_DEPTH:
            raise SettingsError(
                f"{PREFIX}MAX_JSON_DEPTH must be at least {MIN_JSON_DEPTH}: an Observation in a "
                "prefetch Bundle is already 9 levels deep"
            )
        for name in ("fhir_timeout_s", "call_budget_s"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{PREFIX}{name.upper()} must be positive")
        bad = [a for a in self.jwt_algorithms if a not in ALLOWED_JWT_ALGORITHMS]
        if bad:
            raise SettingsError(
                f"LIVER_CDS_JWT_ALGORITHMS: {', '.join(bad)} not allowed "
                f"(choose from {', '.join(sorted(ALLOWED_JWT_ALGORITHMS))})"
            )
        if self.smart_client_id:
            _check_smart(self)

    @property
    def smart_enabled(self) -> bool:
        """The SMART app's routes are served (``LIVER_CDS_SMART_CLIENT_ID`` is set)."""
        return bool(self.smart_client_id)

    @property
    def public_base(self) -> str:
        """``public_url`` without a trailing slash."""
        return self.public_url.rstrip("/")


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
            if not usable:
                raise SettingsError(f"{name}: https is required (http only for loopback)")
    if settings.smart_session_key and len(settings.smart_session_key) < 32:
        raise SettingsError("LIVER_CDS_SMART_SESSION_KEY must be at least 32 characters")
    if settings.smart_session_ttl_s <= 0:
        raise SettingsError("LIVER_CDS_SMART_SESSION_TTL_S must be positive")
    if settings.workers > 1:
        raise SettingsError(
            "the SMART app keeps its sessions in the process: run it with LIVER_CDS_WORKERS=1 "
            "(scale with replicas behind session affinity)"
        )


ALLOWED_JWT_ALGORITHMS = frozenset({"ES384", "RS384", "ES256", "RS256", "ES512", "RS512"})
"""Asymmetric algorithms only: never ``none`` nor any HS* (CDS Hooks 2.0, Trusting CDS Clients)."""


def _convert(name: str, raw: str, default: object, attr: str) -> object:
    if isinstance(default, bool):
        low = raw.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
        raise SettingsError(f"{name} must be true or false, not {raw!r}")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number, not {raw!r}") from None
    if isinstance(default, tuple):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if attr in ("auth", "log_format"):
        return raw.lower()
    return raw


ENVIRONMENT_VARIABLES: tuple[str, ...] = tuple(
    PREFIX + f.name.upper() for f in fields(Settings) if f.name != "extra"
)
"""Every variable the service reads; the README documents each one (checked by a test)."""
