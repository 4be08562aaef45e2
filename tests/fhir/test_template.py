"""Prefetch template rendering: every CDS Hooks 2.0 token, encoding, unfillable tokens."""

from __future__ import annotations

import pytest

from service.fhir.template import TemplateError, render, user_tokens

CONTEXT = {"userId": "Practitioner/dr-1", "patientId": "123", "encounterId": "enc-9"}


def test_context_tokens_are_replaced_by_root_level_context_fields() -> None:
    assert render("Patient/{{context.patientId}}", CONTEXT) == "Patient/123"
    assert (
        render("Encounter?_id={{context.encounterId}}&patient={{context.patientId}}", CONTEXT)
        == "Encounter?_id=enc-9&patient=123"
    )


def test_whitespace_inside_the_braces_is_tolerated() -> None:
    assert render("Condition?patient={{ context.patientId }}", CONTEXT) == "Condition?patient=123"


def test_a_template_without_tokens_is_unchanged() -> None:
    assert render("Observation?code=1975-2", CONTEXT) == "Observation?code=1975-2"


@pytest.mark.parametrize(
    ("user_id", "token", "expected"),
    [
        ("Practitioner/dr-1", "userPractitionerId", "dr-1"),
        ("PractitionerRole/role-2", "userPractitionerRoleId", "role-2"),
        ("Patient/pat-3", "userPatientId", "pat-3"),
        ("RelatedPerson/rp-4", "userRelatedPersonId", "rp-4"),
        ("https://ehr.example/fhir/Practitioner/dr-5", "userPractitionerId", "dr-5"),
    ],
)
def test_user_tokens_follow_the_resource_type_of_user_id(
    user_id: str, token: str, expected: str
) -> None:
    assert user_tokens(user_id) == {token: expected}
    context = {**CONTEXT, "userId": user_id}
    assert render(f"X?_id={{{{{token}}}}}", context) == f"X?_id={expected}"


def test_user_id_argument_takes_precedence_over_context() -> None:
    rendered = render("Patient/{{userPatientId}}", CONTEXT, user_id="Patient/self")
    assert rendered == "Patient/self"


@pytest.mark.parametrize(
    "token", ["userPractitionerRoleId", "userPatientId", "userRelatedPersonId"]
)
def test_a_user_token_of_another_resource_type_cannot_be_filled(token: str) -> None:
    with pytest.raises(TemplateError, match=token):
        render(f"X?_id={{{{{token}}}}}", CONTEXT)


@pytest.mark.parametrize("user_id", [None, "", "dr-1", "Device/d1", "Practitioner/"])
def test_user_ids_that_name_no_user_resource_give_no_user_tokens(user_id: str | None) -> None:
    assert user_tokens(user_id) == {}


def test_the_spec_example_user_read_keeps_the_reference_slash() -> None:
    assert render("{{context.userId}}", CONTEXT) == "Practitioner/dr-1"


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("123&code=x", "123%26code%3Dx"),
        ("a b", "a%20b"),
        ("../../admin", "..%2F..%2Fadmin"),
        ("x#frag", "x%23frag"),
        ("x?y", "x%3Fy"),
        ("ü", "%C3%BC"),
    ],
)
def test_token_values_are_percent_encoded(value: str, encoded: str) -> None:
    context = {**CONTEXT, "patientId": value}
    assert render("Condition?patient={{context.patientId}}", context) == (
        f"Condition?patient={encoded}"
    )
    assert render("Patient/{{context.patientId}}", context) == f"Patient/{encoded}"


@pytest.mark.parametrize(("value", "text"), [(42, "42"), (True, "true"), (1.5, "1.5")])
def test_primitive_non_string_values_are_rendered(value: object, text: str) -> None:
    assert render("X?n={{context.n}}", {**CONTEXT, "n": value}) == f"X?n={text}"


@pytest.mark.parametrize(
    ("template", "context", "problem"),
    [
        ("Patient/{{context.patientId}}", {"userId": "Practitioner/1"}, "missing"),
        ("Patient/{{context.patientId}}", {"patientId": None}, "missing"),
        ("Patient/{{context.patientId}}", {"patientId": ""}, "empty"),
        ("Patient/{{context.patientId}}", {"patientId": "   "}, "empty"),
        ("Patient/{{context.patientId}}", {"patientId": ".."}, "usable"),
        ("Patient/{{context.patientId}}", {"patientId": {"id": "1"}}, "primitive"),
        ("Patient/{{context.patientId}}", {"patientId": ["1"]}, "primitive"),
        ("Patient/{{context.patientId}}", {"patientId": float("nan")}, "primitive"),
        ("X?id={{context.medication.code}}", {"medication": {"id": "1"}}, "selects nothing"),
        ("X?id={{context.medication}}", {"medication": {"id": "1"}}, "primitive"),
        ("X?id={{context.medication.id.where(x)}}", {"medication": {"id": "1"}}, "supported"),
        ("X?id={{context.}}", CONTEXT, "root-level"),
        ("X?id={{patientId}}", CONTEXT, "not a CDS Hooks prefetch token"),
        ("X?id={{}}", CONTEXT, "not a CDS Hooks prefetch token"),
        ("Patient/{{context.patientId", CONTEXT, "unterminated"),
        ("Patient/context.patientId}}", CONTEXT, "unterminated"),
    ],
)
def test_a_token_that_cannot_be_filled_raises(
    template: str, context: dict[str, object], problem: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        render(template, context)
    assert problem in caught.value.message
