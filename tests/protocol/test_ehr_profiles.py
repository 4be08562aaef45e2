"""EHR profiles (fixtures/ehr-profiles/) replayed end to end through the real HTTP app.

Each profile is a request as the vendor's public CDS Hooks documentation describes it,
sent to ``create_app`` with ``LIVER_CDS_AUTH=required``, the real trust file, the real
SQLite store and a JWT signed with a key this test generates; the JWK Sets and (for the
profile without prefetch) the FHIR server are served by an in-process transport, so the
calls go through the same code a production call goes through: authentication (jku,
claims), protocol check, fhirServer policy, FHIR fetch, assessment, cards, feedback.

* Epic: RS384, ``sub``, ``nbf`` five minutes before ``iat``, one issuer and one ``jku``
  per organisation; complete prefetch; ``selectionBehavior`` any, one action per
  suggestion; topic codes stable enough to key the EHR's override persistence; feedback
  with Epic's ``overrideReasons`` spelling and an HL7 reason.
* Oracle Health: patient-view 1.0 context, no prefetch (the service reads the registered
  FHIR server with SMART v1 scopes), ``tenant`` claim; links only to registered URLs
  (the sources' and the SMART app's); ``critical`` (a pop-up there) only where the §8
  order checks call for it.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from security.app_helpers import running, settings_for, write_trust

from service.render.content import load_content

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "fixtures" / "ehr-profiles"
FIXTURES = ROOT / "fixtures"
PUBLIC_URL = "https://cds.example.org"
SERVICE_ID = "liver-metastasis-resectability"
ORDER_SERVICE_ID = "liver-directed-order-check"
HOOK_PATH = f"/cds-services/{SERVICE_ID}"
HOOK_AUD = PUBLIC_URL + HOOK_PATH
FEEDBACK_AUD = HOOK_AUD + "/feedback"
EVALUATED_AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # the fixtures' evaluation time
HL7_REASONS = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"


def clock() -> datetime:
    return EVALUATED_AT


def profile(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PROFILES / f"{name}.json").read_text())
    return data


def base_request(fixture: str, patient_id: str) -> dict[str, Any]:
    """The base fixture's request, its patient id replaced everywhere by the EHR's."""
    path = FIXTURES / fixture
    text = path.read_text()
    old_id = json.loads(text)["context"]["patientId"]
    data: dict[str, Any] = json.loads(
        text.replace(f'"{old_id}"', f'"{patient_id}"').replace(
            f"Patient/{old_id}", f"Patient/{patient_id}"
        )
    )
    return data


@dataclass(frozen=True)
class Key:
    kid: str
    private: rsa.RSAPrivateKey

    @property
    def jwk(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            jwt.get_algorithm_by_name("RS384").to_jwk(self.private.public_key())
        )
        data.update(kid=self.kid, alg="RS384", use="sig")
        return data


def new_key(kid: str) -> Key:
    return Key(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))


def sign(key: Key, header: dict[str, Any], claims: dict[str, Any]) -> str:
    headers = {**header, "kid": key.kid}
    headers.pop("alg", None)
    return jwt.encode(claims, key.private, algorithm=header.get("alg", "RS384"), headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + token}


class Ehr:
    """The EHR side of the wire: its JWK Set URLs and (optionally) its FHIR server."""

    def __init__(self) -> None:
        self.jwks: dict[str, dict[str, Any]] = {}
        self.fhir: dict[str, dict[str, Any]] = {}
        """FHIR base URL -> {"token": ..., "patient": ..., "data": prefetch-shaped resources}."""
        self.requests: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.requests.append(url)
        if url in self.jwks:
            return httpx.Response(200, json=self.jwks[url])
        for base, server in self.fhir.items():
            if url.startswith(base + "/"):
                return self._fhir(request, url.removeprefix(base + "/"), server)
        return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": []})

    @staticmethod
    def _fhir(request: httpx.Request, path: str, server: dict[str, Any]) -> httpx.Response:
        if request.headers.get("authorization") != "Bearer " + server["token"]:
            return httpx.Response(401)
        parts = urlsplit(path)
        data = server["data"]
        if parts.path == f"Patient/{server['patient']}":
            return httpx.Response(200, json=data["patient"])
        query = parse_qs(parts.query)
        if query.get("patient") != [server["patient"]]:
            return httpx.Response(403)
        key = {"Condition": "conditions", "Observation": "observations", "Procedure": "procedures"}
        resource = data.get(key.get(parts.path, ""))
        if resource is None:
            return httpx.Response(404)
        return httpx.Response(200, json=resource)


@asynccontextmanager
async def ehr_app(
    tmp_path: Path, issuers: list[dict[str, Any]], ehr: Ehr, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    trust = write_trust(tmp_path, *issuers)
    config = settings_for(tmp_path, auth="required", trust_file=trust, **settings)
    async with running(config, http_transport=httpx.MockTransport(ehr.handle), clock=clock) as c:
        yield c


def without_uuids(body: Any) -> Any:
    if isinstance(body, dict):
        return {k: ("-" if k == "uuid" else without_uuids(v)) for k, v in body.items()}
    if isinstance(body, list):
        return [without_uuids(v) for v in body]
    return body


def same_cards(fetched: list[dict[str, Any]], prefetched: list[dict[str, Any]]) -> bool:
    """The same cards, whichever way the data came: only a data-quality note may say where
    it found a problem ("FHIR server 'observations' page 1" against "prefetch")."""

    def comparable(cards: list[dict[str, Any]]) -> Any:
        out = without_uuids(copy.deepcopy(cards))
        for card in out:
            lines = card.get("detail", "").splitlines()
            card["detail"] = [line for line in lines if "Data quality:" not in line]
        return out

    return bool(fetched) and comparable(fetched) == comparable(prefetched)


# --- Epic ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def epic() -> dict[str, Any]:
    return profile("epic")


@pytest.fixture(scope="module")
def epic_keys(epic: dict[str, Any]) -> dict[str, Key]:
    return {org["iss"]: new_key(org["kid"]) for org in epic["organisations"]}


def epic_token(
    epic: dict[str, Any], org: dict[str, Any], key: Key, aud: str, **changes: Any
) -> str:
    now = int(time.time())
    spec = epic["jwt"]
    claims: dict[str, Any] = {
        **spec["claims"],
        "iss": org["iss"],
        "aud": aud,
        "iat": now,
        "nbf": now - spec["nbf_before_iat_s"],
        "exp": now + spec["exp_after_iat_s"],
        "jti": str(uuid.uuid4()),
    }
    header = {**spec["header"], "jku": changes.pop("jku", org["jku"])}
    claims.update(changes)
    return sign(key, header, claims)


def epic_setup(epic: dict[str, Any], keys: dict[str, Key]) -> tuple[Ehr, list[dict[str, Any]]]:
    ehr = Ehr()
    issuers = []
    for org in epic["organisations"]:
        ehr.jwks[org["jku"]] = {"keys": [keys[org["iss"]].jwk]}
        issuers.append({"iss": org["iss"], "jku": [org["jku"]], "fhir_servers": [org["iss"]]})
    return ehr, issuers


def epic_request(epic: dict[str, Any], org: dict[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = copy.deepcopy(epic["request"])
    request["prefetch"] = base_request(epic["base_fixture"], epic["patient_id"])["prefetch"]
    request["fhirServer"] = org["iss"]  # the organisation's FHIR endpoint
    request["hookInstance"] = str(uuid.uuid4())
    return request


async def test_epic_each_organisation_is_authenticated_with_its_own_jku(
    tmp_path: Path, epic: dict[str, Any], epic_keys: dict[str, Key]
) -> None:
    ehr, issuers = epic_setup(epic, epic_keys)
    answers = []
    async with ehr_app(tmp_path, issuers, ehr) as client:
        for org in epic["organisations"]:
            token = epic_token(epic, org, epic_keys[org["iss"]], HOOK_AUD)
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
            assert header["alg"] == "RS384" and header["jku"] == org["jku"]
            assert claims["sub"] and claims["iat"] - claims["nbf"] == 300
            response = await client.post(
                HOOK_PATH, json=epic_request(epic, org), headers=bearer(token)
            )
            assert response.status_code == 200, response.text
            answers.append(without_uuids(response.json()))
    assert answers[0]["cards"] and answers[0] == answers[1]
    fetched = [url for url in ehr.requests if url in ehr.jwks]
    assert sorted(fetched) == sorted(org["jku"] for org in epic["organisations"])
    assert not [url for url in ehr.requests if url not in ehr.jwks]  # prefetch complete


async def test_epic_a_token_naming_another_organisations_jku_is_a_bare_401(
    tmp_path: Path, epic: dict[str, Any], epic_keys: dict[str, Key]
) -> None:
    first, second = epic["organisations"]
    ehr, issuers = epic_setup(epic, epic_keys)
    async with ehr_app(tmp_path, issuers, ehr) as client:
        token = epic_token(epic, first, epic_keys[first["iss"]], HOOK_AUD, jku=second["jku"])
        response = await client.post(
            HOOK_PATH, json=epic_request(epic, first), headers=bearer(token)
        )
        signed_by_other = epic_token(epic, first, epic_keys[second["iss"]], HOOK_AUD)
        forged = await client.post(
            HOOK_PATH, json=epic_request(epic, first), headers=bearer(signed_by_other)
        )
    assert response.status_code == 401 and response.content == b""
    assert forged.status_code == 401 and forged.content == b""
    assert second["jku"] not in ehr.requests  # never fetched for the first organisation


async def test_epic_cards_have_the_shape_epic_turns_into_order_proposals(
    tmp_path: Path, epic: dict[str, Any], epic_keys: dict[str, Key]
) -> None:
    org = epic["organisations"][0]
    ehr, issuers = epic_setup(epic, epic_keys)
    expect = epic["expect"]
    async with ehr_app(tmp_path, issuers, ehr) as client:
        token = epic_token(epic, org, epic_keys[org["iss"]], HOOK_AUD)
        response = await client.post(HOOK_PATH, json=epic_request(epic, org), headers=bearer(token))
    assert response.status_code == expect["status"], response.text
    cards = response.json()["cards"]
    suggestions = [s for card in cards for s in card.get("suggestions", [])]
    assert suggestions, "the base fixture offers treatment options"
    for card in cards:
        assert card["indicator"] in expect["indicators_allowed"]
        if "suggestions" in card:
            assert card["selectionBehavior"] == expect["selection_behavior"]
        for suggestion in card.get("suggestions", []):
            assert len(suggestion["actions"]) == expect["actions_per_suggestion"]
            assert suggestion["uuid"]
        assert card["source"]["topic"]["system"] == expect["topic_system"]


async def test_epic_topic_codes_key_override_persistence(
    tmp_path: Path, epic: dict[str, Any], epic_keys: dict[str, Key]
) -> None:
    """Epic can remember an override per card topic. The topic must therefore name the kind
    of advice, the same on every call for the same assessment, never the patient or the
    call, and change when the advice changes (a new verdict is not silenced by an old
    override)."""
    org = epic["organisations"][0]
    ehr, issuers = epic_setup(epic, epic_keys)
    topics_shipped = set(load_content().topics)

    async def topics(request: dict[str, Any]) -> list[str]:
        token = epic_token(epic, org, epic_keys[org["iss"]], HOOK_AUD)
        response = await client.post(HOOK_PATH, json=request, headers=bearer(token))
        assert response.status_code == 200, response.text
        return [card["source"]["topic"]["code"] for card in response.json()["cards"]]

    async with ehr_app(tmp_path, issuers, ehr) as client:
        first = await topics(epic_request(epic, org))
        again = await topics(epic_request(epic, org))
        other_patient = epic_request(epic, org)
        other_patient["prefetch"] = base_request(
            "patients/r08-hcc-bone-metastases.json", epic["patient_id"]
        )["prefetch"]
        different = await topics(other_patient)
    assert first == again  # a fresh hookInstance, same assessment: same topics
    assert set(first) | set(different) <= topics_shipped
    assert first != different  # resectable vs not resectable: a different topic
    assert all(epic["patient_id"] not in code for code in first + different)


async def test_epic_feedback_with_epics_spelling_and_an_hl7_reason_is_stored(
    tmp_path: Path, epic: dict[str, Any], epic_keys: dict[str, Key]
) -> None:
    org = epic["organisations"][0]
    ehr, issuers = epic_setup(epic, epic_keys)
    async with ehr_app(tmp_path, issuers, ehr) as client:
        token = epic_token(epic, org, epic_keys[org["iss"]], HOOK_AUD)
        response = await client.post(HOOK_PATH, json=epic_request(epic, org), headers=bearer(token))
        card = response.json()["cards"][0]
        hl7 = next(r for r in card["overrideReasons"] if r["system"] == HL7_REASONS)
        feedback = {
            "feedback": [
                {
                    "card": card["uuid"],
                    "outcome": "overridden",
                    "outcomeTimestamp": "2026-06-01T12:03:00Z",
                    epic["feedback_reason_spelling"]: [
                        {"reason": hl7, "userComment": "discussed in clinic"}
                    ],
                }
            ]
        }
        stored = await client.post(
            HOOK_PATH + "/feedback",
            json=feedback,
            headers=bearer(epic_token(epic, org, epic_keys[org["iss"]], FEEDBACK_AUD)),
        )
        again = await client.post(
            HOOK_PATH + "/feedback",
            json=feedback,
            headers=bearer(epic_token(epic, org, epic_keys[org["iss"]], FEEDBACK_AUD)),
        )
    assert stored.status_code == 200, stored.text
    assert again.status_code == 200  # EHRs retry: a repeat is idempotent


# --- Oracle Health ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oracle() -> dict[str, Any]:
    return profile("oracle-health")


@pytest.fixture(scope="module")
def oracle_key(oracle: dict[str, Any]) -> Key:
    return new_key(oracle["kid"])


def oracle_setup(oracle: dict[str, Any], key: Key) -> tuple[Ehr, list[dict[str, Any]]]:
    ehr = Ehr()
    ehr.jwks[oracle["jku"]] = {"keys": [key.jwk]}
    request = oracle["request"]
    ehr.fhir[request["fhirServer"]] = {
        "token": request["fhirAuthorization"]["access_token"],
        "patient": oracle["patient_id"],
        "data": base_request(oracle["base_fixture"], oracle["patient_id"])["prefetch"],
    }
    issuers = [
        {
            "iss": oracle["iss"],
            "jku": [oracle["jku"]],
            "tenants": [oracle["tenant"]],
            "fhir_servers": [request["fhirServer"]],
        }
    ]
    return ehr, issuers


def oracle_token(oracle: dict[str, Any], key: Key, aud: str, **changes: Any) -> str:
    now = int(time.time())
    spec = oracle["jwt"]
    claims = {
        **spec["claims"],
        "iss": oracle["iss"],
        "aud": aud,
        "iat": now,
        "exp": now + spec["exp_after_iat_s"],
        "jti": str(uuid.uuid4()),
        **changes,
    }
    return sign(key, {**spec["header"], "jku": oracle["jku"]}, claims)


def oracle_request(oracle: dict[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = copy.deepcopy(oracle["request"])
    request["hookInstance"] = str(uuid.uuid4())
    return request


async def test_oracle_patient_view_without_prefetch_reads_the_registered_fhir_server(
    tmp_path: Path, oracle: dict[str, Any], oracle_key: Key
) -> None:
    ehr, issuers = oracle_setup(oracle, oracle_key)
    request = oracle_request(oracle)
    assert "prefetch" not in request and set(request["context"]) == {
        "userId",
        "patientId",
        "encounterId",
    }
    async with ehr_app(tmp_path, issuers, ehr, smart_app_url=oracle["smart_app_url"]) as client:
        response = await client.post(
            HOOK_PATH, json=request, headers=bearer(oracle_token(oracle, oracle_key, HOOK_AUD))
        )
        # The same patient with the data prefetched (a 2.0 client) gets the same cards.
        prefetched = oracle_request(oracle)
        prefetched["prefetch"] = ehr.fhir[request["fhirServer"]]["data"]
        reference = await client.post(
            HOOK_PATH,
            json=prefetched,
            headers=bearer(oracle_token(oracle, oracle_key, HOOK_AUD)),
        )
    assert response.status_code == oracle["expect"]["status"], response.text
    fhir_paths = {urlsplit(u).path.rsplit("/", 1)[-1] for u in ehr.requests if "fhir-ehr" in u}
    assert {"Condition", "Observation", oracle["patient_id"]} <= fhir_paths
    assert response.json()["cards"]
    assert same_cards(response.json()["cards"], reference.json()["cards"])


async def test_oracle_a_token_for_another_tenant_is_a_bare_401(
    tmp_path: Path, oracle: dict[str, Any], oracle_key: Key
) -> None:
    ehr, issuers = oracle_setup(oracle, oracle_key)
    async with ehr_app(tmp_path, issuers, ehr) as client:
        response = await client.post(
            HOOK_PATH,
            json=oracle_request(oracle),
            headers=bearer(oracle_token(oracle, oracle_key, HOOK_AUD, tenant="other-domain")),
        )
    assert response.status_code == 401 and response.content == b""
    assert not [u for u in ehr.requests if "fhir-ehr" in u]  # no FHIR call for a stranger


def registered_links(oracle: dict[str, Any]) -> set[str]:
    """What an Oracle Health registration allows: every source URL of cards/sources.yaml,
    the card source's documentation_url (docs/integrator.md tells the integrator to
    register them) and the SMART app."""
    content = load_content()
    sources = {source.url for source in content.sources if source.url}
    documentation = {content.documentation_url} if content.documentation_url else set()
    return sources | documentation | set(oracle["registration"]["smart_apps"])


def assert_links_registered(cards: list[dict[str, Any]], allowed: set[str]) -> None:
    for card in cards:
        for link in card.get("links", []):
            assert link["url"] in allowed, link
        assert card["source"].get("url") in (None, *allowed)


async def test_oracle_links_only_point_at_registered_urls_and_need_no_app_context(
    tmp_path: Path, oracle: dict[str, Any], oracle_key: Key
) -> None:
    """Oracle removes links that are not registered and does not pass appContext on; the
    cards lose nothing when it does: every link is a registered URL, and the SMART app reads
    the patient from its own launch (appContext carries no patient data)."""
    ehr, issuers = oracle_setup(oracle, oracle_key)
    async with ehr_app(tmp_path, issuers, ehr, smart_app_url=oracle["smart_app_url"]) as client:
        response = await client.post(
            HOOK_PATH,
            json=oracle_request(oracle),
            headers=bearer(oracle_token(oracle, oracle_key, HOOK_AUD)),
        )
    cards = response.json()["cards"]
    assert_links_registered(cards, registered_links(oracle))
    smart = [link for card in cards for link in card.get("links", []) if link["type"] == "smart"]
    assert smart and {link["url"] for link in smart} == {oracle["smart_app_url"]}
    for link in smart:
        context = link.get("appContext", "")
        assert oracle["patient_id"] not in context and "Patient" not in context


# --- critical only where the §8 order checks call for it (a pop-up in Oracle Health) -------


def _patient_fixtures() -> list[Path]:
    return sorted((FIXTURES / "patients").glob("*.json"))


def _order_cases() -> list[dict[str, Any]]:
    manifest = json.loads((FIXTURES / "orders" / "manifest.json").read_text())
    cases: list[dict[str, Any]] = manifest["orders"]
    return cases


async def test_critical_appears_only_for_order_sign_hard_stops(tmp_path: Path) -> None:
    """Every patient fixture through patient-view, every order fixture through order-sign:
    no patient-view card is ever critical; an order-sign card is critical exactly where the
    order fixture's expectation (clinical-rules §8) says so."""
    from app_harness import make_settings, running_app

    async with running_app(make_settings(), clock=clock) as app:
        for path in _patient_fixtures():
            response = await app.client.post(HOOK_PATH, json=json.loads(path.read_text()))
            assert response.status_code == 200, (path.name, response.text)
            indicators = {card["indicator"] for card in response.json()["cards"]}
            assert "critical" not in indicators, path.name
        for case in _order_cases():
            request = json.loads((FIXTURES / case["file"]).read_text())
            response = await app.client.post(f"/cds-services/{ORDER_SERVICE_ID}", json=request)
            assert response.status_code == 200, (case["file"], response.text)
            cards = response.json()["cards"]
            critical = sum(card["indicator"] == "critical" for card in cards)
            expected = sum(item["indicator"] == "critical" for item in case["expected"])
            assert critical == expected, case["file"]
            for card in cards:  # the shape Epic turns into order proposals, here too
                if "suggestions" in card:
                    assert card["selectionBehavior"] == "any", case["file"]
                assert all(len(s["actions"]) == 1 for s in card.get("suggestions", []))


def test_the_profiles_name_their_documentation_and_what_is_invented() -> None:
    for path in sorted(PROFILES.glob("*.json")):
        data = json.loads(path.read_text())
        assert data["documentation"] and data["illustrative"] and data["what_it_shows"], path
        assert (FIXTURES / data["base_fixture"]).exists(), path
