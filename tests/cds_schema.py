"""Checking a service response against the CDS Hooks 2.0 response schema of the project.

``tests/schemas/cds-services-response.schema.json`` is written from the 2.0 specification
(no nulls, no empty values, summary < 140 characters, selectionBehavior with suggestions,
display on override reasons, appContext only on smart links, ...). Any test that gets a
response from the service can check it::

    from cds_schema import assert_valid_response
    assert_valid_response(response.json())
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "cds-services-response.schema.json"


@cache
def response_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return schema


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(response_schema())


def schema_errors(body: Any) -> list[str]:
    """Every violation, as ``path: message`` lines (empty when the body is valid)."""
    errors = sorted(_validator().iter_errors(body), key=lambda e: list(e.absolute_path))
    return [f"/{'/'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in errors]


def assert_valid_response(body: Any) -> None:
    """Fail with every violation listed when ``body`` is not a valid 2.0 response."""
    errors = schema_errors(body)
    assert not errors, "response violates the CDS Hooks 2.0 schema:\n" + "\n".join(errors)
