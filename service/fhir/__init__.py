"""Getting FHIR resources: prefetch unpacking, FHIR server fetching, lenient typed reading."""
