"""The order-sign service (clinical-rules §8): each liver-directed draft order checked at signing.

The fixture requests in ``fixtures/orders/`` carry, in their manifest, the finding, the
card indicator and the stops derived by hand from §8 for every order. Each is checked
here through the real HTTP app (the production path) and through the pure order check;
every response is held to the same CDS Hooks card contract as the patient-view responses.
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest
from app_harness import FakeStore, make_settings, running_app
from cds_schema import assert_valid_response
from fhir.resources.R4B.servicerequest import ServiceRequest
from pipeline_harness import FIXTURES, evaluate_request, evaluated_at, load

from service.clinical.order_checks import check_orders
from service.fhir.orders import read_draft_orders

ORDERS = FIXTURES / "orders" / "manifest.json"
MANIFEST: dict[str, Any] = (
    json.loads(ORDERS.read_text(encoding="utf-8")) if ORDERS.is_file() else {"orders": []}
)
CASES = MANIFEST["orders"]
ORDER_URL = "/cds-services/liver-directed-order-check"
PATIENT_VIEW_URL = "/cds-services/liver-metastasis-resectability"
pytestmark = pytest.mark.skipif(not CASES, reason=f"no order-sign fixtures at {ORDERS}")


def post(url: str, body: Any, store: FakeStore | None = None) -> Any:
    async def run() -> Any:
        at = evaluated_at()
        async with running_app(make_settings(), store=store, clock=lambda: at) as app:
            return await app.client.post(url, json=body)

    return asyncio.run(run())


def checked(card: dict[str, Any]) -> None:
    assert card.get("overrideReasons"), "every order card offers override reasons"
    for suggestion in card.get("suggestions", []):
        for action in suggestion["actions"]:
            ServiceRequest.model_validate(action["resource"])
    assert "&gt;" not in card["detail"] and "&lt;" not in card["detail"]


@pytest.mark.parametrize("case", CASES, ids=[c["file"].split("/")[-1][:-5] for c in CASES])
def test_each_order_gets_the_card_that_section_8_gives_it(case: dict[str, Any]) -> None:
    request = load(case["file"])
    store = FakeStore()
    response = post(ORDER_URL, request, store)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_valid_response(body)
    cards = body["cards"]
    expected = [e for e in case["expected"] if e["indicator"] is not None]
    assert len(cards) == case["cards"] == len(expected)
    assert [c["indicator"] for c in cards] == [e["indicator"] for e in expected]
    for card in cards:
        checked(card)
    [record] = store.audits
    assert record.service_id == "liver-directed-order-check"


@pytest.mark.parametrize("case", CASES, ids=[c["file"].split("/")[-1][:-5] for c in CASES])
def test_the_order_check_finds_what_the_manifest_derived_by_hand(case: dict[str, Any]) -> None:
    request = load(case["file"])
    assessment = evaluate_request(request, at=evaluated_at()).assessment
    orders, _ = read_draft_orders(
        request["context"]["draftOrders"], frozenset(assessment.facts.liver_conditions)
    )
    found = [
        (f.order.ref, f.finding, f.indicator, [s.code for s in f.stops])
        for f in check_orders(assessment, orders)
    ]
    expected = [
        (e["order"], e["finding"], e["indicator"], e["stops"])
        for e in case["expected"]
        if e["finding"] != "not-checked"  # rule 0: nothing is checked at all
    ]
    assert found == expected


def test_an_accepted_patient_view_suggestion_signed_as_an_order_agrees() -> None:
    # The round trip: the patient-view card's proposal, put into draftOrders, is checked and
    # agrees, so the clinician who follows the advice is not nagged at signing.
    request = load("patients/r21-colon-right-icd10.json")
    view = post(PATIENT_VIEW_URL, request).json()
    proposals = [
        s["actions"][0]["resource"] for s in view["cards"][0]["suggestions"] if s["isRecommended"]
    ]
    assert proposals
    order_sign = copy.deepcopy(request)
    order_sign["hook"] = "order-sign"
    order_sign["context"]["draftOrders"] = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {**proposal, "id": f"signed-{i}", "status": "draft"}}
            for i, proposal in enumerate(proposals)
        ],
    }
    response = post(ORDER_URL, order_sign)
    assert response.status_code == 200
    assert response.json() == {"cards": []}


def _order_sign(draft_orders: Any) -> dict[str, Any]:
    request = load("patients/r21-colon-right-icd10.json")
    request["hook"] = "order-sign"
    if draft_orders is not ...:
        request["context"]["draftOrders"] = draft_orders
    return request


@pytest.mark.parametrize(
    ("draft_orders", "message"),
    [
        (..., "context.draftOrders is required"),
        (None, "context.draftOrders is required"),
        ([], "context.draftOrders must be a FHIR Bundle, not array"),
        ({"resourceType": "ServiceRequest"}, "must be a FHIR Bundle, not ServiceRequest"),
        ({"resourceType": "Bundle", "entry": {}}, "context.draftOrders.entry must be an array"),
    ],
)
def test_bad_draft_orders_are_a_400_naming_the_field(draft_orders: Any, message: str) -> None:
    response = post(ORDER_URL, _order_sign(draft_orders))
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_entries_that_are_not_service_requests_are_ignored_never_a_5xx() -> None:
    bundle = {
        "resourceType": "Bundle",
        "entry": [
            "junk",
            {},
            {"resource": {"resourceType": "MedicationRequest", "id": "m1"}},
            {"resource": {"resourceType": "ServiceRequest", "id": "s1", "code": "x"}},
            {"resource": {"resourceType": "ServiceRequest", "id": "s2"}},
        ],
    }
    response = post(ORDER_URL, _order_sign(bundle))
    assert response.status_code == 200
    assert response.json() == {"cards": []}


def test_a_patient_view_request_sent_to_the_order_check_is_a_400() -> None:
    response = post(ORDER_URL, load("patients/r21-colon-right-icd10.json"))
    assert response.status_code == 400
    assert "hook must be 'order-sign'" in response.json()["error"]


def test_discovery_declares_both_services_with_the_same_prefetch() -> None:
    services = {s["id"]: s for s in post_get("/cds-services")["services"]}
    view = services["liver-metastasis-resectability"]
    check = services["liver-directed-order-check"]
    assert (view["hook"], check["hook"]) == ("patient-view", "order-sign")
    assert check["prefetch"] == view["prefetch"]
    assert check["title"] and check["description"]


def test_feedback_on_an_order_card_is_stored_under_its_service() -> None:
    async def run() -> FakeStore:
        store = FakeStore()
        async with running_app(make_settings(), store=store) as app:
            response = await app.client.post(
                f"{ORDER_URL}/feedback",
                json={
                    "feedback": [
                        {
                            "card": "8b7a9a9e-2a63-4d52-9d0f-3f9f1e2b8c11",
                            "outcome": "overridden",
                            "overrideReason": {
                                "reason": {
                                    "system": "https://liver-cds.org/fhir/CodeSystem/override-reason",
                                    "code": "already-reviewed-by-mdt",
                                }
                            },
                            "outcomeTimestamp": "2026-06-01T12:05:00Z",
                        }
                    ]
                },
            )
            assert response.status_code == 200, response.text
        return store

    store = asyncio.run(run())
    [item] = store.feedback
    assert item.service_id == "liver-directed-order-check"


def post_get(url: str) -> Any:
    async def run() -> Any:
        async with running_app(make_settings()) as app:
            return (await app.client.get(url)).json()

    return asyncio.run(run())


def test_a_stop_card_never_suggests_the_stopped_order_or_what_the_same_stop_holds_for() -> None:
    """§8: the stop card offers "the options the assessment does offer" as suggestions. Rule
    12a recommends TACE to this jaundiced patient, and jaundice stops TACE, TARE and HAIC and
    any resection: the card that stops the TACE must not propose TACE (or TARE, HAIC, a
    resection) instead. What is left: systemic therapy and MDT review."""
    request = load("orders/o-critical-tace-recommended-jaundice.json")
    evaluation = evaluate_request(request, at=evaluated_at())
    assert "tace" in evaluation.assessment.offered  # the disagreement this test is about
    [card] = evaluation.cards
    assert card["indicator"] == "critical"
    proposed = {
        coding["code"]
        for suggestion in card["suggestions"]
        for action in suggestion["actions"]
        for coding in action["resource"]["code"]["coding"]
    }
    assert proposed & {"tace", "tare", "haic", "resection-local"} == set()
    assert "mdt-review" in proposed
    instead = card["detail"].split("offers instead")[1].split("Advisory")[0]
    assert "TACE" not in instead and "TARE" not in instead


def test_a_hemihepatectomy_at_child_pugh_c_without_cirrhosis_is_stopped_like_one_at_b() -> None:
    """§8 stops a hemihepatectomy at Child-Pugh B as critical; Child-Pugh C is stopped for
    every order only with cirrhosis or hcc. Colorectal metastases, no cirrhosis, INR 2.5,
    albumin 2.5 g/dL, severe ascites: Child-Pugh C 11 (rule 4a). The right hepatectomy was
    only "cannot be checked yet" (info) where the same patient at Child-Pugh B got a critical
    stop: the Child-Pugh stop holds for class B or worse."""
    from clinical import builders as b

    from service.clinical.engine import assess
    from service.fhir.orders import DraftOrder

    resources = [
        r
        for r in b.colorectal_right()
        if r.get("id") not in ("alb", "inr")  # replaced below
    ] + [
        b.lab_obs("alb", "1751-7", 2.5, "g/dL"),
        b.lab_obs("inr", "6301-6", 2.5, "{INR}"),
        b.condition("ascites", b.ICD, "R18.8", severity="24484000"),
    ]
    assessment = assess(resources, patient_id=b.PID, at=b.AT)
    cp = assessment.scores.child_pugh
    assert cp is not None and cp.category == "C" and not assessment.facts.cirrhosis
    assert assessment.rule == "4a"
    order = DraftOrder("ServiceRequest/rh", frozenset({"resection-right-hepatectomy"}), "47130")
    [finding] = check_orders(assessment, [order])
    assert finding.indicator == "critical"
    assert [s.code for s in finding.stops] == ["hemihepatectomy-child-pugh-b"]


# --- reading the orders ----------------------------------------------------------------------

CPT = "http://www.ama-assn.org/go/cpt"


def _bundle(*requests: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "entry": [{"resource": r} for r in requests]}


def _request(rid: str, code: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": rid,
        "status": "draft",
        "intent": "order",
        "code": {"coding": [{"system": CPT, "code": code}]},
        **extra,
    }


def test_a_trisegmentectomy_is_read_as_either_hemihepatectomy() -> None:
    [order], _ = read_draft_orders(_bundle(_request("t", "47122")))
    assert order.options == {"resection-right-hepatectomy", "resection-left-hepatectomy"}


def test_an_embolisation_code_is_tace_only_when_the_order_points_at_the_liver() -> None:
    # CPT 37243 also codes uterine and renal embolisation: read as TACE only with a liver
    # body site or a liver Condition as the order's reason.
    liver_site = {"coding": [{"system": "http://snomed.info/sct", "code": "48521005"}]}
    orders, _ = read_draft_orders(
        _bundle(
            _request("plain", "37243"),
            _request("site", "37243", bodySite=[liver_site]),
            _request("reason", "37243", reasonReference=[{"reference": "Condition/mets"}]),
        ),
        frozenset({"Condition/mets"}),
    )
    assert [(o.ref, sorted(o.options)) for o in orders] == [
        ("ServiceRequest/site", ["tace"]),
        ("ServiceRequest/reason", ["tace"]),
    ]


def test_an_embolisation_whose_reason_code_is_a_liver_malignancy_is_tace() -> None:
    """An order's reason given as a code (reasonCode C22.0 or C78.7, or SNOMED 94381002),
    as EHRs attach a diagnosis to an order, points at the liver as a reasonReference does:
    otherwise TACE ordered as CPT 37243 for a jaundiced HCC would get no check at all. A
    secondary without a site (C79.9) or a non-liver code does not."""

    def reason(system: str, code: str) -> dict[str, Any]:
        return {"reasonCode": [{"coding": [{"system": system, "code": code}]}]}

    icd = "http://hl7.org/fhir/sid/icd-10-cm"
    orders, _ = read_draft_orders(
        _bundle(
            _request("hcc", "37243", **reason(icd, "C22.0")),
            _request("mets", "37243", **reason(icd, "C78.7")),
            _request("sct", "37243", **reason("http://snomed.info/sct", "94381002")),
            _request("fibroid", "37243", **reason(icd, "D25.9")),
            _request("no-site", "37243", **reason(icd, "C79.9")),
        )
    )
    assert [(o.ref, sorted(o.options)) for o in orders] == [
        ("ServiceRequest/hcc", ["tace"]),
        ("ServiceRequest/mets", ["tace"]),
        ("ServiceRequest/sct", ["tace"]),
    ]


def test_an_icd_10_pcs_resection_code_is_a_liver_directed_order() -> None:
    """§8: a ServiceRequest is liver-directed when its code is "a resection code of
    fhir-mapping §8", which lists ICD-10-PCS 0FT1*/0FT2* (right/left lobe) and 0FB0*-0FB2*
    (excision, not a biopsy: 7th character X) beside CPT. A right hepatectomy ordered as
    0FT10ZZ after a previous hemihepatectomy was not checked at all."""
    pcs = "http://www.cms.gov/Medicare/Coding/ICD10"

    def coded(rid: str, code: str) -> dict[str, Any]:
        request = _request(rid, code)
        request["code"]["coding"][0]["system"] = pcs
        return request

    orders, _ = read_draft_orders(
        _bundle(
            coded("right", "0FT10ZZ"),
            coded("left", "0FT24ZZ"),
            coded("excision", "0FB10ZZ"),
            coded("biopsy", "0FB03ZX"),
            coded("short", "0FT1"),
        )
    )
    assert [(o.ref, sorted(o.options)) for o in orders] == [
        ("ServiceRequest/right", ["resection-right-hepatectomy"]),
        ("ServiceRequest/left", ["resection-left-hepatectomy"]),
        ("ServiceRequest/excision", ["resection-local"]),
    ]


def test_unknown_codes_are_not_guessed_at() -> None:
    orders, notes = read_draft_orders(_bundle(_request("x", "99999"), _request("y", "47130")))
    assert [o.ref for o in orders] == ["ServiceRequest/y"]
    assert notes == []


def test_the_demo_page_lists_order_sign_fixtures_and_serves_each_as_a_request() -> None:
    async def run() -> tuple[Any, Any, Any]:
        async with running_app(make_settings(demo_enabled=True)) as app:
            listed = (await app.client.get("/demo/orders")).json()["orders"]
            slug = listed[0]["slug"]
            request = (await app.client.get(f"/demo/orders/{slug}")).json()
            answer = await app.client.post(ORDER_URL, json=request)
            missing = await app.client.get("/demo/orders/..%2Fmanifest")
            return listed, answer, missing

    listed, answer, missing = asyncio.run(run())
    assert len(listed) == len(CASES)
    assert answer.status_code == 200
    assert missing.status_code == 404
