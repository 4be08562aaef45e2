"""SMART App Launch 2.x, EHR launch: discovery, the authorization request, the token
exchange.

    EHR opens  /smart/launch?iss=<FHIR base>&launch=<opaque>
    -> GET <iss>/.well-known/smart-configuration        (:func:`discover`)
    -> redirect to authorization_endpoint with PKCE S256, state, aud=iss, launch
    -> EHR redirects to /smart/callback?code&state       (state checked by the view)
    -> POST token_endpoint with the code and the verifier (:func:`exchange_code`)

The OAuth parameters (authorization URI, token request body, PKCE S256 challenge, random
state and verifier) come from Authlib's protocol functions; the two HTTP requests go
through one httpx client like every other outgoing request of the service: bounded
time and size, no redirects followed, no proxy from the environment. Authlib's own
httpx client is not used because its httpx integration is being moved to another HTTP
package (it warns at import), and the service already owns its client settings.

Client type: a public client (PKCE only) unless ``LIVER_CDS_SMART_CLIENT_SECRET`` is
set, then a confidential client with ``client_secret_basic``. PKCE S256 is used either
way, and a server whose configuration does not list S256 is refused (SMART 2.x requires
it), as is one that does not list ``launch-ehr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import orjson
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from service.security.urls import UrlError, is_https_or_loopback_http, normalise_url

MAX_RESPONSE_BYTES: Final = 256 * 1024
"""A smart-configuration or token response is a few kilobytes; more is refused."""
WELL_KNOWN: Final = "/.well-known/smart-configuration"


class LaunchError(Exception):
    """A launch step failed; ``message`` is fit for the page (no token, no PHI)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class SmartConfiguration:
    """The parts of ``.well-known/smart-configuration`` the launch uses."""

    authorization_endpoint: str
    token_endpoint: str
    capabilities: frozenset[str]
    code_challenge_methods: frozenset[str]


@dataclass(frozen=True)
class ClientConfig:
    client_id: str
    redirect_uri: str
    scope: str
    client_secret: str = ""

    @property
    def confidential(self) -> bool:
        return bool(self.client_secret)


def allowed_iss(iss: str | None, allowed: tuple[str, ...]) -> str:
    """``iss`` in its normal form when it is one of the configured FHIR bases (400 else)."""
    if not iss:
        raise LaunchError("the launch has no iss (the EHR's FHIR base URL)")
    try:
        normal = normalise_url(iss)
        permitted = {normalise_url(url) for url in allowed}
    except UrlError:
        raise LaunchError("the launch's iss is not a usable URL") from None
    if normal not in permitted:
        raise LaunchError("this EHR (iss) is not configured for the app", status=403)
    return iss.rstrip("/")


async def _get_json(http: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> Any:
    """One request answered with a JSON object, read up to :data:`MAX_RESPONSE_BYTES`."""
    try:
        async with http.stream(method, url, **kwargs) as response:
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    raise LaunchError("the authorization server's answer is too large", 502)
            status = response.status_code
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:  # ValueError: idna's
        raise LaunchError(
            f"the EHR's server could not be reached ({type(exc).__name__})", 502
        ) from None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    return status, data


def _endpoint(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    try:
        usable = isinstance(value, str) and is_https_or_loopback_http(value.split("?")[0])
    except UrlError:
        usable = False
    if not usable:
        raise LaunchError(f"the EHR's smart-configuration has no usable {name}", 502)
    assert isinstance(value, str)
    return value


def _strings(value: Any) -> frozenset[str]:
    """The strings of a JSON array; nothing for any other value (a number, a string, an
    object: a malformed configuration offers no capability, it does not fail the page)."""
    return (
        frozenset(v for v in value if isinstance(v, str))
        if isinstance(value, list)
        else frozenset()
    )


async def discover(http: httpx.AsyncClient, iss: str) -> SmartConfiguration:
    """Read and check ``<iss>/.well-known/smart-configuration``."""
    status, data = await _get_json(
        http, "GET", iss.rstrip("/") + WELL_KNOWN, headers={"Accept": "application/json"}
    )
    if status != 200 or not isinstance(data, dict):
        raise LaunchError(f"the EHR's smart-configuration could not be read (HTTP {status})", 502)
    capabilities = data.get("capabilities")
    methods = data.get("code_challenge_methods_supported")
    config = SmartConfiguration(
        authorization_endpoint=_endpoint(data, "authorization_endpoint"),
        token_endpoint=_endpoint(data, "token_endpoint"),
        capabilities=_strings(capabilities),
        code_challenge_methods=_strings(methods),
    )
    if "S256" not in config.code_challenge_methods:
        raise LaunchError("the EHR's authorization server does not offer PKCE S256", 502)
    if "launch-ehr" not in config.capabilities:
        raise LaunchError("the EHR's authorization server does not offer the EHR launch", 502)
    return config


@dataclass(frozen=True)
class AuthorizationRequest:
    url: str
    state: str
    code_verifier: str


def authorization_request(
    config: SmartConfiguration, client: ClientConfig, *, iss: str, launch: str
) -> AuthorizationRequest:
    """The authorization URL with a fresh state and PKCE S256 (RFC 7636) challenge."""
    state = generate_token(43)
    verifier = generate_token(64)
    url = prepare_grant_uri(
        config.authorization_endpoint,
        client.client_id,
        "code",
        redirect_uri=client.redirect_uri,
        scope=client.scope,
        state=state,
        aud=iss,
        launch=launch,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
    )
    return AuthorizationRequest(url=url, state=state, code_verifier=verifier)


@dataclass(frozen=True)
class TokenResponse:
    access_token: str = field(repr=False)
    patient: str
    scope: str
    expires_in: float | None


async def exchange_code(
    http: httpx.AsyncClient,
    token_endpoint: str,
    client: ClientConfig,
    *,
    code: str,
    code_verifier: str,
) -> TokenResponse:
    """Trade the authorization code for an access token and the launch's patient."""
    body = prepare_token_request(
        "authorization_code",
        code=code,
        redirect_uri=client.redirect_uri,
        code_verifier=code_verifier,
        **({} if client.confidential else {"client_id": client.client_id}),
    )
    auth = httpx.BasicAuth(client.client_id, client.client_secret) if client.confidential else None
    status, data = await _get_json(
        http,
        "POST",
        token_endpoint,
        content=body,
        auth=auth,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
    )
    if status != 200 or not isinstance(data, dict):
        error = data.get("error") if isinstance(data, dict) else None
        reason = f" ({error})" if isinstance(error, str) and error.isascii() else ""
        raise LaunchError(f"the EHR refused the token request{reason[:60]}", 401)
    token = data.get("access_token")
    token_type = data.get("token_type")
    patient = data.get("patient")
    if not isinstance(token, str) or not token:
        raise LaunchError("the token response has no access_token", 502)
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise LaunchError("the token response's token_type is not Bearer", 502)
    if not isinstance(patient, str) or not patient:
        raise LaunchError("the EHR gave no patient context for the launch", 400)
    expires_in = data.get("expires_in")
    scope = data.get("scope")
    return TokenResponse(
        access_token=token,
        patient=patient,
        scope=scope if isinstance(scope, str) else "",
        expires_in=float(expires_in) if isinstance(expires_in, int | float) else None,
    )
