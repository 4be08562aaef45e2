"""The Medplum FHIR R4 test server (Node) and its Python launcher and pytest plugin."""
