"""Which fhirServer a hook call may send us to: the issuer's allowlist with auth, loopback http
only in development — decided before any connection is made."""

from __future__ import annotations

import pytest

from service.security import ClientIdentity, FhirServerNotAllowed, check_fhir_server
from service.settings import Settings

from .tokens import FHIR, ISS

REQUIRED = Settings(auth="required", trust_file="unused.json")
OFF = Settings(auth="off")
OFF_NO_LOOPBACK = Settings(auth="off", fhir_allow_loopback_http=False)
CLIENT = ClientIdentity(iss=ISS, fhir_servers=(FHIR,))


@pytest.mark.parametrize(
    "url",
    [FHIR, FHIR + "/", "https://EHR.example.org/fhir/r4", "https://ehr.example.org:443/fhir/r4"],
)
def test_allowlisted_server_passes_with_auth(url: str) -> None:
    check_fhir_server(CLIENT, url, REQUIRED)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://attacker.example.com/fhir/r4", "not on the allowlist"),
        ("https://ehr.example.org/fhir/r4/Patient", "not on the allowlist"),
        ("https://ehr.example.org/FHIR/r4", "not on the allowlist"),
        ("https://ehr.example.org:8443/fhir/r4", "not on the allowlist"),
        ("https://ehr.example.org.attacker.com/fhir/r4", "not on the allowlist"),
        ("http://ehr.example.org/fhir/r4", "https"),
        ("http://127.0.0.1:8080/fhir", "https"),
        ("https://user:pw@ehr.example.org/fhir/r4", "credentials"),
        ("https://ehr.example.org/fhir/r4?_format=json", "query"),
        ("file:///etc/passwd", "scheme"),
        ("not a url", "scheme"),
        ("", "not a URL"),
    ],
)
def test_other_servers_are_refused_with_auth(url: str, message: str) -> None:
    with pytest.raises(FhirServerNotAllowed, match=message):
        check_fhir_server(CLIENT, url, REQUIRED)


def test_no_identity_means_no_server_with_auth() -> None:
    with pytest.raises(FhirServerNotAllowed, match="authenticated"):
        check_fhir_server(None, FHIR, REQUIRED)


def test_an_issuer_without_fhir_servers_may_only_prefetch() -> None:
    with pytest.raises(FhirServerNotAllowed, match="allowlist"):
        check_fhir_server(ClientIdentity(iss=ISS), FHIR, REQUIRED)


@pytest.mark.parametrize(
    "url",
    [
        "https://any.example.org/fhir",
        "http://127.0.0.1:8080/fhir",
        "http://127.8.9.10/fhir",
        "http://localhost:8080/fhir",
        "http://[::1]:8080/fhir",
    ],
)
def test_development_allows_https_and_loopback_http(url: str) -> None:
    check_fhir_server(None, url, OFF)


@pytest.mark.parametrize(
    "url",
    [
        "http://ehr.example.org/fhir",
        "http://10.0.0.5/fhir",
        "http://169.254.169.254/latest",  # cloud metadata
        "http://localhost.attacker.com/fhir",
        "http://0.0.0.0:8080/fhir",
    ],
)
def test_development_refuses_plain_http_off_loopback(url: str) -> None:
    with pytest.raises(FhirServerNotAllowed, match="https"):
        check_fhir_server(None, url, OFF)


def test_loopback_http_can_be_switched_off() -> None:
    with pytest.raises(FhirServerNotAllowed, match="https"):
        check_fhir_server(None, "http://127.0.0.1:8080/fhir", OFF_NO_LOOPBACK)
    check_fhir_server(None, "https://127.0.0.1:8443/fhir", OFF_NO_LOOPBACK)
