"""The service declaration is the single source of discovery and of the prefetch templates."""

from __future__ import annotations

from urllib.parse import parse_qsl

from service.protocol.declaration import (
    LIVER_FINDINGS,
    LIVER_METASTASIS_RESECTABILITY,
    LOINC,
    SERVICES,
    find_service,
)
from service.protocol.discovery import discovery_document

# fhir-mapping.md §5 (LOINC) and §6 (liver-findings), as written in the spec.
SPEC_LOINC = {
    "1975-2",
    "14631-6",
    "1751-7",
    "6301-6",
    "34714-6",
    "777-3",
    "2160-0",
    "14682-9",
    "2951-2",
    "1834-1",
    "2039-6",
    "89247-1",
    "89243-0",
    "21889-1",
    "21906-3",
}
SPEC_LOCAL = {"lesion-count", "future-liver-remnant"}


def test_discovery_lists_the_resectability_service_as_cards_md_says() -> None:
    service, order_check = discovery_document(SERVICES)["services"]
    assert order_check["id"] == "liver-directed-order-check"
    assert order_check["hook"] == "order-sign"
    assert order_check["prefetch"] == service["prefetch"]
    assert service["id"] == "liver-metastasis-resectability"
    assert service["hook"] == "patient-view"
    assert service["title"] and service["description"]
    assert set(service["prefetch"]) == {"patient", "conditions", "observations", "procedures"}
    assert all(value not in (None, "", [], {}) for value in service.values())


def test_patient_and_condition_templates_follow_fhir_mapping_section_7() -> None:
    prefetch = LIVER_METASTASIS_RESECTABILITY.prefetch
    assert prefetch["patient"] == "Patient/{{context.patientId}}"
    assert prefetch["conditions"] == "Condition?patient={{context.patientId}}"
    # rule set v2 (fhir-mapping §7): optional; without it previous surgery is unchecked
    assert prefetch["procedures"] == "Procedure?patient={{context.patientId}}"


def test_observation_template_asks_for_exactly_the_codes_the_rules_read() -> None:
    template = LIVER_METASTASIS_RESECTABILITY.prefetch["observations"]
    resource, _, query = template.partition("?")
    params = dict(parse_qsl(query, keep_blank_values=True))
    assert resource == "Observation"
    assert params["patient"] == "{{context.patientId}}"
    tokens = params["code"].split(",")
    loinc = {t.removeprefix(LOINC + "|") for t in tokens if t.startswith(LOINC + "|")}
    local = {
        t.removeprefix(LIVER_FINDINGS + "|") for t in tokens if t.startswith(LIVER_FINDINGS + "|")
    }
    assert loinc == SPEC_LOINC
    assert local == SPEC_LOCAL
    assert len(tokens) == len(SPEC_LOINC) + len(SPEC_LOCAL)


def test_services_are_found_by_id_only() -> None:
    assert find_service("liver-metastasis-resectability") is LIVER_METASTASIS_RESECTABILITY
    assert find_service("LIVER-METASTASIS-RESECTABILITY") is None
    assert find_service("") is None
