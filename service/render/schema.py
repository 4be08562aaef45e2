"""JSON Schemas of the files in ``cards/`` (structure only; meaning is checked in content.py).

Kept in code, not next to the wording, because the shape is a contract with the renderer:
a clinician edits wording in ``cards/``, an engineer edits this file together with the code.
"""

from __future__ import annotations

from typing import Any, get_args

from service.clinical.model import (
    OPTION_CODES,
    VERDICTS,
    ExtrahepaticSite,
    MissingFact,
    PrimarySite,
    RiskModifier,
    Section,
    TumourKind,
)
from service.render import nonadherence

RULE_IDS: tuple[str, ...] = (
    *(str(n) for n in range(1, 24)),
    *("1a", "4a", "7a", "12a", "12b", "13a", "16a", "19a", "20a"),
)
"""The deciding rules of clinical-rules.md §3 that produce cards (rule 0 produces none),
rule set v2's lettered rules included."""
SECTIONS: tuple[str, ...] = get_args(Section)

TOPIC_CODES: tuple[str, ...] = (*VERDICTS, "data-needed")
SCORE_KEYS: tuple[str, ...] = ("child_pugh", "albi", "meld", "meld_na", "fong", "bclc")
"""Attributes of :class:`service.clinical.model.Scores`, in display order."""
PRIMARY_SITES: tuple[str, ...] = get_args(PrimarySite)
TUMOUR_KINDS: tuple[str, ...] = get_args(TumourKind)
MISSING_FACTS: tuple[str, ...] = get_args(MissingFact)
RISK_MODIFIERS: tuple[str, ...] = get_args(RiskModifier)
DISEASE_KEYS: tuple[str, ...] = (
    "hcc",
    "other-liver-primary",
    *(f"secondary-{site}" for site in PRIMARY_SITES),
    "unknown",
)
DISTRIBUTION_KEYS: tuple[str, ...] = (
    "right",
    "left",
    "left-surface",
    "caudate",
    "single-segment",
    "single-section",
    "bilobar",
    "diffuse",
    "unknown",
)
CHILD_PUGH_KEYS: tuple[str, ...] = ("A", "B", "C", "unknown")
CARD_KINDS: tuple[str, ...] = ("assessment", "data-needed", "order-check")

RULESET_TEXTS: dict[str, tuple[str, ...]] = {
    "verdict_line": ("verdict", "rule", "rule_text"),
    "heuristic_line": ("text",),
    "facts_heading": (),
    "options_heading": (),
    "scores_heading": (),
    "assumptions_heading": (),
    "data_quality_heading": (),
    "sources_heading": (),
    "recommended": (),
    "offered": (),
    "offered_by_rule": ("rule",),
    "risks": ("risks",),
    "for_this_patient": ("text",),
    "no_risks": (),
    "point": ("points",),
    "points": ("points",),
    "assumed": (),
    "unknown_inputs": ("items",),
    "data_needed_pointer": (),
    "ruleset_line": ("label",),
    "action_description": ("label",),
    "reason_unknown": (),
    "more_conditions": ("count",),
    "reason_previous_resection": (),
}
"""Keys of ``texts`` in ruleset.yaml and the placeholders each may use."""

DATA_NEEDED_TEXTS: dict[str, tuple[str, ...]] = {
    "essential_heading": (),
    "refine_heading": (),
    "missing": (),
    "stale": ("date",),
    "order_line": ("order",),
    "no_order_line": ("action",),
}
"""Keys of ``texts`` in data-needed.yaml and the placeholders each may use."""

CARD_TEXTS: dict[str, tuple[str, ...]] = {
    "where": ("parts",),
    "one_lesion": (),
    "lesions": ("count",),
    "largest": ("size",),
    "imaging_date": ("date",),
    "imaging_stale": ("date",),
    "no_imaging_date": (),
    "liver": ("parts",),
    "child_pugh": ("category", "points"),
    "child_pugh_unknown": (),
    "bilirubin": ("value",),
    "bilirubin_above_normal": ("uln",),
    "jaundice": (),
    "ecog": ("ecog",),
    "ecog_from_karnofsky": ("ecog", "karnofsky"),
    "ecog_unknown": (),
    "flr": ("flr",),
    "flr_threshold": ("threshold",),
    "flr_unknown_major": (),
    "recorded": ("items",),
    "not_recorded": ("items",),
    "extrahepatic_sites": ("sites",),
    "portal_hypertension": ("judgement",),
    "marker": ("name", "value"),
    "unspecified_code": ("codes",),
    "liver_code_unstated": ("codes",),
    "previous_resection": ("procedure",),
    "previous_resection_none": (),
    "procedures_unchecked": (),
    "assumed": ("text",),
    "data_quality": ("text",),
    "more": ("count",),
    "options_heading": (),
    "option_line": ("option", "status", "risk"),
    "option_line_patient": ("option", "status", "risk"),
    "option_line_no_risk": ("option", "status"),
    "also_offered": ("options",),
    "not_assessed": ("items",),
    "missing": ("items",),
    "footer": ("label",),
}
"""Keys of ``card`` in ruleset.yaml (the compact assessment card) and their placeholders."""

FINDINGS: tuple[str, ...] = ("extrahepatic_disease", "cirrhosis", "macrovascular_invasion")
"""Negative findings the card states as "not recorded" (cards.md v2), in that order."""
PORTAL_HYPERTENSION_KEYS: tuple[str, ...] = (
    "present/condition",
    "present/ascites",
    "suspected/platelets",
    "not-excluded/platelets",
    "absent/platelets",
    "absent/no-cirrhosis",
    "unknown/unknown",
    "present",
    "suspected",
    "not-excluded",
    "absent",
    "unknown",
)
"""``portal_hypertension`` judgements: state/basis, and a fallback per state."""
NOT_ASSESSED_KEYS: tuple[str, ...] = ("margins", "vessels", "flr")
EXTRAHEPATIC_SITES: tuple[str, ...] = get_args(ExtrahepaticSite)
DISEASE_RISK_KEYS: tuple[str, ...] = ("hcc", *PRIMARY_SITES)

SUMMARY_FIELDS: tuple[str, ...] = ("disease", "distribution", "option", "child_pugh", "reason")

CODE_PATTERN = r"^[A-Za-z0-9-]{1,100}$"
HTTPS_URL = {"type": "string", "pattern": r"^https://[^\s<>\"]+$"}
_TEXT: dict[str, Any] = {"type": "string", "minLength": 1}
_SUGGESTION: dict[str, Any] = {"type": "string", "pattern": "^Propose ", "maxLength": 100}
"""A suggestion's button label: every suggestion creates a draft proposal, so its label
says so ("Propose ...", never "Order ..." or "Refer ...")."""


def _texts(keys: tuple[str, ...] | list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {key: _TEXT for key in keys},
        "required": list(keys),
        "additionalProperties": False,
    }


def _object(properties: dict[str, Any], required: tuple[str, ...]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def _list_of(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item, "minItems": 1, "uniqueItems": True}


def _text_map() -> dict[str, Any]:
    return {"type": "object", "additionalProperties": _TEXT}


_CODING = _object(
    {
        "system": {"type": "string", "pattern": r"^(https?|urn):\S+$"},
        "code": _TEXT,
        "display": _TEXT,
    },
    ("system", "code", "display"),
)

RULESET: dict[str, Any] = _object(
    {
        "version": {"type": "string", "pattern": r"^[0-9A-Za-z][0-9A-Za-z.\-]{0,31}$"},
        "source_label": _TEXT,
        "documentation_url": {"anyOf": [{"const": ""}, HTTPS_URL]},
        "smart_link_label": _TEXT,
        "topics": _texts(TOPIC_CODES),
        "verdicts": _object(
            {
                v: _object({"summary": _TEXT, "explanation": _TEXT}, ("summary", "explanation"))
                for v in VERDICTS
            },
            VERDICTS,
        ),
        "rules": _object(
            {
                r: _object({"reason": _TEXT, "text": _TEXT, "summary": _TEXT}, ("reason", "text"))
                for r in RULE_IDS
            },
            RULE_IDS,
        ),
        "additions": {**_text_map(), "required": ["monitoring", "best-supportive-care"]},
        "heuristics": _text_map(),
        "notes": _text_map(),
        "diseases": _texts(DISEASE_KEYS),
        "distributions": _texts(DISTRIBUTION_KEYS),
        "child_pugh": _texts(CHILD_PUGH_KEYS),
        "facts": _text_map(),
        "fact_values": {"type": "object", "additionalProperties": _text_map()},
        "scores": _object(
            {
                k: _object(
                    {"label": _TEXT, "value": _TEXT, "category": _TEXT, "note": _TEXT},
                    ("label", "value"),
                )
                for k in SCORE_KEYS
            },
            SCORE_KEYS,
        ),
        "texts": _texts(list(RULESET_TEXTS)),
        "card": _texts(list(CARD_TEXTS)),
        "sections": _texts(SECTIONS),
        "findings": _texts(FINDINGS),
        "extrahepatic_sites": _texts(EXTRAHEPATIC_SITES),
        "portal_hypertension": _texts(PORTAL_HYPERTENSION_KEYS),
        "not_assessed": _texts(NOT_ASSESSED_KEYS),
    },
    (
        "version",
        "source_label",
        "smart_link_label",
        "topics",
        "verdicts",
        "rules",
        "additions",
        "heuristics",
        "notes",
        "diseases",
        "distributions",
        "child_pugh",
        "facts",
        "fact_values",
        "scores",
        "texts",
        "card",
        "sections",
        "findings",
        "extrahepatic_sites",
        "portal_hypertension",
        "not_assessed",
    ),
)

OPTIONS: dict[str, Any] = _object(
    {
        "options": _object(
            {
                code: _object(
                    {
                        "label": _TEXT,
                        "summary": _TEXT,
                        "description": _TEXT,
                        "suggestion": _SUGGESTION,
                        "risk_group": _TEXT,
                        "codings": _list_of(_CODING),
                    },
                    ("label", "summary", "description", "suggestion"),
                )
                for code in OPTION_CODES
            },
            OPTION_CODES,
        ),
        "qualifiers": _text_map(),
    },
    ("options", "qualifiers"),
)

RISKS: dict[str, Any] = _object(
    {
        "groups": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": _object(
                {
                    "risks": _list_of(_TEXT),
                    "leading": _TEXT,
                    "by_disease": {
                        "type": "object",
                        "propertyNames": {"enum": list(DISEASE_RISK_KEYS)},
                        "additionalProperties": _list_of(_TEXT),
                    },
                    "modifiers": {
                        "type": "object",
                        "propertyNames": {"enum": list(RISK_MODIFIERS)},
                        "additionalProperties": _TEXT,
                    },
                },
                ("risks", "leading", "modifiers"),
            ),
        }
    },
    ("groups",),
)

SOURCES: dict[str, Any] = _object(
    {
        "sources": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": CODE_PATTERN},
            "additionalProperties": _object(
                {
                    "label": _TEXT,
                    "citation": _TEXT,
                    "url": HTTPS_URL,
                    "tumour_kinds": _list_of({"enum": list(TUMOUR_KINDS)}),
                    "primary_sites": _list_of({"enum": list(PRIMARY_SITES)}),
                    "cited_by": {
                        **_object(
                            {
                                "rules": _list_of({"type": "string", "minLength": 1}),
                                "scores": _list_of({"enum": list(SCORE_KEYS)}),
                                "options": _list_of({"enum": list(OPTION_CODES)}),
                                "heuristics": _list_of(_TEXT),
                            },
                            (),
                        ),
                        "minProperties": 1,
                    },
                },
                ("label", "citation", "cited_by"),
            ),
        }
    },
    ("sources",),
)

DATA_NEEDED: dict[str, Any] = _object(
    {
        "summary": _texts(["essential", "refine"]),
        "texts": _texts(list(DATA_NEEDED_TEXTS)),
        "items": _object(
            {
                fact: _object(
                    {
                        "label": _TEXT,
                        "short": _TEXT,
                        "why": _TEXT,
                        "why_essential": _TEXT,
                        "why_refine": _TEXT,
                        "why_liver_disease": _TEXT,
                        "missing": _TEXT,
                        "order": _TEXT,
                        "action": _TEXT,
                    },
                    ("label", "short", "why"),
                )
                for fact in MISSING_FACTS
            },
            MISSING_FACTS,
        ),
        "orders": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": CODE_PATTERN},
            "additionalProperties": _object(
                {
                    "display": _TEXT,
                    "text": _TEXT,
                    "suggestion": _SUGGESTION,
                    "codings": _list_of(_CODING),
                },
                ("display", "text", "suggestion"),
            ),
        },
    },
    ("summary", "texts", "items", "orders"),
)

OVERRIDE_REASONS: dict[str, Any] = _object(
    {
        "system": {"const": "https://liver-cds.org/fhir/CodeSystem/override-reason"},
        "reasons": {
            "type": "array",
            "minItems": 1,
            "items": _object(
                {
                    "code": {"type": "string", "pattern": CODE_PATTERN},
                    "display": _TEXT,
                    "cards": _list_of({"enum": list(CARD_KINDS)}),
                },
                ("code", "display"),
            ),
        },
        # HL7 non-adherence reason codes offered beside the service's own: only verified
        # codes (nonadherence.py); content.py checks each display is the code system's.
        "hl7": _object(
            {
                "system": {"const": nonadherence.SYSTEM},
                "reasons": {
                    "type": "array",
                    "minItems": 1,
                    "items": _object(
                        {
                            "code": {"enum": sorted(nonadherence.DISPLAYS)},
                            "display": _TEXT,
                            "cards": _list_of({"enum": list(CARD_KINDS)}),
                        },
                        ("code", "display"),
                    ),
                },
            },
            ("system", "reasons"),
        ),
    },
    ("system", "reasons"),
)

FILES: dict[str, dict[str, Any]] = {
    "ruleset.yaml": RULESET,
    "options.yaml": OPTIONS,
    "risks.yaml": RISKS,
    "sources.yaml": SOURCES,
    "data-needed.yaml": DATA_NEEDED,
    "override-reasons.yaml": OVERRIDE_REASONS,
}
"""Every file of ``cards/`` and its schema."""

REQUIRED_OVERRIDE_CODES: tuple[str, ...] = (
    "already-reviewed-by-mdt",
    "patient-declined",
    "data-incorrect",
    "not-clinically-appropriate",
)
