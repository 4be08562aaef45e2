"""Liver CDS: a CDS Hooks 2.0 service for liver metastasis and intrahepatic-spread resectability.

The data flows one way (see ``shared/spec/architecture.md``)::

    HTTP request -> protocol check -> prefetch or FHIR fetch -> resources -> facts
      -> assessment (pure) -> cards -> response (+ audit off the hot path)
"""

__version__ = "0.1.0"
SERVICE_ID = "liver-metastasis-resectability"
ORDER_CHECK_SERVICE_ID = "liver-directed-order-check"
