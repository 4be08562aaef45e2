"""The fixture patients are valid FHIR, valid CDS Hooks requests, and cover the whole spec.

The expected results in ``fixtures/manifest.json`` were derived by hand from
``clinical-rules.md``; the engine's table-driven tests compare against them. This module
checks the fixtures themselves: every resource parses under ``fhir.resources.R4B``, every
hook request has the CDS Hooks 2.0 fields, the manifest follows its schema, every rule row
0-23 and both additions are covered, every representation variant the clinical-engine issue
asks for is present — and present *in the data*, not only claimed in ``covers``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fhir.resources.R4B import get_fhir_model_class

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

SCT = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
FINDINGS = "https://liver-cds.org/fhir/CodeSystem/liver-findings"
QUALIFIER_URL = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-body-location-qualifier"
RELATED_URLS = {
    "http://hl7.org/fhir/StructureDefinition/condition-related",
    "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-related-primary-cancer-condition",
}

# The clinical-engine issue's fixture bullet and its brief, word for word as variant names.
REQUIRED_VARIANTS = (
    "icd10-cm",
    "snomed",
    "bilirubin-umol",
    "bilirubin-mgdl",
    "creatinine-umol",
    "creatinine-mgdl",
    "albumin-g-per-l",
    "albumin-g-per-dl",
    "karnofsky",
    "ecog-integer",
    "ecog-loinc-answer",
    "size-component",
    "size-value-quantity",
    "size-mm",
    "size-cm",
    "prefetch-bundle",
    "prefetch-single-resource",
    "prefetch-null",
    "bundle-operation-outcome",
    "condition-entered-in-error",
    "condition-refuted",
    "stale-labs",
    "other-patient-data",
    "mcode-related-primary",
    "hcc-and-secondary",
    "portal-hypertension-platelets",
    "flr-low",
    "single-segment",
    "surface-qualifier",
    "diffuse-qualifier",
    "caudate-lobe",
    # rule set v2 (issue 19 and its brief)
    "deceased-boolean",
    "deceased-datetime",
    "c22-9-unspecified",
    "c22-8-unspecified",
    "c22-9-with-primary",
    "caudate-only",
    "single-section",
    "bilirubin-reference-range",
    "portal-hypertension-not-excluded",
    "portal-hypertension-unknown",
    "procedure-hemihepatectomy",
    "procedure-other",
    "procedures-absent",
    "stale-imaging",
    "lesion-measured-twice",
    "jaundice-condition-resolved",
)
RULE_IDS = (
    "0", "1", "1a", "2", "3", "4", "4a", "5", "6", "7", "7a", "8", "9", "10", "11", "12", "12a",
    "12b", "13", "13a", "14", "15", "16", "16a", "17", "18", "19", "19a", "20", "20a", "21", "22",
    "23",
)  # fmt: skip
RULES = tuple(f"rule-{n}" for n in RULE_IDS)
ADDITIONS = ("addition:monitoring", "addition:best-supportive-care")
PREFETCH_KEYS = ("patient", "conditions", "observations")
OPTIONAL_PREFETCH_KEYS = ("procedures",)
CPT = "http://www.ama-assn.org/go/cpt"
HEMIHEPATECTOMY_CPT = {"47122", "47125", "47130"}
IMAGING_CODES = {(LOINC, "21889-1"), (FINDINGS, "lesion-count"), (FINDINGS, "future-liver-remnant")}


@cache
def manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "manifest.json").read_text(encoding="utf-8"))
    return data


def load(rel: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / rel).read_text(encoding="utf-8"))
    return data


def patient_entries() -> list[dict[str, Any]]:
    return list(manifest()["patients"])


def ids(entries: list[dict[str, Any]]) -> list[str]:
    return [e["patient_id"] for e in entries]


def evaluated_at() -> datetime:
    return datetime.fromisoformat(manifest()["evaluated_at"].replace("Z", "+00:00"))


# --------------------------------------------------------------------------------------
# Reading the raw JSON (only as far as the coverage checks need it)
# --------------------------------------------------------------------------------------


def prefetch_resources(value: Any) -> Iterator[dict[str, Any]]:
    """Resources of one prefetch value: a resource, a searchset Bundle's entries, or null."""
    if value is None:
        return
    if value.get("resourceType") == "Bundle":
        for entry in value.get("entry", []):
            yield entry["resource"]
    else:
        yield value


def all_resources(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for v in request["prefetch"].values() for r in prefetch_resources(v)]


def of_type(request: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [r for r in all_resources(request) if r["resourceType"] == rtype]


def codings(concept: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not concept:
        return []
    return [(c.get("system", ""), c.get("code", "")) for c in concept.get("coding", [])]


def has_loinc(obs: dict[str, Any], *codes: str) -> bool:
    return any(s == LOINC and c in codes for s, c in codings(obs.get("code")))


def quantity_code(obs: dict[str, Any]) -> str | None:
    q = obs.get("valueQuantity")
    return q.get("code") if q else None


def obs_time(obs: dict[str, Any]) -> datetime:
    raw = (
        obs.get("effectiveDateTime")
        or (obs.get("effectivePeriod") or {}).get("end")
        or obs.get("effectiveInstant")
        or obs["issued"]
    )
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


def status_code(concept: dict[str, Any] | None) -> str | None:
    pairs = codings(concept)
    return pairs[0][1] if pairs else None


def sites(resource: dict[str, Any]) -> list[dict[str, Any]]:
    body = resource.get("bodySite")
    if body is None:
        return []
    return body if isinstance(body, list) else [body]


def qualifiers(site: dict[str, Any]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for ext in site.get("extension", []):
        if ext.get("url") == QUALIFIER_URL:
            found += codings(ext.get("valueCodeableConcept"))
    return found


HCC_CODES = {(SCT, "109841003"), (ICD, "C22.0"), (ICD, "C22.8"), (ICD, "C22.9")}
SECONDARY_CODES = {
    (SCT, "94381002"),
    (SCT, "128462008"),
    (ICD, "C78.7"),
    (ICD, "C7B.02"),
    (ICD, "C79.9"),
}
SEGMENTS = {
    "71133005",
    "277956007",
    "277957003",
    "277958008",
    "871688003",
    "871689006",
    "277959000",
    "277960005",
    "277961009",
    "277962002",
}
LOBES = {"48521005", "69842003"}


def current(cond: dict[str, Any]) -> bool:
    clinical = status_code(cond.get("clinicalStatus"))
    verification = status_code(cond.get("verificationStatus"))
    return clinical in (None, "active", "recurrence", "relapse") and verification not in (
        "refuted",
        "entered-in-error",
    )


def conditions_with(request: dict[str, Any], codes: set[tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        c
        for c in of_type(request, "Condition")
        if current(c) and set(codings(c.get("code"))) & codes
    ]


def lab_units(request: dict[str, Any], loincs: tuple[str, ...], unit: str) -> bool:
    return any(
        has_loinc(o, *loincs) and quantity_code(o) == unit for o in of_type(request, "Observation")
    )


def sizes(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in of_type(request, "Observation") if has_loinc(o, "21889-1")]


def size_quantities(request: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for o in sizes(request):
        if "valueQuantity" in o:
            out.append(o["valueQuantity"])
        for comp in o.get("component", []):
            if (LOINC, "33728-7") in codings(comp.get("code")):
                out.append(comp["valueQuantity"])
    return out


def stale(request: dict[str, Any], loincs: tuple[str, ...]) -> bool:
    """Every observation with these codes is older than the lookback window."""
    found = [o for o in of_type(request, "Observation") if has_loinc(o, *loincs)]
    limit = evaluated_at() - timedelta(days=manifest()["lookback_days"])
    return bool(found) and all(obs_time(o) < limit for o in found)


def subject_refs(request: dict[str, Any]) -> set[str]:
    return {r["subject"]["reference"] for r in all_resources(request) if "subject" in r}


def liver_sites(request: dict[str, Any]) -> list[dict[str, Any]]:
    liver = conditions_with(request, HCC_CODES | SECONDARY_CODES)
    return [s for c in liver for s in sites(c)]


def prefetch_shapes(request: dict[str, Any]) -> set[str]:
    shapes = set()
    for value in request["prefetch"].values():
        if value is None:
            shapes.add("null")
        elif value["resourceType"] == "Bundle":
            shapes.add("bundle")
        elif value["resourceType"] != "Patient":
            shapes.add("single")
    return shapes


def platelets_below_100(request: dict[str, Any]) -> bool:
    factor = {"10*9/L": 1.0, "10*3/uL": 1.0, "/uL": 0.001}
    return any(
        has_loinc(o, "777-3")
        and o["valueQuantity"]["value"] * factor[o["valueQuantity"]["code"]] < 100
        for o in of_type(request, "Observation")
    )


CIRRHOSIS_CODES = {(SCT, "19943007"), (ICD, "K74.60"), (ICD, "K70.30")}


def patient_resource(request: dict[str, Any]) -> dict[str, Any]:
    patient: dict[str, Any] = request["prefetch"]["patient"] or {}
    return patient


def procedures_of(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in prefetch_resources(request["prefetch"].get("procedures"))]


def completed_cpt(request: dict[str, Any]) -> set[str]:
    return {
        code
        for p in procedures_of(request)
        if p.get("status") == "completed"
        for system, code in codings(p.get("code"))
        if system == CPT
    }


def imaging(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        o for o in of_type(request, "Observation") if set(codings(o.get("code"))) & IMAGING_CODES
    ]


def imaging_stale(obs: dict[str, Any]) -> bool:
    limit = evaluated_at() - timedelta(days=manifest()["imaging_lookback_days"])
    return obs_time(obs) < limit


def platelet_values(request: dict[str, Any]) -> list[float]:
    factor = {"10*9/L": 1.0, "10*3/uL": 1.0, "/uL": 0.001}
    return [
        o["valueQuantity"]["value"] * factor[o["valueQuantity"]["code"]]
        for o in of_type(request, "Observation")
        if has_loinc(o, "777-3")
    ]


def section_of(code: str) -> str | None:
    sections = {
        "277956007": "left-lateral",
        "277957003": "left-lateral",
        "277958008": "left-medial",
        "871688003": "left-medial",
        "871689006": "left-medial",
        "277959000": "right-anterior",
        "277962002": "right-anterior",
        "277960005": "right-posterior",
        "277961009": "right-posterior",
        "71133005": "caudate",
    }
    return sections.get(code)


def sided_codes(request: dict[str, Any]) -> list[str]:
    return [
        code for s in liver_sites(request) for _, code in codings(s) if code in SEGMENTS | LOBES
    ]


VARIANT_IN_DATA: dict[str, Callable[[dict[str, Any]], bool]] = {
    "icd10-cm": lambda r: any(
        s == ICD for c in of_type(r, "Condition") for s, _ in codings(c.get("code"))
    ),
    "snomed": lambda r: any(
        s == SCT for c in of_type(r, "Condition") for s, _ in codings(c.get("code"))
    ),
    "bilirubin-umol": lambda r: lab_units(r, ("1975-2", "14631-6"), "umol/L"),
    "bilirubin-mgdl": lambda r: lab_units(r, ("1975-2", "14631-6"), "mg/dL"),
    "creatinine-umol": lambda r: lab_units(r, ("2160-0", "14682-9"), "umol/L"),
    "creatinine-mgdl": lambda r: lab_units(r, ("2160-0", "14682-9"), "mg/dL"),
    "albumin-g-per-l": lambda r: lab_units(r, ("1751-7",), "g/L"),
    "albumin-g-per-dl": lambda r: lab_units(r, ("1751-7",), "g/dL"),
    "karnofsky": lambda r: any(
        has_loinc(o, "89243-0") and "valueInteger" in o for o in of_type(r, "Observation")
    ),
    "ecog-integer": lambda r: any(
        has_loinc(o, "89247-1") and "valueInteger" in o for o in of_type(r, "Observation")
    ),
    "ecog-loinc-answer": lambda r: any(
        has_loinc(o, "89247-1")
        and any(
            s == LOINC and c.startswith("LA96") for s, c in codings(o.get("valueCodeableConcept"))
        )
        for o in of_type(r, "Observation")
    ),
    "size-component": lambda r: any("component" in o for o in sizes(r)),
    "size-value-quantity": lambda r: any("valueQuantity" in o for o in sizes(r)),
    "size-mm": lambda r: any(q.get("code") == "mm" for q in size_quantities(r)),
    "size-cm": lambda r: any(q.get("code") == "cm" for q in size_quantities(r)),
    "prefetch-bundle": lambda r: "bundle" in prefetch_shapes(r),
    "prefetch-single-resource": lambda r: "single" in prefetch_shapes(r),
    "prefetch-null": lambda r: "null" in prefetch_shapes(r),
    "bundle-operation-outcome": lambda r: any(
        e.get("search", {}).get("mode") == "outcome"
        and e["resource"]["resourceType"] == "OperationOutcome"
        for v in r["prefetch"].values()
        if v and v["resourceType"] == "Bundle"
        for e in v.get("entry", [])
    ),
    "condition-entered-in-error": lambda r: any(
        status_code(c.get("verificationStatus")) == "entered-in-error"
        for c in of_type(r, "Condition")
    ),
    "condition-refuted": lambda r: any(
        status_code(c.get("verificationStatus")) == "refuted" for c in of_type(r, "Condition")
    ),
    "stale-labs": lambda r: stale(r, ("1975-2", "14631-6", "1751-7", "6301-6", "34714-6")),
    "other-patient-data": lambda r: len(subject_refs(r)) > 1,
    "mcode-related-primary": lambda r: any(
        e.get("url") in RELATED_URLS
        for c in of_type(r, "Condition")
        for e in c.get("extension", [])
    ),
    "hcc-and-secondary": lambda r: (
        bool(conditions_with(r, HCC_CODES)) and bool(conditions_with(r, SECONDARY_CODES))
    ),
    "portal-hypertension-platelets": lambda r: (
        bool(conditions_with(r, CIRRHOSIS_CODES)) and platelets_below_100(r)
    ),
    "flr-low": lambda r: any(
        (FINDINGS, "future-liver-remnant") in codings(o.get("code"))
        for o in of_type(r, "Observation")
    ),
    "single-segment": lambda r: (
        len({code for s in liver_sites(r) for _, code in codings(s) if code in SEGMENTS | LOBES})
        == 1
        and all(code in SEGMENTS for s in liver_sites(r) for _, code in codings(s))
    ),
    "surface-qualifier": lambda r: (
        bool(liver_sites(r)) and all((SCT, "26283006") in qualifiers(s) for s in liver_sites(r))
    ),
    "diffuse-qualifier": lambda r: any(
        (FINDINGS, "diffuse") in qualifiers(s) for s in liver_sites(r)
    ),
    "caudate-lobe": lambda r: any((SCT, "71133005") in codings(s) for s in liver_sites(r)),
    "deceased-boolean": lambda r: patient_resource(r).get("deceasedBoolean") is True,
    "deceased-datetime": lambda r: "deceasedDateTime" in patient_resource(r),
    "c22-9-unspecified": lambda r: bool(conditions_with(r, {(ICD, "C22.9")})),
    "c22-8-unspecified": lambda r: bool(conditions_with(r, {(ICD, "C22.8")})),
    "c22-9-with-primary": lambda r: (
        bool(conditions_with(r, {(ICD, "C22.9")}))
        and any(
            (s == ICD and c.startswith(("C18", "C19", "C20")))
            or (s, c) in {(SCT, "363406005"), (SCT, "363351006")}
            for cond in of_type(r, "Condition")
            for s, c in codings(cond.get("code"))
        )
    ),
    "caudate-only": lambda r: set(sided_codes(r)) == {"71133005"},
    "single-section": lambda r: (
        bool(sided_codes(r))
        and None not in {section_of(c) for c in sided_codes(r)}
        and len({section_of(c) for c in sided_codes(r)}) == 1
    ),
    "bilirubin-reference-range": lambda r: any(
        has_loinc(o, "1975-2", "14631-6") and "referenceRange" in o
        for o in of_type(r, "Observation")
    ),
    "portal-hypertension-not-excluded": lambda r: (
        bool(conditions_with(r, CIRRHOSIS_CODES))
        and any(100 <= v < 150 for v in platelet_values(r))
    ),
    "portal-hypertension-unknown": lambda r: (
        bool(conditions_with(r, CIRRHOSIS_CODES)) and not platelet_values(r)
    ),
    "procedure-hemihepatectomy": lambda r: bool(completed_cpt(r) & HEMIHEPATECTOMY_CPT),
    "procedure-other": lambda r: "47120" in completed_cpt(r),
    "procedures-absent": lambda r: "procedures" not in r["prefetch"],
    "stale-imaging": lambda r: any(imaging_stale(o) for o in imaging(r)),
    "lesion-measured-twice": lambda r: (
        len({obs_time(o).date() for o in sizes(r)}) >= 2
        and not any((FINDINGS, "lesion-count") in codings(o.get("code")) for o in imaging(r))
    ),
    "jaundice-condition-resolved": lambda r: (
        bool(conditions_with(r, {(ICD, "R17"), (SCT, "18165001")}))
        and any(
            has_loinc(o, "1975-2") and o["valueQuantity"]["value"] <= 1.2
            for o in of_type(r, "Observation")
        )
    ),
}


# --------------------------------------------------------------------------------------
# The manifest
# --------------------------------------------------------------------------------------


def test_manifest_follows_its_schema() -> None:
    schema = json.loads((FIXTURES / "manifest.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(manifest())


def test_there_are_at_least_32_patients_with_unique_ids() -> None:
    entries = patient_entries()
    assert len(entries) >= 32
    assert len(set(ids(entries))) == len(entries)


def test_every_patient_file_is_in_the_manifest_and_every_listed_file_exists() -> None:
    listed = {e["file"] for e in patient_entries()}
    on_disk = {f"patients/{p.name}" for p in (FIXTURES / "patients").glob("*.json")}
    assert listed == on_disk
    bundles_listed = {b["file"] for b in manifest().get("bundles", [])}
    bundles_on_disk = {f"bundles/{p.name}" for p in (FIXTURES / "bundles").glob("*.json")}
    assert bundles_listed == bundles_on_disk
    assert 2 <= len(bundles_listed) <= 5


@pytest.mark.parametrize("cover", RULES + ADDITIONS)
def test_every_rule_row_and_addition_is_covered(cover: str) -> None:
    assert any(cover in e["covers"] for e in patient_entries()), f"no fixture covers {cover}"


def test_each_fixture_covers_the_rule_that_decides_it() -> None:
    for e in patient_entries():
        assert f"rule-{e['expected']['rule']}" in e["covers"], e["patient_id"]


def test_addition_covers_match_the_expected_options() -> None:
    """A fixture claiming an addition must expect that option offered, not recommended."""
    for e in patient_entries():
        onr = e["expected"]["offered_not_recommended"]
        for name in ("monitoring", "best-supportive-care"):
            if f"addition:{name}" in e["covers"]:
                assert name in onr and e["expected"]["verdict"] == "not-resectable", e["file"]


@pytest.mark.parametrize("variant", REQUIRED_VARIANTS)
def test_every_required_variant_is_covered_and_present_in_the_data(variant: str) -> None:
    claiming = [e for e in patient_entries() if f"variant:{variant}" in e["covers"]]
    assert claiming, f"no fixture covers variant:{variant}"
    detector = VARIANT_IN_DATA[variant]
    for e in claiming:
        assert detector(load(e["file"])), f"{e['file']} claims variant:{variant} but lacks it"


def test_expectations_are_internally_consistent() -> None:
    """Structure only (the values come from the spec): rule 0 means no cards; rules 1, 2
    and 5 give indeterminate with mdt-review only; options are never both kinds."""
    for e in patient_entries():
        x = e["expected"]
        assert not set(x["recommended"]) & set(x["offered_not_recommended"]), e["file"]
        if x["rule"] in ("1", "1a", "2", "4a", "5"):
            assert x["verdict"] == "indeterminate", e["file"]
            assert x["recommended"] == ["mdt-review"] and not x["offered_not_recommended"]
        if x["rule"] in ("1a", "4a", "5"):
            assert x["missing_essential"], e["file"]
        if x["verdict"] not in (None, "indeterminate") and x["rule"] not in ("3", "4"):
            # 13a/20a: the unknown FLR is needed (§5 v2), not "would refine"
            expected = ["flr"] if x["rule"] in ("13a", "20a") else []
            assert x["missing_essential"] == expected, e["file"]
        assert (x["child_pugh_class"] is None) == (x["child_pugh_points"] is None)


# --------------------------------------------------------------------------------------
# The hook requests
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", patient_entries(), ids=ids(patient_entries()))
def test_hook_request_has_the_cds_hooks_fields(entry: dict[str, Any]) -> None:
    request = load(entry["file"])
    assert request["hook"] == "patient-view"
    assert str(uuid.UUID(request["hookInstance"])) == request["hookInstance"]
    context = request["context"]
    assert context["userId"].startswith(("Practitioner/", "PractitionerRole/"))
    assert context["patientId"] == entry["patient_id"]
    if "fhirServer" in request:
        assert request["fhirServer"].startswith("https://")
        assert "fhirAuthorization" in request
    prefetch = request["prefetch"]
    assert set(PREFETCH_KEYS) <= set(prefetch) <= set(PREFETCH_KEYS + OPTIONAL_PREFETCH_KEYS)
    patient = prefetch["patient"]
    assert patient is None or (
        patient["resourceType"] == "Patient" and patient["id"] == entry["patient_id"]
    )
    for key in ("conditions", "observations", "procedures"):
        value = prefetch.get(key)
        if value is not None and value["resourceType"] == "Bundle":
            assert value["type"] == "searchset"


def test_hook_instances_are_unique() -> None:
    seen = [load(e["file"])["hookInstance"] for e in patient_entries()]
    assert len(set(seen)) == len(seen)


def test_resources_of_the_patient_reference_the_patient() -> None:
    """Every Condition/Observation names a subject; all but deliberately mixed-in ones
    are about the context patient."""
    for e in patient_entries():
        request = load(e["file"])
        own = f"Patient/{e['patient_id']}"
        for r in all_resources(request):
            if r["resourceType"] in ("Condition", "Observation", "Procedure"):
                assert r["subject"]["reference"] == own or (
                    "variant:other-patient-data" in e["covers"]
                ), (e["file"], r["id"])


def test_imaging_is_fresh_except_where_a_fixture_is_about_stale_imaging() -> None:
    """Rule set v2 ignores imaging older than the imaging lookback; a fixture that is not
    about staleness must not depend on it by accident (and keeps clear of the boundary)."""
    margin = timedelta(days=manifest()["imaging_lookback_days"] - 30)
    for e in patient_entries():
        for o in imaging(load(e["file"])):
            if "variant:stale-imaging" in e["covers"] and imaging_stale(o):
                assert evaluated_at() - obs_time(o) >= timedelta(days=120), (e["file"], o["id"])
            else:
                assert evaluated_at() - obs_time(o) <= margin, (e["file"], o["id"])


def test_cirrhotic_hcc_has_a_platelet_count_unless_it_tests_the_unknown_case() -> None:
    """v2 §5: portal hypertension is essential for hcc with cirrhosis."""
    hcc_codes = {(SCT, "109841003"), (ICD, "C22.0")}
    for e in patient_entries():
        request = load(e["file"])
        if conditions_with(request, hcc_codes) and conditions_with(request, CIRRHOSIS_CODES):
            assert platelet_values(request) or (
                "variant:portal-hypertension-unknown" in e["covers"]
            ), e["file"]


def test_every_procedure_is_coded_with_a_resection_code_of_the_mapping() -> None:
    for e in patient_entries():
        for p in procedures_of(load(e["file"])):
            assert {c for s, c in codings(p["code"]) if s == CPT} <= {"47120"} | (
                HEMIHEPATECTOMY_CPT
            ), (e["file"], p["id"])


def test_no_observation_is_dated_after_the_evaluation_time() -> None:
    """No data dated after the evaluation time (the fixtures replay a fixed moment)."""
    at = evaluated_at()
    for e in patient_entries():
        for o in of_type(load(e["file"]), "Observation"):
            assert obs_time(o) <= at, (e["file"], o["id"])


# --------------------------------------------------------------------------------------
# Valid FHIR R4 (fhir.resources R4B models), resource by resource
# --------------------------------------------------------------------------------------


def validate(resource: dict[str, Any]) -> None:
    model = get_fhir_model_class(resource["resourceType"])
    model.model_validate(resource)


def validate_value(value: dict[str, Any]) -> int:
    """Validate a resource, or a Bundle's envelope (entries without their resources) and
    then each entry's resource on its own, as the brief asks (never a whole big Bundle)."""
    if value["resourceType"] != "Bundle":
        validate(value)
        return 1
    entries = value.get("entry", [])
    validate({**value, "entry": [{k: v for k, v in e.items() if k != "resource"} for e in entries]})
    for entry in entries:
        validate(entry["resource"])
    return 1 + len(entries)


@pytest.mark.parametrize("entry", patient_entries(), ids=ids(patient_entries()))
def test_every_resource_in_the_hook_request_is_valid_r4(entry: dict[str, Any]) -> None:
    request = load(entry["file"])
    count = sum(validate_value(v) for v in request["prefetch"].values() if v is not None)
    assert count >= 1


def test_the_validator_rejects_a_broken_resource() -> None:
    """Guard: the check above would be worthless if the models accepted anything."""
    broken = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "bodySite": [{"text": "segment VI"}],
    }
    with pytest.raises(ValueError):
        validate(broken)


@pytest.mark.parametrize(
    "bundle", manifest().get("bundles", []), ids=[b["file"] for b in manifest().get("bundles", [])]
)
def test_plain_bundles_are_valid_and_hold_the_same_resources(bundle: dict[str, Any]) -> None:
    data = load(bundle["file"])
    assert data["resourceType"] == "Bundle" and data["type"] == "searchset"
    validate_value(data)
    request = load(bundle["same_as"])
    expected = {
        (r["resourceType"], r["id"])
        for r in all_resources(request)
        if r["resourceType"] != "OperationOutcome"
    }
    got = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in data["entry"]}
    assert got == expected


# --------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------


def test_build_check_passes() -> None:
    result = subprocess.run(
        [sys.executable, str(FIXTURES / "build.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------------------
# Order-sign requests (fixtures/orders/, clinical-rules §8)
# --------------------------------------------------------------------------------------

TREATMENT_OPTION = "https://liver-cds.org/fhir/CodeSystem/treatment-option"
ORDER_CPT = {"47120", "47122", "47125", "47130", "47370", "47371", "47380", "47381", "47382"}
ORDER_CPT |= {"47383"}
OPTION_CODES = {
    "resection-right-hepatectomy",
    "resection-left-hepatectomy",
    "resection-local",
    "liver-augmentation",
    "ablation",
    "transplant-evaluation",
    "tace",
    "tare",
    "haic",
    "sbrt",
    "systemic-therapy",
    "monitoring",
    "best-supportive-care",
    "mdt-review",
}
FINDING_ROWS = ("critical-stop", "warning-stop", "indeterminate", "agrees", "not-offered")


@cache
def orders_manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (FIXTURES / "orders" / "manifest.json").read_text(encoding="utf-8")
    )
    return data


def order_entries() -> list[dict[str, Any]]:
    return list(orders_manifest()["orders"])


def order_ids(entries: list[dict[str, Any]]) -> list[str]:
    return [Path(e["file"]).stem for e in entries]


def draft_resources(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in request["context"]["draftOrders"]["entry"]]


def test_every_order_file_is_in_the_orders_manifest_and_every_listed_file_exists() -> None:
    listed = {e["file"] for e in order_entries()}
    on_disk = {
        f"orders/{p.name}"
        for p in (FIXTURES / "orders").glob("*.json")
        if p.name != "manifest.json"
    }
    assert listed == on_disk
    assert orders_manifest()["evaluated_at"] == manifest()["evaluated_at"]
    assert orders_manifest()["hook"] == "order-sign"


@pytest.mark.parametrize("finding", FINDING_ROWS)
def test_every_finding_row_of_section_8_is_covered(finding: str) -> None:
    assert any(f"finding:{finding}" in e["covers"] for e in order_entries()), finding


@pytest.mark.parametrize("stop", sorted(orders_manifest()["stops"]))
def test_every_stop_of_section_8_is_covered_alone_at_least_once(stop: str) -> None:
    alone = [
        x for e in order_entries() for x in e["expected"] if x["stops"] == [stop]
    ]  # fmt: skip
    assert alone, f"no order where only {stop} holds"


def test_an_order_built_from_an_accepted_suggestion_agrees() -> None:
    found = False
    for e in order_entries():
        request = load(e["file"])
        by_ref = {f"ServiceRequest/{r['id']}": r for r in draft_resources(request)}
        for x in e["expected"]:
            r = by_ref[x["order"]]
            if r["intent"] == "proposal" and codings(r["code"])[0][0] == TREATMENT_OPTION:
                found = found or x["finding"] == "agrees"
    assert found


def test_a_medication_request_is_among_the_ignored_draft_orders() -> None:
    assert any(i.startswith("MedicationRequest/") for e in order_entries() for i in e["ignored"])


@pytest.mark.parametrize("entry", order_entries(), ids=order_ids(order_entries()))
def test_order_request_has_the_cds_hooks_order_sign_fields(entry: dict[str, Any]) -> None:
    request = load(entry["file"])
    assert request["hook"] == "order-sign"
    assert str(uuid.UUID(request["hookInstance"])) == request["hookInstance"]
    context = request["context"]
    assert context["userId"].startswith(("Practitioner/", "PractitionerRole/"))
    assert context["patientId"] == entry["patient_id"]
    draft = context["draftOrders"]
    assert draft["resourceType"] == "Bundle" and draft["entry"]
    # the same prefetch as the patient fixture it is built on
    assert request["prefetch"] == load(entry["patient"])["prefetch"]
    patient_entry = next(p for p in patient_entries() if p["file"] == entry["patient"])
    assert patient_entry["patient_id"] == entry["patient_id"]


@pytest.mark.parametrize("entry", order_entries(), ids=order_ids(order_entries()))
def test_order_expectations_name_the_draft_orders(entry: dict[str, Any]) -> None:
    request = load(entry["file"])
    drafts = {f"{r['resourceType']}/{r['id']}": r for r in draft_resources(request)}
    checked = [x["order"] for x in entry["expected"]]
    assert set(checked) | set(entry["ignored"]) == set(drafts)
    assert not set(checked) & set(entry["ignored"])
    stops = orders_manifest()["stops"]
    for x in entry["expected"]:
        r = drafts[x["order"]]
        assert r["resourceType"] == "ServiceRequest" and r["status"] == "draft"
        assert r["intent"] in ("order", "proposal")
        assert r["subject"]["reference"] == f"Patient/{entry['patient_id']}"
        (system, code) = codings(r["code"])[0]
        assert (system == TREATMENT_OPTION and code in OPTION_CODES) or (
            system == CPT and code in ORDER_CPT
        ), x["order"]
        assert x["code"] == {"system": system, "code": code}
        severity = {"critical-stop": "critical", "warning-stop": "warning"}.get(x["finding"])
        assert all(stops[s]["severity"] == severity for s in x["stops"])
        assert bool(x["stops"]) == bool(severity)
    for ref in entry["ignored"]:
        r = drafts[ref]
        assert r["resourceType"] != "ServiceRequest" or not any(
            s in (TREATMENT_OPTION, CPT) for s, _ in codings(r["code"])
        )
    assert entry["cards"] == sum(1 for x in entry["expected"] if x["indicator"] is not None)


@pytest.mark.parametrize("entry", order_entries(), ids=order_ids(order_entries()))
def test_every_resource_in_the_order_request_is_valid_r4(entry: dict[str, Any]) -> None:
    request = load(entry["file"])
    validate_value(request["context"]["draftOrders"])
    count = sum(validate_value(v) for v in request["prefetch"].values() if v is not None)
    assert count >= 1
