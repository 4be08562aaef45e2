"""Reference data that is not part of this repository, found through environment variables.

A few tests check the service against material published elsewhere: the HL7 US Core
example resources (real-world-shaped FHIR data) and the project's specification documents
(every code in the code sets appears in the FHIR mapping). The repository does not copy
that material; a test that needs it skips, saying which variable to set, when it is not
given. The README ("Tests that need data from outside the repository") says where to get it.
"""

from __future__ import annotations

import os
from pathlib import Path

US_CORE_ENV = "TEST_US_CORE_DIR"
"""A directory of US Core example resources (``*.json``, searched recursively)."""
SPEC_ENV = "TEST_SPEC_DIR"
"""The directory of the project's specification documents (``fhir-mapping.md``, ...)."""


def _directory(variable: str) -> Path | None:
    value = os.environ.get(variable, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    return path if path.is_dir() else None


def us_core_directory() -> Path | None:
    """``TEST_US_CORE_DIR``, or ``None`` when it is unset or not a directory."""
    return _directory(US_CORE_ENV)


def us_core_examples() -> list[Path]:
    """The US Core example files, or ``[]`` when ``TEST_US_CORE_DIR`` is unset or empty."""
    directory = us_core_directory()
    return sorted(directory.rglob("*.json")) if directory else []


def spec_document(name: str) -> Path | None:
    """``$TEST_SPEC_DIR/name``, or ``None`` when the variable is unset or the file absent."""
    directory = _directory(SPEC_ENV)
    path = directory / name if directory else None
    return path if path is not None and path.is_file() else None


def missing(variable: str, what: str) -> str:
    """The skip reason of a test whose reference data was not given."""
    value = os.environ.get(variable, "").strip()
    given = f" ({variable}={value!r} is not a directory holding it)" if value else ""
    return (
        f"needs {what} from outside the repository: set {variable}{given}; see the README, "
        "'Tests that need data from outside the repository'"
    )
