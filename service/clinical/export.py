"""An :class:`Assessment` as plain JSON-ready data (for ``liver-cds evaluate --json``).

Field names are the model's; datetimes are ISO 8601 strings, sets are sorted lists, so two
runs on the same input give byte-identical JSON.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import Any

from service.clinical.model import Assessment


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, frozenset | set):
        return sorted(to_jsonable(v) for v in value)
    if isinstance(value, tuple | list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


def assessment_to_dict(assessment: Assessment) -> dict[str, Any]:
    """The whole assessment (facts, scores, options, missing, notes) as JSON-ready data."""
    data: dict[str, Any] = to_jsonable(assessment)
    data["recommended"] = list(assessment.recommended)
    data["offered"] = list(assessment.offered)
    return data
