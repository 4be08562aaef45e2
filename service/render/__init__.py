"""Turning an assessment into CDS Hooks cards, with wording loaded from ``cards/``."""
