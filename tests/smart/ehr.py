"""A test EHR for the SMART app: an authorization server that follows SMART App Launch 2.x
(EHR launch, authorization code with PKCE S256) in front of a real FHIR server.

What an EHR does, and nothing it need not:

* ``GET  /fhir/.well-known/smart-configuration``: the discovery document (``iss`` is
  ``<base>/fhir``);
* ``GET  /authorize``: checks every parameter SMART 2.x requires (``response_type=code``,
  a registered ``client_id`` and exact ``redirect_uri``, ``state``, ``aud`` equal to the
  FHIR base, a known ``launch``, ``code_challenge`` with method ``S256``) and shows a
  consent page whose "Authorize" button issues a single-use code;
* ``POST /token``: the code once, for the same client and redirect URI, with the
  ``code_verifier`` whose S256 hash is the challenge (RFC 7636); confidential clients
  authenticate with HTTP Basic; answers ``access_token``, ``patient`` and ``scope``;
* ``/fhir/...``: the FHIR API, which accepts only a token it issued and forwards the read
  to the real FHIR server (Medplum, tests/fhir_server/) with that server's own token.

Every request is recorded (``token_requests``, ``fhir_requests``) so tests can check
what the app sent.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the OAuth token request's format)."""
    return dict(parse_qsl((await request.body()).decode()))


def s256(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA256(ASCII(code_verifier))), unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass
class Client:
    client_id: str
    redirect_uri: str
    secret: str = ""


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    patient: str
    used: bool = False


@dataclass
class SmartEhr:
    """The EHR's state; :meth:`app` serves it. ``base`` is set once it listens."""

    fhir_base: str
    """The real FHIR server reads are forwarded to."""
    fhir_token: str
    base: str = ""
    clients: dict[str, Client] = field(default_factory=dict)
    launches: dict[str, str] = field(default_factory=dict)
    """launch id -> patient id."""
    pending: dict[str, dict[str, str]] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    """issued access token -> patient id."""
    token_requests: list[dict[str, str]] = field(default_factory=list)
    fhir_requests: list[dict[str, Any]] = field(default_factory=list)
    offer_s256: bool = True
    expires_in: int = 3600
    """The token response's ``expires_in`` (seconds)."""

    @property
    def iss(self) -> str:
        return self.base + "/fhir"

    def register(self, client_id: str, redirect_uri: str, secret: str = "") -> None:
        self.clients[client_id] = Client(client_id, redirect_uri, secret)

    def new_launch(self, patient_id: str) -> str:
        launch = secrets.token_urlsafe(12)
        self.launches[launch] = patient_id
        return launch

    # --- endpoints ----------------------------------------------------------------------

    async def configuration(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.base,
                "authorization_endpoint": self.base + "/authorize",
                "token_endpoint": self.base + "/token",
                "grant_types_supported": ["authorization_code"],
                "response_types_supported": ["code"],
                "scopes_supported": ["launch", "patient/*.rs", "openid", "fhirUser"],
                "code_challenge_methods_supported": ["S256"] if self.offer_s256 else [],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "capabilities": [
                    "launch-ehr",
                    "client-public",
                    "client-confidential-symmetric",
                    "context-ehr-patient",
                    "permission-v2",
                ],
            }
        )

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        client = self.clients.get(q.get("client_id", ""))
        if client is None or q.get("redirect_uri") != client.redirect_uri:
            return HTMLResponse("unknown client or redirect_uri", 400)
        problems = []
        if q.get("response_type") != "code":
            problems.append("response_type")
        if not q.get("state"):
            problems.append("state")
        if q.get("aud") != self.iss:
            problems.append("aud")
        if q.get("launch") not in self.launches:
            problems.append("launch")
        if q.get("code_challenge_method") != "S256" or len(q.get("code_challenge", "")) < 43:
            problems.append("code_challenge")
        if "launch" not in q.get("scope", "").split():
            problems.append("scope")
        if problems:
            error = {"error": "invalid_request", "state": q.get("state", "")}
            return RedirectResponse(f"{client.redirect_uri}?{urlencode(error)}", 302)
        ticket = secrets.token_urlsafe(16)
        self.pending[ticket] = dict(q)
        return HTMLResponse(
            "<!doctype html><title>Test EHR: authorize</title>"
            "<h1>Authorize Liver CDS?</h1>"
            f"<p>Client {html.escape(client.client_id)} asks for: "
            f"{html.escape(q.get('scope', ''))}</p>"
            f'<form method="post" action="/authorize/approve">'
            f'<input type="hidden" name="ticket" value="{ticket}">'
            '<button type="submit" id="approve">Authorize</button></form>'
        )

    async def approve(self, request: Request) -> Response:
        form = await _form(request)
        params = self.pending.pop(form.get("ticket", ""), None)
        if params is None:
            return HTMLResponse("unknown ticket", 400)
        code = self.issue_code(params)
        query = urlencode({"code": code, "state": params["state"]})
        return RedirectResponse(f"{params['redirect_uri']}?{query}", 303)

    def issue_code(self, params: dict[str, str]) -> str:
        """The code the user's approval of ``params`` (an authorize request) gives."""
        code = secrets.token_urlsafe(24)
        self.grants[code] = Grant(
            client_id=params["client_id"],
            redirect_uri=params["redirect_uri"],
            challenge=params["code_challenge"],
            scope=params["scope"],
            patient=self.launches[params["launch"]],
        )
        return code

    async def token(self, request: Request) -> Response:
        form = await _form(request)
        self.token_requests.append(form)
        client_id = form.get("client_id", "")
        basic = request.headers.get("authorization", "")
        if basic.startswith("Basic "):
            user, _, password = base64.b64decode(basic[6:]).decode().partition(":")
            registered = self.clients.get(user)
            if registered is None or not secrets.compare_digest(password, registered.secret):
                return JSONResponse({"error": "invalid_client"}, 401)
            client_id = user
        client = self.clients.get(client_id)
        if client is None or (client.secret and not basic):
            return JSONResponse({"error": "invalid_client"}, 401)
        grant = self.grants.get(form.get("code", ""))
        if form.get("grant_type") != "authorization_code" or grant is None:
            return JSONResponse({"error": "invalid_grant"}, 400)
        if grant.used:  # a replayed code is refused (RFC 6749 4.1.2)
            return JSONResponse({"error": "invalid_grant"}, 400)
        grant.used = True
        verifier = form.get("code_verifier", "")
        if (
            grant.client_id != client.client_id
            or form.get("redirect_uri") != grant.redirect_uri
            or not verifier
            or s256(verifier) != grant.challenge
        ):
            return JSONResponse({"error": "invalid_grant"}, 400)
        access_token = secrets.token_urlsafe(32)
        self.tokens[access_token] = grant.patient
        return JSONResponse(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "scope": grant.scope,
                "patient": grant.patient,
            },
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    async def fhir(self, request: Request) -> Response:
        path = request.path_params["path"]
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        self.fhir_requests.append(
            {"path": path, "query": str(request.query_params), "token_ok": token in self.tokens}
        )
        if token not in self.tokens:
            return JSONResponse({"resourceType": "OperationOutcome"}, 401)
        async with httpx.AsyncClient(timeout=30) as http:
            upstream = await http.get(
                f"{self.fhir_base}/{path}",
                params=request.query_params,
                headers={
                    "Authorization": f"Bearer {self.fhir_token}",
                    "Accept": "application/fhir+json",
                },
            )
        body = upstream.content.replace(self.fhir_base.encode(), self.iss.encode())
        return Response(body, upstream.status_code, media_type="application/fhir+json")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/fhir/.well-known/smart-configuration", self.configuration),
                Route("/authorize", self.authorize),
                Route("/authorize/approve", self.approve, methods=["POST"]),
                Route("/token", self.token, methods=["POST"]),
                Route("/fhir/{path:path}", self.fhir),
            ]
        )
