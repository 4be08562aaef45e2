"""A fault-injecting FHIR server for the resilience tests of the fetch path."""
