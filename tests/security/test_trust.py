"""The trust file: a good one loads; every mistake stops start-up with a message saying where."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from service.security import TrustFileError, load_trust_file, parse_trust

from .tokens import FHIR, ISS, JKU, SigningKey

SANDBOX_FILE = Path(__file__).resolve().parents[2] / "deploy" / "trust.sandbox.json"


def test_shipped_sandbox_example_loads_as_development_only() -> None:
    trust = load_trust_file(SANDBOX_FILE)
    sandbox = trust.issuers["https://sandbox.cds-hooks.org"]
    assert sandbox.development_only
    assert trust.development_only_issuers == ("https://sandbox.cds-hooks.org",)
    key = sandbox.keys["44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"]
    assert key.accepts("ES384") and not key.accepts("RS384") and not key.accepts("ES256")
    assert sandbox.jku == ("https://sandbox.cds-hooks.org/.well-known/jwks.json",)


def test_full_entry(ec_key: SigningKey, rsa_key: SigningKey) -> None:
    trust = parse_trust(
        {
            "description": "production",
            "issuers": [
                {
                    "iss": ISS,
                    "jwks": {"keys": [ec_key.public_jwk, rsa_key.public_jwk]},
                    "jku": [JKU],
                    "tenants": ["t-1"],
                    "fhir_servers": ["HTTPS://EHR.example.org:443/fhir/r4/"],
                }
            ],
        }
    )
    entry = trust.issuers[ISS]
    assert set(entry.keys) == {ec_key.kid, rsa_key.kid}
    assert entry.jku == (JKU,)
    assert entry.tenants == ("t-1",)
    assert entry.fhir_servers == (FHIR,)  # normalised: host case, default port, slash
    assert not entry.development_only


def _entry(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"iss": ISS, "jku": [JKU], "fhir_servers": [FHIR]}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "top level"),
        ({}, "'issuers'"),
        ({"issuers": []}, "'issuers'"),
        ({"issuers": [_entry()], "extra": 1}, "unknown top-level field(s): extra"),
        ({"issuers": [_entry(fhir_server=[FHIR])]}, "issuers[0]: unknown field(s): fhir_server"),
        ({"issuers": [_entry(iss="")]}, "issuers[0].iss"),
        ({"issuers": [_entry(), _entry()]}, "issuers[1]: issuer"),
        ({"issuers": [_entry(jku=None)]}, "needs 'jwks'"),
        ({"issuers": [_entry(jku="https://x.example.org/j")]}, "issuers[0].jku: must be an array"),
        (
            {"issuers": [_entry(jku=["http://ehr.example.org/jwks"])]},
            "issuers[0].jku[0]: must be https",
        ),
        ({"issuers": [_entry(jku=["ftp://ehr.example.org/jwks"])]}, "issuers[0].jku[0]"),
        (
            {"issuers": [_entry(fhir_servers=["http://ehr.example.org/fhir"])]},
            "fhir_servers[0]: must be https",
        ),
        (
            {"issuers": [_entry(fhir_servers=["http://127.0.0.1:8080/fhir"])]},
            "fhir_servers[0]: must be https",
        ),
        ({"issuers": [_entry(fhir_servers=["https://u:p@ehr.example.org/fhir"])]}, "credentials"),
        ({"issuers": [_entry(fhir_servers=["https://ehr.example.org/fhir?x=1"])]}, "query"),
        ({"issuers": [_entry(tenants=[1])]}, "tenants"),
        ({"issuers": [_entry(development_only="yes")]}, "development_only"),
        ({"issuers": [_entry(jwks={"keys": []})]}, "key set is empty"),
        ({"issuers": [_entry(jwks=[])]}, "'keys' array"),
        (
            {"issuers": [_entry(jwks={"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]})]},
            "symmetric",
        ),
    ],
)
def test_bad_documents_are_refused_with_their_place(document: Any, message: str) -> None:
    with pytest.raises(TrustFileError) as info:
        parse_trust(document)
    assert message in str(info.value)


def test_private_keys_are_refused(ec_key: SigningKey) -> None:
    import jwt

    private_jwk = json.loads(jwt.get_algorithm_by_name("ES384").to_jwk(ec_key.private))
    private_jwk["kid"] = "leaked"
    with pytest.raises(TrustFileError, match="private key members"):
        parse_trust({"issuers": [_entry(jwks={"keys": [private_jwk]})]})


def test_keys_need_a_kid_and_a_signature_use(ec_key: SigningKey) -> None:
    no_kid = {k: v for k, v in ec_key.public_jwk.items() if k != "kid"}
    with pytest.raises(TrustFileError, match="kid"):
        parse_trust({"issuers": [_entry(jwks={"keys": [no_kid]})]})
    with pytest.raises(TrustFileError, match="'use' is 'enc'"):
        parse_trust({"issuers": [_entry(jwks={"keys": [{**ec_key.public_jwk, "use": "enc"}]})]})
    with pytest.raises(TrustFileError, match="duplicate kid"):
        parse_trust({"issuers": [_entry(jwks={"keys": [ec_key.public_jwk, ec_key.public_jwk]})]})


def test_weak_rsa_keys_are_refused() -> None:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    jwk = json.loads(jwt.get_algorithm_by_name("RS384").to_jwk(small.public_key()))
    jwk["kid"] = "small"
    with pytest.raises(TrustFileError, match="2048 bits"):
        parse_trust({"issuers": [_entry(jwks={"keys": [jwk]})]})


def test_jku_may_be_plain_http_only_on_loopback() -> None:
    trust = parse_trust({"issuers": [_entry(jku=["http://127.0.0.1:9999/jwks.json"])]})
    assert trust.issuers[ISS].jku == ("http://127.0.0.1:9999/jwks.json",)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(TrustFileError, match=r"nope\.json.*cannot read"):
        load_trust_file(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(TrustFileError, match=r"broken\.json.*not valid JSON"):
        load_trust_file(broken)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"issuers": [{"iss": ISS}]}))
    with pytest.raises(TrustFileError, match=r"wrong.json.*issuers\[0\]: needs 'jwks'"):
        load_trust_file(wrong)
