"""The data-needed card: what is missing or out of date, why it matters, what to order.

Items come from ``Assessment.missing`` (essential first, as the engine ranks them); their
wording and the order that fills each gap come from ``cards/data-needed.yaml``. Several
items may share one order (one liver imaging study gives distribution, count and size), so
suggestions are one per distinct order. Each suggestion proposes a draft ServiceRequest
coded in this project's data-request system, with the order text in ``code.text``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from service.clinical.model import Assessment, MissingItem
from service.render import markdown as md
from service.render import proposals, templates
from service.render.content import MORE_ITEMS, SUMMARY_MAX, CardContent, MissingContent
from service.render.prepared import prepared

_BRACKETS = re.compile(r"\(([^)]*)\)")


def missing_items(assessment: Assessment) -> list[MissingItem]:
    """Missing items, essential first, one per fact (the first one the engine gave)."""
    seen: set[str] = set()
    out = []
    for item in sorted(assessment.missing, key=lambda m: not m.essential):
        if item.fact not in seen:
            seen.add(item.fact)
            out.append(item)
    return out


def _item_content(content: CardContent, fact: str) -> MissingContent:
    found = content.missing.get(fact)
    if found is not None:
        return found
    plain = " ".join(str(fact).replace("-", " ").split()) or "data"
    return MissingContent(fact, plain, plain, plain, plain, plain, None, None, plain)


def data_needed_summary(content: CardContent, items: list[MissingItem]) -> str:
    template = (
        content.data_summary_essential
        if any(i.essential for i in items)
        else content.data_summary_refine
    )
    shorts = [_item_content(content, i.fact).short for i in items]
    text = templates.fill(template, {"items": ", ".join(shorts)})
    shown = len(shorts)
    while len(text) > SUMMARY_MAX and shown > 1:
        shown -= 1  # list what fits, then count the rest ("and 3 more")
        names = ", ".join(shorts[:shown]) + MORE_ITEMS.format(count=len(shorts) - shown)
        text = templates.fill(template, {"items": names})
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"


def data_needed_card(
    assessment: Assessment,
    patient_id: str,
    new_uuid: Callable[[], str],
    content: CardContent,
) -> dict[str, Any]:
    items = missing_items(assessment)
    ready = prepared(content)
    source: dict[str, Any] = {"label": content.source_label}
    if content.documentation_url:
        source["url"] = content.documentation_url
    source["topic"] = ready.topics["data-needed"]
    card: dict[str, Any] = {
        "uuid": new_uuid(),
        "summary": data_needed_summary(content, items),
        "indicator": "info",
        "detail": data_needed_detail(
            content,
            items,
            liver_disease=assessment.facts.cirrhosis or assessment.facts.tumour_kind == "hcc",
        ),
        "source": source,
    }
    suggestions = order_suggestions(content, items, patient_id, new_uuid, assessment)
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = "any"
    reasons = ready.override_reason_codings("data-needed")
    if reasons:
        card["overrideReasons"] = reasons
    return card


def data_needed_detail(
    content: CardContent, items: list[MissingItem], *, liver_disease: bool = False
) -> str:
    """Each item with its status, what it would change, and what to order.

    ``liver_disease``: the patient has cirrhosis or HCC, so the rules that apply only then
    (Child-Pugh B and resection) may be named; never otherwise (cards.md v2).
    """
    texts = content.data_texts
    sections = []
    for essential, heading in ((True, "essential_heading"), (False, "refine_heading")):
        lines = [
            _line(content, item, liver_disease) for item in items if item.essential is essential
        ]
        if lines:
            sections.append(f"**{texts[heading]}**\n\n" + "\n".join(lines))
    return "\n\n".join(sections)


def _line(content: CardContent, item: MissingItem, liver_disease: bool) -> str:
    texts = content.data_texts
    wording = _item_content(content, item.fact)
    if item.stale_since is not None:
        status = templates.fill(texts["stale"], {"date": md.day(item.stale_since)})
    else:
        status = wording.missing or texts["missing"]
    why = wording.why_essential if item.essential else wording.why_refine
    if wording.why_liver_disease and liver_disease:
        why = wording.why_liver_disease  # a rule that applies only with cirrhosis or HCC
    detail = " ".join(item.detail.split())
    if detail and not _already_said(detail, wording.label, why):
        status += f" ({md.text(detail)})"  # which inputs, e.g. "no INR"
    order = content.orders.get(wording.order) if wording.order else None
    if order is not None:
        todo = templates.fill(texts["order_line"], {"order": order.display})
    else:
        todo = templates.fill(texts["no_order_line"], {"action": wording.action or ""})
    return f"- **{wording.label}**: {status}. {why} {todo}"


def _already_said(detail: str, label: str, why: str) -> bool:
    """The engine's detail repeats the label's bracket ("ECOG or Karnofsky") or the why."""
    lowered = detail.lower()
    brackets = [part.lower() for part in _BRACKETS.findall(label)]
    return lowered in brackets or lowered in why.lower()


def order_suggestions(
    content: CardContent,
    items: list[MissingItem],
    patient_id: str,
    new_uuid: Callable[[], str],
    assessment: Assessment,
) -> list[dict[str, Any]]:
    """One recommended suggestion per distinct order, in the order of the items."""
    reasons = proposals.reason_references(assessment.facts.liver_conditions)
    patient = proposals.for_patient(patient_id, reasons, content.texts["more_conditions"])
    seen: set[str] = set()
    out = []
    for item in items:
        code = _item_content(content, item.fact).order
        order = content.orders.get(code) if code else None
        if order is None or order.code in seen:
            continue
        seen.add(order.code)
        codings = [
            {"system": proposals.DATA_REQUEST_SYSTEM, "code": order.code, "display": order.display},
            *order.codings,
        ]
        description = templates.fill(content.texts["action_description"], {"label": order.display})
        resource = proposals.proposal(proposals.proposal_code(codings, order.text), patient)
        out.append(proposals.suggestion(new_uuid, order.suggestion, True, description, resource))
    return out
