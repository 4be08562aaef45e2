"""CDS Hooks 3.0-style prefetch tokens (paths into nested context) beside 2.0's root-level ones.

The 3.0 ballot ("Prefetch tokens containing Simpler FHIRPath") lets a token walk into a
context object such as order-sign's ``draftOrders``, with ``ofType()`` and ``resolve()``,
a collection rendered comma-separated. The 2.0 tokens the service declares must render
exactly as before, whatever else the context carries.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from service.fhir.template import MAX_PATH_VALUES, TemplateError, render
from service.protocol.declaration import SERVICES

# The 3.0 ballot's worked example: an order-sign context with two MedicationRequests.
BALLOT_CONTEXT: dict[str, Any] = {
    "patientId": "eXoGxqgBaJuNkuahMYmiDhg3",
    "encounterId": "eAJ9U5Zv9Vzeg4lBWxmAQcItP6nlidE0QacJVtVudEQ43",
    "userId": "PractitionerRole/e-QokEGUJIzyynNdkCFrs9w3",
    "draftOrders": {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": "ez067mnwOAKP5z1.YJwRAsd9gCwdOzQ8wSrsM04QFoz882hxQZKBulF4smVj2Sx",
                    "status": "draft",
                    "intent": "order",
                    "medicationReference": {
                        "reference": "Medication/eVBXvKwrWZIkPmaGwY.s1hQ3",
                        "display": "DEXTROMETHORPHAN HBR 15 MG/5ML PO SYRP",
                    },
                    "requester": {"reference": "Practitioner/pr-1"},
                    "subject": {"reference": "Patient/eXoGxqgBaJuNkuahMYmiDhg3"},
                }
            },
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": "ez067mnwOAKP5z1.YJwRAsfY.5YNxZJJDzDQrJbuKBDbIp.vKaSouyn36H4Tc6",
                    "status": "draft",
                    "intent": "order",
                    "medicationReference": {
                        "reference": "Medication/emvpHliA4OaUxXJ4wp6N.Ig3",
                        "display": "MERCAPTOPURINE 50 MG PO TABS",
                    },
                    "requester": {"reference": "PractitionerRole/role-1"},
                    "subject": {"reference": "Patient/eXoGxqgBaJuNkuahMYmiDhg3"},
                }
            },
            {
                "resource": {
                    "resourceType": "ServiceRequest",
                    "id": "sr-tace",
                    "status": "draft",
                    "intent": "order",
                    "subject": {"reference": "Patient/eXoGxqgBaJuNkuahMYmiDhg3"},
                }
            },
        ],
    },
}


def test_the_ballots_worked_example_renders_as_the_ballot_says() -> None:
    meds = (
        "Medication?_id={{context.draftOrders.entry.resource.ofType(MedicationRequest)"
        ".medication.resolve().id}}"
    )
    assert render(meds, BALLOT_CONTEXT) == (
        "Medication?_id=eVBXvKwrWZIkPmaGwY.s1hQ3,emvpHliA4OaUxXJ4wp6N.Ig3"
    )


def test_resolve_then_of_type_keeps_only_references_to_that_type() -> None:
    prescriber = (
        "Practitioner?_id={{context.draftOrders.entry.resource.ofType(MedicationRequest)"
        ".requester.resolve().ofType(Practitioner).id}}"
    )
    assert render(prescriber, BALLOT_CONTEXT) == "Practitioner?_id=pr-1"


def test_the_type_shorthand_and_the_fhirpath_form_agree() -> None:
    shorthand = "ServiceRequest?_id={{context.draftOrders.ServiceRequest.id}}"
    fhirpath = "ServiceRequest?_id={{context.draftOrders.entry.resource.ofType(ServiceRequest).id}}"
    assert render(shorthand, BALLOT_CONTEXT) == render(fhirpath, BALLOT_CONTEXT)
    assert render(shorthand, BALLOT_CONTEXT) == "ServiceRequest?_id=sr-tace"


def test_user_tokens_of_the_3_0_user_table_still_come_from_user_id() -> None:
    template = (
        "PractitionerRole?_id={{userPractitionerRoleId}}&_include=PractitionerRole:practitioner"
    )
    assert render(template, BALLOT_CONTEXT) == (
        "PractitionerRole?_id=e-QokEGUJIzyynNdkCFrs9w3&_include=PractitionerRole:practitioner"
    )
    with pytest.raises(TemplateError, match="userPractitionerId"):
        render("Practitioner/{{userPractitionerId}}", BALLOT_CONTEXT)


def test_each_value_of_a_path_is_encoded_but_the_joining_commas_are_kept() -> None:
    context = copy.deepcopy(BALLOT_CONTEXT)
    context["draftOrders"]["entry"][2]["resource"]["id"] = "a&b=c"
    assert render("X?_id={{context.draftOrders.ServiceRequest.id}}", context) == "X?_id=a%26b%3Dc"
    context["draftOrders"]["entry"][2]["resource"]["id"] = "a,b"
    assert render("X?_id={{context.draftOrders.ServiceRequest.id}}", context) == "X?_id=a%2Cb"


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("context.draftOrders.ServiceRequest.code", "selects nothing"),
        ("context.draftOrders.entry.resource.ofType(Procedure).id", "selects nothing"),
        ("context.draftOrders.entry.resource.ofType(procedure).id", "resource type"),
        ("context.draftOrders.entry.where(x).id", "not supported"),
        ("context.draftOrders.entry", "primitive"),
        ("context.draftOrders.entry[0].id", "path step"),
        ("today() - 90 days", "not a CDS Hooks prefetch token"),
        ("%meds.entry.resource.id", "not a CDS Hooks prefetch token"),
    ],
)
def test_a_path_that_cannot_be_filled_is_not_fetched(token: str, problem: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(f"X?_id={{{{{token}}}}}", BALLOT_CONTEXT)
    assert problem in caught.value.message


def test_a_path_selecting_too_many_values_is_refused() -> None:
    context = {
        "draftOrders": {
            "resourceType": "Bundle",
            "entry": [
                {"resource": {"resourceType": "ServiceRequest", "id": f"sr-{n}"}}
                for n in range(MAX_PATH_VALUES + 1)
            ],
        }
    }
    with pytest.raises(TemplateError, match="more than"):
        render("X?_id={{context.draftOrders.ServiceRequest.id}}", context)


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.id)
def test_the_declared_2_0_templates_render_the_same_for_a_2_0_and_a_3_0_context(
    service: Any,
) -> None:
    """A 2.0 client's flat context and a 3.0-style one carrying nested objects (draft
    orders, an extension) give every declared template the same URL."""
    flat = {"userId": "Practitioner/dr-1", "patientId": "p-1", "encounterId": "e-1"}
    rich = {
        **flat,
        "draftOrders": BALLOT_CONTEXT["draftOrders"],
        "extension": {"org.example.ehr": {"nested": [1, 2]}},
    }
    for template in service.prefetch.values():
        assert render(template, flat) == render(template, rich)
        assert "p-1" in render(template, flat)
