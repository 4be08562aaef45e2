"""Test-suite wiring: the real FHIR server (Medplum) and the fault-injecting FHIR server.

``tests/`` is on ``sys.path`` (pytest's rootdir-relative import of this conftest), so the
plugins are imported by their module names. Do not add ``tests/fhir/__init__.py``: a
``fhir`` package on ``sys.path`` would shadow ``fhir.resources``.
"""

pytest_plugins = ["fhir_server.plugin", "faults.plugin"]
