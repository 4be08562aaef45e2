"""Reading a request body: media type, size (declared and streamed), JSON syntax, depth, repeats."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.jsondepth import JsonTooDeep, check_depth, has_escaped_key, json_depth
from service.protocol import jsonbody
from service.protocol.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from service.protocol.jsonbody import (
    _TRIGGERS,
    _occurs_twice,
    check_content_type,
    check_declared_length,
    check_repeated_envelope_keys,
    parse_json,
    read_body,
)

# --- media type -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        'application/json; charset="utf-8"',
        "application/fhir+json",
    ],
)
def test_json_media_types_are_accepted(header: str) -> None:
    check_content_type(header)


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        (None, "none was sent"),
        ("", "none was sent"),
        ("text/plain", "text/plain"),
        ("application/x-www-form-urlencoded", "application/x-www-form-urlencoded"),
        ("application/json; charset=iso-8859-1", "iso-8859-1"),
    ],
)
def test_other_media_types_are_refused_with_415(header: str | None, fragment: str) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        check_content_type(header)
    assert info.value.status == 415
    assert fragment in info.value.message


# --- size -------------------------------------------------------------------------------------


def test_declared_length_over_the_limit_is_413_before_reading() -> None:
    with pytest.raises(PayloadTooLarge) as info:
        check_declared_length("1001", 1000)
    assert "1000 bytes" in info.value.message
    check_declared_length("1000", 1000)
    check_declared_length(None, 1000)


@pytest.mark.parametrize("header", ["abc", "-1", "1e3"])
def test_unusable_declared_length_is_400(header: str) -> None:
    with pytest.raises(BadRequest):
        check_declared_length(header, 1000)


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_streamed_body_is_counted_and_cut_at_the_limit() -> None:
    assert await read_body(_chunks(b"ab", b"", b"cd"), 4) == b"abcd"
    consumed: list[bytes] = []

    async def endless() -> AsyncIterator[bytes]:
        while True:
            consumed.append(b"x" * 100)
            yield b"x" * 100

    with pytest.raises(PayloadTooLarge):
        await read_body(endless(), 1000)
    assert len(consumed) == 11  # stopped at the first chunk past the limit


# --- syntax -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"", b"   ", b"{", b"NaN", b"[1e400]", b'{"a": 1} x', b'"\xff"', b"{'a': 1}", b'"\\ud800"'],
)
def test_invalid_json_is_400(body: bytes) -> None:
    with pytest.raises(BadRequest) as info:
        parse_json(body, max_depth=64)
    assert info.value.status == 400


def test_valid_json_of_any_type_is_returned_for_the_shape_check() -> None:
    assert parse_json(b"[1, 2]", max_depth=64) == [1, 2]
    assert parse_json(b'{"a": {"b": null}}', max_depth=64) == {"a": {"b": None}}


def test_nesting_beyond_the_limit_is_400() -> None:
    deep = b"[" * 65 + b"]" * 65
    with pytest.raises(BadRequest) as info:
        parse_json(deep, max_depth=64)
    assert "64 levels" in info.value.message
    assert parse_json(b"[" * 64 + b"]" * 64, max_depth=64) is not None


def test_nesting_far_beyond_what_orjson_allows_is_still_a_clean_400() -> None:
    with pytest.raises(BadRequest):
        parse_json(b'{"a":' * 5000 + b"1" + b"}" * 5000, max_depth=10_000)


# --- depth on the bytes agrees with the depth of the parsed value ----------------------------


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


_TRICKY_TEXT = st.text(alphabet='{}[]"\\ab\n\t\u00e9\u2028', max_size=8)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TRICKY_TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_TRICKY_TEXT, children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(_JSON, st.booleans())
def test_byte_level_depth_equals_parsed_depth(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert json_depth(text.encode(), 1000) == _depth(value)


def test_depth_stops_counting_past_the_limit() -> None:
    assert json_depth(b"[[[[[[]]]]]]", 3) == 4
    assert json_depth(b'{"a": "[[[[[[[["}', 3) == 1


_JSON_VALUES = st.recursive(
    st.none() | st.integers(-9, 9) | st.sampled_from(["", "{[", "]}", 'a"b', "\\"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=40,
)


@settings(max_examples=500)
@given(
    st.lists(_JSON_VALUES, max_size=4),
    st.integers(min_value=0, max_value=6),
    st.integers(min_value=0, max_value=14),
)
def test_check_depth_refuses_exactly_what_counting_the_joined_parts_refuses(
    values: list[Any], level: int, max_depth: int
) -> None:
    # check_depth first bounds each part by its opening brackets; the bound must never
    # accept what the exact count of the joined parts refuses, nor refuse anything.
    parts = [orjson.dumps(value) for value in values]
    joined = b"".join(parts)
    budget = max_depth - level
    too_deep = bool(joined) and (budget < 0 or json_depth(joined, budget) > budget)
    try:
        check_depth(parts, level, max_depth)
    except JsonTooDeep:
        assert too_deep
    else:
        assert not too_deep


# --- repeated keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b'{"context": {"patientId": "a"}, "context": {"patientId": "b"}}', "context"),
        (b'{"context": {"patientId": "a", "patientId": "b"}}', "context.patientId"),
        (b'{"fhirServer": "https://a", "fhirServer": "https://b"}', "fhirServer"),
        # The same key spelled with an escape is the same key to every JSON parser.
        (b'{"fhirServer": "https://a", "fhir\\u0053erver": "https://b"}', "fhirServer"),
        (b'{"context": {"patientId": "a", "patient\\u0049d": "b"}}', "context.patientId"),
        (b'{"context": {"patientId": "a"}, "con\\u0074ext": {"patientId": "b"}}', "context"),
    ],
)
def test_repeating_a_key_that_decides_whose_data_is_read_is_400(body: bytes, key: str) -> None:
    with pytest.raises(BadRequest) as info:
        check_repeated_envelope_keys(body, orjson.loads(body))
    assert f"'{key}'" in info.value.message


def test_repeats_elsewhere_are_allowed_and_the_last_value_wins() -> None:
    body = (
        b'{"hook": "order-sign", "hook": "patient-view",'
        b' "context": {"patientId": "a", "userId": "x", "userId": "y"},'
        b' "prefetch": {"patient": {"resourceType": "Patient", "id": "a", "id": "b",'
        b' "text": {"div": "patientId and \\"patientId\\" in text: \\"hook\\""}}}}'
    )
    parsed = parse_json(body, max_depth=64)
    check_repeated_envelope_keys(body, parsed)
    assert parsed["hook"] == "patient-view"
    assert parsed["context"]["userId"] == "y"
    assert parsed["prefetch"]["patient"]["id"] == "b"


def test_an_escaped_key_that_does_not_repeat_is_accepted() -> None:
    body = b'{"fhir\\u0053erver": "https://a", "context": {"patientId": "a"}}'
    parsed = parse_json(body, max_depth=64)
    check_repeated_envelope_keys(body, parsed)
    assert parsed["fhirServer"] == "https://a"


@pytest.mark.parametrize(
    ("body", "escaped_key"),
    [
        (b'{"a": "caf\\u00e9", "b": ["\\u00e9\\"x\\""]}', False),
        (b'{"text": "a \\\\u0041 b": 1}', True),  # odd but harmless: only triggers the exact check
        (b'{"a\\u0062": 1}', True),
        (b'{"x": {"deep\\u0020key" : 1}}', True),
        (b'{"plain": "no escapes"}', False),
    ],
)
def test_escaped_keys_are_told_apart_from_escapes_in_values(body: bytes, escaped_key: bool) -> None:
    assert has_escaped_key(body) is escaped_key


def test_the_exact_check_reports_nesting_too_deep_for_python_as_a_400() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    body = b'{"context": {"patientId": "a", "patientId": "b"}, "x": ' + deep + b"}"
    with pytest.raises(BadRequest) as info:
        check_repeated_envelope_keys(body, {})
    assert "nested too deeply" in info.value.message


_PIECES = [
    b'"patientId"',
    b'"fhirServer"',
    b'"patientId"patientId"',  # two occurrences sharing a quote: count() takes one
    b'"fhirServer"fhirServer"',
    b'"patient',
    b'Id"',
    b"I",
    b"S",
    b'"',
    b"x",
]


@settings(max_examples=500)
@given(
    st.lists(st.sampled_from(_PIECES), max_size=60),
    st.integers(min_value=0, max_value=5000),
)
def test_the_repeat_trigger_counts_as_bytes_count_does(pieces: list[bytes], filler: int) -> None:
    # ``filler`` bytes of each name's rare letter spend the budget of the memchr search,
    # which then hands over to count() part-way through the body.
    body = b"I" * filler + b"".join(pieces) + b"S" * filler + b"".join(reversed(pieces))
    # Bodies this small are counted outright; with the threshold at 0 they take the walk.
    for outright in (jsonbody._COUNTED_OUTRIGHT, 0):
        with mock.patch.object(jsonbody, "_COUNTED_OUTRIGHT", outright):
            for key, anchor in _TRIGGERS:
                assert _occurs_twice(body, key, anchor) is (body.count(key) > 1)
