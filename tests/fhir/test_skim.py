"""The hook call's selective parse gives the same assessment as parsing everything.

``parse_hook_body`` leaves the Observations the rules never read unbuilt. That is only
an optimisation if no answer changes: for every fixture patient, with junk and foreign
entries mixed in, and for the benchmark's W1, the assessment from the skimmed request
equals the assessment from ``orjson.loads`` field by field, while far fewer resources
are built. Then the edges: what the skim must still refuse, and what it deliberately
no longer refuses.
"""

from __future__ import annotations

import asyncio
import copy
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from app_harness import HOOK_URL, hook_request, make_settings, running_app
from pipeline_harness import evaluate_request_async
from reference_data import us_core_examples

from service.clinical.model import Assessment
from service.fhir.bundle import SKIPPED_ENTRY, unpack
from service.fhir.skim import (
    SKIPPED_OBSERVATION,
    SMALL_BODY_BYTES,
    HookBodyParser,
    parse_hook_body,
)
from service.pipeline import evaluate
from service.protocol import find_service, parse_hook_request
from service.protocol.errors import BadRequest
from service.protocol.jsonbody import parse_json
from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from bench import workloads  # noqa: E402

FIXTURES = ROOT / "fixtures"
SETTINGS = Settings(max_body_bytes=16 * 1024 * 1024)
SERVICE = find_service("liver-metastasis-resectability")
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text(encoding="utf-8"))
EVALUATED_AT = datetime.fromisoformat(MANIFEST["evaluated_at"].replace("Z", "+00:00"))
assert SERVICE is not None
DECLARED = HookBodyParser(SERVICE.prefetch)
"""What the service runs: the skim specialised to the service's declared prefetch keys
(a small body parsed whole, then skimmed as dicts)."""
DECLARED_SKIM = HookBodyParser(SERVICE.prefetch, small_body_bytes=0)
"""The same parser with every body skimmed on its bytes, as a large body is."""
PARSERS = pytest.mark.parametrize(
    "parse",
    [parse_hook_body, DECLARED, DECLARED_SKIM],
    ids=["general-skim", "declared-prefetch", "declared-prefetch-skim"],
)


def _assessment(data: Any, at: datetime) -> tuple[Assessment, int]:
    """The assessment of a parsed request through the service's one pipeline, and how many
    resources were really built."""
    assert SERVICE is not None
    hook = parse_hook_request(data, SERVICE)
    evaluation = asyncio.run(evaluate(SERVICE, hook, settings=SETTINGS, at=at))
    built = 0
    for key, value in (hook.prefetch or {}).items():
        if key in SERVICE.prefetch:
            resources = unpack(value, key).resources
            built += sum(1 for r in resources if r is not SKIPPED_OBSERVATION)
    return evaluation.assessment, built


def _with_junk(request: dict[str, Any]) -> dict[str, Any]:
    """The request with malformed, foreign and real-world entries added to its Observations."""
    out = copy.deepcopy(request)
    bundle = out["prefetch"].get("observations")
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return out
    patient = out["context"]["patientId"]
    entries = bundle.setdefault("entry", [])
    entries += [
        "not an object",
        {"resource": None},
        {"resource": {"id": "no-type"}},
        {"resource": {"resourceType": "Observation", "id": "j1", "code": {"coding": "x"}}},
        {"resource": {"resourceType": "Observation", "id": "j2", "code": {"coding": [7]}}},
        {
            "resource": {
                "resourceType": "Observation",
                "id": "j3",
                "code": {"coding": [{"system": 5, "code": "1975-2"}]},
                "subject": {"reference": f"Patient/{patient}"},
            }
        },
        {
            "search": {"mode": "outcome"},
            "resource": {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "warning", "code": "incomplete"}],
            },
        },
        {
            "resource": {
                "resourceType": "Observation",
                "id": "other-patient-bili",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "1975-2"}]},
                "subject": {"reference": "Patient/someone-else"},
                "effectiveDateTime": "2026-05-20",
                "valueQuantity": {"value": 9.9, "unit": "mg/dL", "code": "mg/dL"},
            }
        },
    ]
    for path in us_core_examples():  # with TEST_US_CORE_DIR set, real-world junk as well
        resource = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(resource, dict) and resource.get("resourceType") == "Observation":
            entries.append({"resource": resource})
    return out


def _fixture_requests() -> list[tuple[str, dict[str, Any]]]:
    cases = []
    for entry in MANIFEST["patients"]:
        request = json.loads((FIXTURES / entry["file"]).read_text(encoding="utf-8"))
        if "prefetch" in request:
            cases.append((entry["file"], request))
    return cases


@PARSERS
@pytest.mark.parametrize("junk", [False, True], ids=["as-is", "with-junk"])
@pytest.mark.parametrize(("name", "request_body"), _fixture_requests(), ids=lambda v: str(v)[:60])
def test_every_fixture_gets_the_same_assessment_from_the_skim(
    name: str, request_body: dict[str, Any], junk: bool, parse: Any
) -> None:
    body = orjson.dumps(_with_junk(request_body) if junk else request_body)
    full, _ = _assessment(orjson.loads(body), EVALUATED_AT)
    skimmed, _ = _assessment(parse(body, 64), EVALUATED_AT)
    assert skimmed == full


@PARSERS
def test_w1_gets_the_same_assessment_while_building_a_fraction_of_the_resources(
    parse: Any,
) -> None:
    body = orjson.dumps(_with_junk(workloads.hook_request(unrelated_obs=300)))
    full, built_full = _assessment(orjson.loads(body), workloads.EVALUATED_AT)
    skimmed, built_skim = _assessment(parse(body, 64), workloads.EVALUATED_AT)
    assert skimmed == full
    assert full.verdict is not None
    assert built_skim < built_full / 5


def test_the_skim_keeps_what_the_protocol_reads_and_the_entry_positions() -> None:
    request = hook_request(fhirServer="https://ehr.example.org/fhir", extension={"x": 1})
    request["prefetch"]["observations"]["entry"].append(
        {"resource": {"resourceType": "Observation", "code": {"coding": [{"code": "x"}]}}}
    )
    data = parse_hook_body(orjson.dumps(request), 64)
    for key in ("hook", "hookInstance", "context", "fhirServer"):
        assert data[key] == request[key]
    assert data["prefetch"]["patient"] == request["prefetch"]["patient"]
    assert data["prefetch"]["observations"]["entry"] == [{"resource": SKIPPED_OBSERVATION}]
    assert data["prefetch"]["conditions"]["total"] == 0


@pytest.mark.parametrize(
    "spelled",
    [b'"Observation"', b'"\\u004fbservation"', b'"\\u004Fbservation"', b'"Obs\\u0065rvation"'],
)
def test_after_other_resources_an_observation_is_still_probed_however_it_is_spelled(
    spelled: bytes,
) -> None:
    # After a resource that is not an Observation, the skim builds a resource whose bytes
    # hold no "O" and no backslash without probing it: every spelling of Observation must
    # still reach the probe, so an unread one is still the stub.
    condition = b'{"resource": {"resourceType": "Condition", "id": "c"}}'
    unread = b'{"resource": {"resourceType": ' + spelled + b', "code": {"coding": []}}}'
    entries = b", ".join([condition, condition, unread, condition, unread])
    body = b'{"prefetch": {"observations": {"resourceType": "Bundle", "entry": [%s]}}}' % entries
    for parse in (parse_hook_body, HookBodyParser(SERVICE.prefetch, small_body_bytes=0)):
        data = parse(body, 64)
        built = [{"resource": {"resourceType": "Condition", "id": "c"}}]
        stub = [{"resource": SKIPPED_OBSERVATION}]
        assert data["prefetch"]["observations"]["entry"] == built * 2 + stub + built + stub


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2]",
        b'"a string"',
        b'{"hook": "patient-view", "prefetch": [1]}',
        b'{"hook": "patient-view", "prefetch": {"observations": 5}}',
        b'{"prefetch": null}',
    ],
)
def test_envelopes_of_other_shapes_parse_as_the_full_parse_does(body: bytes) -> None:
    assert parse_hook_body(body, 64) == orjson.loads(body)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"hook": "patient-view", "prefetch": {"observations": {"a": NaN}}}', "not valid JSON"),
        (b'{"hook": "patient-view"} trailing', "not valid JSON"),
        (
            b'{"prefetch": {"observations": {"resourceType": "Bundle", "entry": [{"resource": '
            b'{"resourceType": "Observation", "note": "\xff"}}]}}}',
            "not UTF-8",
        ),
        (
            b'{"prefetch": {"conditions": {"resourceType": "Bundle", "entry": [{"resource": '
            b'{"resourceType": "Condition", "x": 1e999}}]}}}',
            "not valid JSON",
        ),
    ],
)
@PARSERS
def test_what_is_not_json_is_still_a_400(body: bytes, fragment: str, parse: Any) -> None:
    with pytest.raises(BadRequest) as info:
        parse_json(body, max_depth=64, decode=parse)
    assert fragment in info.value.message


@PARSERS
def test_an_overflowing_number_inside_an_unread_observation_is_not_looked_at(parse: Any) -> None:
    body = (
        b'{"prefetch": {"observations": {"resourceType": "Bundle", "entry": [{"resource": '
        b'{"resourceType": "Observation", "code": {"coding": [{"code": "8867-4"}]}, '
        b'"valueQuantity": {"value": 1e999}}}]}}}'
    )
    data = parse_json(body, max_depth=64, decode=parse)
    assert data["prefetch"]["observations"]["entry"] == [{"resource": SKIPPED_OBSERVATION}]


async def test_the_hook_call_answers_from_the_skim_and_strict_mode_from_the_full_parse() -> None:
    request = json.loads((FIXTURES / "patients" / "r21-colon-right-icd10.json").read_text())
    junk = {"resourceType": "Observation", "id": "junk-1", "code": {"coding": [{"code": "x"}]}}
    junk["status"] = 5  # not a valid FHIR code: only a validator of every resource sees it
    request["prefetch"]["observations"]["entry"].append({"resource": junk})
    for strict in (False, True):
        settings = make_settings(strict_fhir=strict)
        async with running_app(settings, clock=lambda: EVALUATED_AT) as app:
            response = await app.client.post(HOOK_URL, json=request)
        assert response.status_code == 200
        cards = response.json()["cards"]
        assert cards[0]["source"]["topic"]["code"] == "resectable"
        # The same parse as the endpoint (tests/pipeline_harness.py): only strict mode builds
        # and validates the unread Observation, so only it names the bad status.
        notes = (
            await evaluate_request_async(request, at=EVALUATED_AT, settings=settings)
        ).assessment
        named = {n.resource for n in notes.data_quality}
        assert ("Observation/junk-1" in named) is strict


# --- the nesting limit on what the skim builds ---------------------------------------------


def _nested(levels: int) -> Any:
    """A value ``levels`` deep: lists inside an object, as an extension might carry."""
    value: Any = "x"
    for _ in range(levels - 1):
        value = [value]
    return {"deep": value}


def _place(where: str, value: Any) -> dict[str, Any]:
    """A valid request with ``value`` put at one of the places the skim builds from a slice."""
    kept = {
        "resourceType": "Observation",
        "code": {"coding": [{"system": "http://loinc.org", "code": "1975-2"}]},
    }
    request = hook_request()
    prefetch_ = request["prefetch"]
    if where == "context":
        request["context"]["extra"] = value
    elif where == "fhirAuthorization":
        request["fhirAuthorization"] = value
    elif where == "patient":
        prefetch_["patient"]["extension"] = value
    elif where == "condition":
        prefetch_["conditions"]["entry"] = [{"resource": {"resourceType": "Condition", "x": value}}]
    elif where == "read-observation":
        prefetch_["observations"]["entry"] = [{"resource": {**kept, "x": value}}]
    elif where == "bundle-link":
        prefetch_["conditions"]["link"] = value
    elif where == "entry-fullUrl":
        prefetch_["conditions"]["entry"] = [{"fullUrl": value, "resource": {"resourceType": "C"}}]
    elif where == "loose-entry":
        prefetch_["conditions"]["entry"] = [[value]]
    elif where == "other-prefetch-value":
        prefetch_["observations"] = [value]
    return request


BUILT_PLACES = [
    "context",
    "fhirAuthorization",
    "patient",
    "condition",
    "read-observation",
    "bundle-link",
    "loose-entry",
    "other-prefetch-value",
]


@PARSERS
@pytest.mark.parametrize("where", BUILT_PLACES)
def test_what_the_skim_builds_is_held_to_the_depth_limit_exactly_as_the_full_parse(
    where: str, parse: Any
) -> None:
    # At every place a built part can sit, each depth around the limit is refused by the
    # skim if and only if the whole-body count refuses it.
    for levels in range(50, 70):
        body = orjson.dumps(_place(where, _nested(levels)))
        full = _refused(body, decode=None)
        skimmed = _refused(body, decode=parse)
        assert skimmed == full, (where, levels)
    assert _refused(orjson.dumps(_place(where, _nested(70))), decode=parse)
    assert not _refused(orjson.dumps(_place(where, _nested(3))), decode=parse)


def _refused(body: bytes, decode: Any) -> bool:
    try:
        parse_json(body, max_depth=64, decode=decode)
    except BadRequest as exc:
        assert "nested more than 64 levels" in exc.message
        return True
    return False


@PARSERS
def test_nesting_inside_an_unread_observation_is_not_looked_at_until_the_parser_limit(
    parse: Any,
) -> None:
    unread = {"resourceType": "Observation", "code": {"coding": [{"code": "8867-4"}]}}
    request = hook_request()
    request["prefetch"]["observations"]["entry"] = [{"resource": {**unread, "x": _nested(200)}}]
    data = parse_json(orjson.dumps(request), max_depth=64, decode=parse)
    assert data["prefetch"]["observations"]["entry"] == [{"resource": SKIPPED_OBSERVATION}]

    # Past Python's recursion limit msgspec stops, and that is a 400 too.
    body = orjson.dumps(request).replace(
        b'"x":{', b'"x":' + b"[" * 5000 + b"0" + b"]" * 5000 + b',"y":{', 1
    )
    with pytest.raises(BadRequest) as info:
        parse_json(body, max_depth=64, decode=parse)
    assert "nested too deeply" in info.value.message


@PARSERS
def test_an_entrys_full_url_is_not_built_nor_looked_at(parse: Any) -> None:
    # ``unpack`` reads an entry's resource and search mode, never its fullUrl: the skim
    # leaves it out (each kept entry was one orjson call more), so nesting inside it is
    # not looked at either, as inside an unread Observation.
    request = hook_request()
    condition = {"resourceType": "Condition", "id": "c1"}
    entry = {"fullUrl": "https://ehr.example.org/fhir/Condition/c1", "resource": condition}
    request["prefetch"]["conditions"]["entry"] = [entry, {**entry, "fullUrl": _nested(200)}]
    body = orjson.dumps(request)
    assert _refused(body, decode=None)  # the full parse counts the whole body
    data = parse_json(body, max_depth=64, decode=parse)
    assert data["prefetch"]["conditions"]["entry"] == [{"resource": condition}] * 2


# --- the parser of the service's declared prefetch ---------------------------------------


def _declared_only(data: Any) -> Any:
    """``data`` with only the prefetch keys the service declares (the others are ignored)."""
    if isinstance(data, dict) and isinstance(data.get("prefetch"), dict):
        assert SERVICE is not None
        prefetch_ = {k: v for k, v in data["prefetch"].items() if k in SERVICE.prefetch}
        return {**data, "prefetch": prefetch_}
    return data


OUTCOME = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "x"}]}


@pytest.mark.parametrize(
    "prefetch_",
    [
        pytest.param({"conditions": OUTCOME}, id="search-answered-by-an-OperationOutcome"),
        pytest.param({"conditions": {"resourceType": "Condition"}}, id="search-given-a-resource"),
        pytest.param({"conditions": {"resourceType": "Bundle"}}, id="bundle-without-entry"),
        pytest.param({"conditions": {"resourceType": "Bundle", "entry": 5}}, id="entry-not-a-list"),
        pytest.param({"conditions": {"entry": []}}, id="bundle-without-resourceType"),
        pytest.param({"conditions": [1]}, id="search-given-a-list"),
        pytest.param({"patient": None, "conditions": None, "observations": None}, id="nulls"),
        pytest.param({"patient": OUTCOME}, id="read-answered-by-an-OperationOutcome"),
        pytest.param({"patient": [1, 2]}, id="read-given-a-list"),
        pytest.param({"undeclared": {"resourceType": "Bundle"}}, id="undeclared-key"),
        pytest.param({}, id="empty"),
    ],
)
def test_the_declared_parser_gives_what_the_general_skim_gives(prefetch_: dict[str, Any]) -> None:
    request = hook_request()
    request["prefetch"].update(prefetch_)
    body = orjson.dumps(request)
    assert DECLARED(body, 64) == _declared_only(parse_hook_body(body, 64))


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2]",
        b'"a string"',
        b'{"hook": "patient-view", "prefetch": [1]}',
        b'{"prefetch": null}',
        b'{"hook": "patient-view"}',
        b'{"hook": 5, "context": [], "prefetch": {"observations": 5}}',
        # A Bundle sent for the read key: skimmed as the general skim does (the unread
        # Observation's overflowing number and deep nesting are not looked at).
        b'{"prefetch": {"patient": {"resourceType": "Bundle", "entry": [{"resource": '
        b'{"resourceType": "Observation", "code": {"coding": [{"code": "8867-4"}]}, '
        b'"v": 1e999, "deep": ' + b"[" * 70 + b"]" * 70 + b"}}]}}}",
    ],
)
def test_the_declared_parser_parses_other_envelopes_as_the_general_skim(body: bytes) -> None:
    assert DECLARED(body, 64) == _declared_only(parse_hook_body(body, 64))


@pytest.mark.parametrize(("name", "request_body"), _fixture_requests(), ids=lambda v: str(v)[:60])
def test_the_declared_parser_builds_every_fixture_as_the_general_skim(
    name: str, request_body: dict[str, Any]
) -> None:
    for request in (request_body, _with_junk(request_body)):
        body = orjson.dumps(request)
        assert DECLARED(body, 64) == _declared_only(parse_hook_body(body, 64))


# --- rule set v2: the optional procedures key -----------------------------------------------------

CPT = "http://www.ama-assn.org/go/cpt"


def _procedure(rid: str, code: str, patient: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": rid,
        "status": "completed",
        "code": {"coding": [{"system": CPT, "code": code}], "text": "hepatectomy"},
        "subject": {"reference": f"Patient/{patient}"},
        "performedDateTime": "2025-11-02",
        **extra,
    }


def _with_procedures(request: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(request)
    patient = out["context"]["patientId"]
    out["prefetch"]["procedures"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": _procedure("right", "47130", patient)},
            {"resource": _procedure("wedge", "47120", patient, status="in-progress")},
            {"resource": _procedure("theirs", "47125", "someone-else")},
            {"resource": {"resourceType": "Procedure", "id": "no-code", "status": "completed"}},
        ],
    }
    return out


@PARSERS
def test_procedures_are_built_by_the_skim_and_read_as_by_the_full_parse(parse: Any) -> None:
    (_, colorectal) = next(c for c in _fixture_requests() if "r21-colon-right-icd10" in c[0])
    body = orjson.dumps(_with_procedures(colorectal))
    data = parse(body, 64)
    assert data["prefetch"]["procedures"] == orjson.loads(body)["prefetch"]["procedures"]
    full, _ = _assessment(orjson.loads(body), EVALUATED_AT)
    skimmed, _ = _assessment(data, EVALUATED_AT)
    assert skimmed == full
    assert full.facts.prior_liver_resection == "hemihepatectomy"
    assert full.facts.prior_liver_resection_source == "Procedure/right"
    assert full.facts.procedures_checked


def test_without_the_procedures_key_previous_surgery_is_unchecked_and_nothing_else_changes() -> (
    None
):
    (_, colorectal) = next(c for c in _fixture_requests() if "r21-colon-right-icd10" in c[0])
    sent = copy.deepcopy(colorectal)
    sent["prefetch"]["procedures"] = None  # sent: "no Procedures"
    absent = copy.deepcopy(colorectal)
    absent["prefetch"].pop("procedures", None)  # neither sent nor fetchable (no fhirServer)
    with_key, _ = _assessment(sent, EVALUATED_AT)
    without, _ = _assessment(absent, EVALUATED_AT)
    assert with_key.facts.procedures_checked and not without.facts.procedures_checked
    assert without.verdict == with_key.verdict
    assert any("procedures" in n.resource for n in without.data_quality)


# --- small bodies: parsed whole, skimmed as dicts -------------------------------------------


@pytest.mark.parametrize(("name", "request_body"), _fixture_requests(), ids=lambda v: str(v)[:60])
def test_a_small_body_parsed_whole_gives_exactly_what_the_skim_gives(
    name: str, request_body: dict[str, Any]
) -> None:
    for request in (request_body, _with_procedures(request_body)):
        body = orjson.dumps(request)
        assert DECLARED(body, 64) == DECLARED_SKIM(body, 64)
        whole = DECLARED._whole(body, 64)
        if whole is None:  # a search answered by one resource: the general skim decides
            continue
        assert whole == DECLARED_SKIM(body, 64)
        # The same stand-in object, so unpack() and select() pass over it as before.
        for value in whole["prefetch"].values():
            for entry in (value or {}).get("entry", ()):
                assert entry is SKIPPED_ENTRY or entry != {"resource": SKIPPED_OBSERVATION}
    # With an entry that is not an object the skim decides, and the answer is the same.
    body = orjson.dumps(_with_junk(request_body))
    assert DECLARED(body, 64) == DECLARED_SKIM(body, 64)


def test_w0_and_w1_parsed_whole_give_what_the_skim_gives() -> None:
    for request in (workloads.w0(), workloads.hook_request(unrelated_obs=300)):
        body = orjson.dumps(request)
        whole = DECLARED._whole(body, 64)
        assert whole is not None
        assert whole == DECLARED_SKIM(body, 64)


_PROBED = {"resourceType": "Observation", "id": "p", "subject": {"reference": "Patient/x"}}


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param({"resource": {**_PROBED, "code": None}}, id="code-null"),
        pytest.param({"resource": {**_PROBED, "code": {"coding": None}}}, id="coding-null"),
        pytest.param({"resource": {**_PROBED, "code": {"text": "x"}}}, id="no-coding"),
        pytest.param({"resource": {**_PROBED, "code": "x"}}, id="code-a-string"),
        pytest.param({"resource": {**_PROBED, "code": {"coding": {}}}}, id="coding-an-object"),
        pytest.param({"resource": {**_PROBED, "code": {"coding": [None]}}}, id="coding-null-item"),
        pytest.param(
            {"resource": {**_PROBED, "code": {"coding": [{"system": None, "code": None}]}}},
            id="coding-nulls",
        ),
        pytest.param(
            {"resource": {**_PROBED, "code": {"coding": [{"code": "8867-4"}, {"code": 5}]}}},
            id="a-bad-code-after-an-unread-one",
        ),
        pytest.param(
            {
                "resource": {
                    **_PROBED,
                    "code": {"coding": [{"system": "http://loinc.org", "code": "1975-2"}, 7]},
                }
            },
            id="a-read-code-then-junk",
        ),
        pytest.param({"resource": {**_PROBED, "resourceType": 5}}, id="type-a-number"),
        pytest.param({"resource": {**_PROBED, "resourceType": None}}, id="type-null"),
        pytest.param({"search": {"mode": "outcome"}, "resource": _PROBED}, id="outcome"),
        pytest.param({"search": {"mode": None}, "resource": _PROBED}, id="mode-null"),
        pytest.param({"search": {}, "fullUrl": None, "resource": _PROBED}, id="search-empty"),
        pytest.param({"fullUrl": "urn:x"}, id="no-resource"),
        pytest.param({"resource": [1]}, id="resource-a-list"),
        pytest.param({"search": None, "resource": _PROBED}, id="search-null"),
        pytest.param({"search": {"mode": 5}, "resource": _PROBED}, id="mode-a-number"),
        pytest.param({"search": [], "resource": _PROBED}, id="search-a-list"),
        pytest.param(5, id="entry-a-number"),
    ],
)
def test_each_entry_shape_is_parsed_whole_as_the_skim_reads_it(entry: Any) -> None:
    request = hook_request()
    request["prefetch"]["observations"]["entry"] = [entry]
    body = orjson.dumps(request)
    assert DECLARED(body, 64) == DECLARED_SKIM(body, 64)


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2]",
        b"null",
        b'{"hook": "patient-view", "prefetch": [1]}',
        b'{"prefetch": null}',
        b'{"prefetch": {}}',
        b'{"hook": "patient-view", "extension": {"x": 1e999}}',
        b'{"prefetch": {"patient": {"resourceType": "Bundle", "entry": []}}}',
        b'{"prefetch": {"patient": {"resourceType": "Bundle"}}}',
        b'{"prefetch": {"conditions": {"resourceType": "Bundle", "entry": null}}}',
        b'{"prefetch": {"conditions": {"resourceType": "Bundle", "entry": [], "link": null}}}',
        b'{"prefetch": {"conditions": {"resourceType": "Condition", "entry": []}}}',
        b'{"prefetch": {"conditions": {"resourceType": 5, "entry": []}}}',
        b'{"prefetch": {"conditions": {"entry": []}}}',
        b'{"hook": "a", "hook": "b", "prefetch": {"conditions": null, "conditions": '
        b'{"resourceType": "Bundle", "entry": []}}}',
        b'{"prefetch": {"conditions": {"resourceType": "Bundle", "entry": '
        b'[{"search": {"mode": "outcome"}, "search": {"mode": "match"}, '
        b'"resource": {"resourceType": "Observation"}}]}}}',
    ],
)
def test_other_small_bodies_parse_as_the_skim_parses_them(body: bytes) -> None:
    assert DECLARED(body, 64) == DECLARED_SKIM(body, 64)


@pytest.mark.parametrize(
    "replace",
    [
        (b'"resourceType":"Observation"', b'"resourc\\u0065Type":"Observation"'),
        (b'"code":{"coding"', b'"c\\u006fde":{"coding"'),
        (b'"entry":', b'"\\u0065ntry":'),
    ],
)
def test_a_body_with_an_escaped_key_is_left_to_the_skim(replace: tuple[bytes, bytes]) -> None:
    # msgspec does not unescape keys, orjson does: the two would read different documents.
    (_, colorectal) = next(c for c in _fixture_requests() if "r21-colon-right-icd10" in c[0])
    body = orjson.dumps(colorectal).replace(*replace)
    assert body != orjson.dumps(colorectal)
    assert DECLARED._whole(body, 64) is None
    assert DECLARED(body, 64) == DECLARED_SKIM(body, 64)


def test_a_repeated_key_reads_the_same_assessment_whole_and_skimmed() -> None:
    # msgspec refuses a repeated typed key whose first value has the wrong type, where
    # orjson keeps the last value: the skim then falls back to building more (the whole
    # entry, the whole body), which reads the same resources.
    (_, colorectal) = next(c for c in _fixture_requests() if "r21-colon-right-icd10" in c[0])
    body = orjson.dumps(colorectal)
    for old, new in [
        (b'"search":{', b'"search":null,"search":{'),
        (b'"code":{"coding"', b'"code":5,"code":{"coding"'),
        (b'"prefetch":{', b'"prefetch":5,"prefetch":{'),
        (b'"entry":[', b'"entry":7,"entry":['),
    ]:
        changed = body.replace(old, new)
        assert changed != body
        whole, _ = _assessment(DECLARED(changed, 64), EVALUATED_AT)
        skimmed, _ = _assessment(DECLARED_SKIM(changed, 64), EVALUATED_AT)
        full, _ = _assessment(orjson.loads(changed), EVALUATED_AT)
        assert whole == skimmed == full


def test_a_body_over_the_size_limit_is_skimmed_on_its_bytes() -> None:
    body = orjson.dumps(workloads.hook_request(unrelated_obs=300))
    assert len(body) > SMALL_BODY_BYTES
    assert SERVICE is not None
    small = HookBodyParser(SERVICE.prefetch, small_body_bytes=len(body) - 1)
    assert small(body, 64) == DECLARED_SKIM(body, 64)
