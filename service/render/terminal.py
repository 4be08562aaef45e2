"""Cards as a clinician reads them in a terminal (``liver-cds evaluate FILE --cards``).

Shows what an EHR would: the indicator and summary first, then the detail (Markdown turned
into plain wrapped text), the suggestions as buttons with what each would create, the links
and the override reasons. Pure function of the cards array: no I/O, no colours.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

from service.render import markdown as md

WIDTH = 100
_LIST_ITEM = re.compile(r"^(\s*)((?:[-*]|\d+\.)\s+)?(.*)$")


def format_cards_for_terminal(cards: list[dict[str, Any]]) -> str:
    """Plain text of a ``cards`` array; ``"No cards."`` when there are none."""
    if not cards:
        return "No cards.\n"
    blocks = [_card(card, number, len(cards)) for number, card in enumerate(cards, start=1)]
    return "\n\n".join(blocks) + "\n"


def _card(card: dict[str, Any], number: int, total: int) -> str:
    source = card.get("source", {})
    topic = source.get("topic", {}).get("display") or source.get("topic", {}).get("code", "")
    header = f"== Card {number} of {total} | {str(card.get('indicator', '')).upper()}"
    header += f" | {topic} ==" if topic else " =="
    lines = [header, str(card.get("summary", ""))]
    label = source.get("label", "")
    if label:
        lines.append(f"Source: {label}" + (f" <{source['url']}>" if source.get("url") else ""))
    detail = card.get("detail")
    if detail:
        lines.append("")
        lines.extend(_wrap_markdown(str(detail), indent="  "))
    suggestions = card.get("suggestions") or []
    if suggestions:
        behaviour = card.get("selectionBehavior", "")
        lines += ["", f"  Suggestions (select {behaviour}):" if behaviour else "  Suggestions:"]
        for suggestion in suggestions:
            lines.extend(_suggestion(suggestion))
    links = card.get("links") or []
    if links:
        lines += ["", "  Links:"]
        for link in links:
            kind = " [SMART app]" if link.get("type") == "smart" else ""
            lines.append(f"    {link.get('label', '')}{kind}: {link.get('url', '')}")
    reasons = card.get("overrideReasons") or []
    if reasons:
        lines += [
            "",
            "  Override reasons: " + "; ".join(str(r.get("display", "")) for r in reasons),
        ]
    return "\n".join(lines)


def _suggestion(suggestion: dict[str, Any]) -> list[str]:
    mark = "[recommended]" if suggestion.get("isRecommended") else "[optional]   "
    out = [f"    {mark} {suggestion.get('label', '')}"]
    for action in suggestion.get("actions") or []:
        resource = action.get("resource") or {}
        code = resource.get("code") or {}
        codes = ", ".join(
            f"{c.get('system', '').rsplit('/', 1)[-1]}#{c.get('code', '')}"
            for c in code.get("coding") or []
        )
        what = f"{resource.get('resourceType', 'resource')} ({resource.get('status', '')}"
        what += f", {resource.get('intent', '')}): {code.get('text', '')}"
        out.append(f"        {action.get('type', '')} {what}" + (f" [{codes}]" if codes else ""))
    return out


def _wrap_markdown(markdown: str, indent: str) -> list[str]:
    out: list[str] = []
    for raw in md.plain(markdown).splitlines():
        if not raw.strip():
            out.append("")
            continue
        match = _LIST_ITEM.match(raw)
        lead, marker, rest = (
            (match.group(1), match.group(2) or "", match.group(3)) if match else ("", "", raw)
        )
        first = indent + lead + marker
        wrapped = textwrap.wrap(
            rest,
            width=WIDTH,
            initial_indent=first,
            subsequent_indent=" " * len(first),
            break_on_hyphens=False,
        )
        out.extend(wrapped or [first.rstrip()])
    return out
