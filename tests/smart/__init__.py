"""Tests of the full assessment view (service/smart): unit tests and the SMART launch."""
