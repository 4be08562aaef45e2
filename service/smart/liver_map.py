"""The Couinaud segment map of the full view: which segments hold disease, what a proposed
resection would remove, and what would remain.

The map is built from the same reading of the record as the engine's distribution fact
(fhir-mapping.md §3): the body sites of the current liver-malignancy Conditions and of
the liver tumour-size and lesion-count Observations. A segment code shades that segment;
a lobe code (no segment) shades the side's segments as "side involved, segment not
recorded"; a diffuse qualifier shades every segment. The resection overlay follows the
offered options: a right hepatectomy removes V-VIII, a left hepatectomy II-IV, a local
resection only the involved segments.

The SVG is drawn from fixed polygons in an anterior schematic (the patient's right on the
viewer's left) and carries only classes and ``data-*`` attributes, never inline styles,
so the page's Content-Security-Policy (``style-src 'self'``) holds; the colours are in
``service/static/smart/app.css``. Each segment has a label point inside its polygon and
outside every other one: the browser test reads the pixel colour there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from service.clinical.model import Assessment
from service.fhir.read import ObservationRead, Selection, SiteRead

SEGMENTS: Final[tuple[str, ...]] = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII")
RIGHT: Final = frozenset({"V", "VI", "VII", "VIII"})
LEFT: Final = frozenset({"II", "III", "IV"})

Involvement = Literal["lesion", "side", "diffuse", "none"]
"""``lesion``: a site names the segment; ``side``: a lobe code names its side only;
``diffuse``: a diffuse qualifier; ``none``: no recorded disease there."""


@dataclass(frozen=True)
class SegmentShape:
    """One segment's polygon and its label point (SVG user units, viewBox 0 0 480 300)."""

    name: str
    points: tuple[tuple[int, int], ...]
    label: tuple[int, int]


SHAPES: Final[tuple[SegmentShape, ...]] = (
    SegmentShape("VII", ((20, 120), (60, 50), (150, 38), (150, 150), (36, 168)), (92, 105)),
    SegmentShape("VIII", ((150, 38), (250, 32), (250, 140), (150, 150)), (200, 90)),
    SegmentShape("VI", ((36, 168), (150, 150), (150, 252), (92, 262), (44, 222)), (100, 206)),
    SegmentShape("V", ((150, 150), (250, 140), (250, 242), (150, 252)), (200, 196)),
    SegmentShape("IV", ((250, 32), (322, 42), (322, 232), (250, 242)), (286, 92)),
    SegmentShape("II", ((322, 42), (438, 78), (462, 120), (322, 138)), (380, 98)),
    SegmentShape("III", ((322, 138), (462, 120), (420, 190), (322, 232)), (374, 176)),
    SegmentShape("I", ((262, 178), (310, 178), (310, 222), (262, 222)), (286, 200)),
)
"""Drawn in this order, so the caudate lobe (I, posterior, at the hilum) lies on top of IV."""

VIEWBOX: Final = (480, 300)


@dataclass(frozen=True)
class Lesion:
    """A tumour-size finding shown beside the map."""

    site: str
    """Segment (``"VI"``) or site label (``"right lobe of liver"``)."""
    size_cm: float
    date: datetime
    source: str
    stale: bool = False
    """Older than the imaging lookback window: the engine does not use it."""


@dataclass(frozen=True)
class Resection:
    """The part a proposed resection would remove, and what would remain."""

    option: str
    """The option code (``resection-right-hepatectomy``, ...)."""
    removed: tuple[str, ...]
    remnant: tuple[str, ...]


@dataclass(frozen=True)
class LiverMap:
    """What the diagram shows; :func:`svg` draws it."""

    involvement: dict[str, Involvement]
    lesions: tuple[Lesion, ...]
    resections: tuple[Resection, ...]
    flr_percent: float | None
    flr_threshold: float | None
    flr_date: datetime | None
    distribution: str

    @property
    def involved(self) -> tuple[str, ...]:
        """Segments with disease recorded there (a site code or diffuse), in Couinaud order."""
        return tuple(s for s in SEGMENTS if self.involvement[s] in ("lesion", "diffuse"))


def _segments_of(site: SiteRead) -> tuple[set[str], set[str]]:
    """(segments named, segments of a side named without a segment) for one site."""
    liver = site.liver
    if liver is None:
        return set(), set()
    if liver.segment is not None:
        return {"IV" if liver.segment.startswith("IV") else liver.segment}, set()
    if liver.side == "right":
        return set(), set(RIGHT)
    if liver.side == "left":
        return set(), set(LEFT)
    return set(), set()


def _liver_sites(assessment: Assessment, selection: Selection) -> list[SiteRead]:
    facts = assessment.facts
    current = set(facts.liver_conditions)
    sites = [s for c in selection.conditions if c.ref in current for s in c.sites]
    for o in _used_observations(selection, facts.evaluated_at):
        if o.kind in ("tumour-size", "lesion-count") and o.site is not None:
            sites.append(o.site)
    return sites


def _used_observations(selection: Selection, at: datetime) -> Iterable[ObservationRead]:
    """Observations the engine may use (it ignores those dated after the evaluation)."""
    return (o for o in selection.observations if o.time <= at)


def build_map(
    assessment: Assessment, selection: Selection, *, imaging_lookback_days: int = 90
) -> LiverMap:
    """The segment map of ``assessment``, read from the patient's ``selection``; lesion
    sizes older than ``imaging_lookback_days`` are marked stale, as the engine reads them."""
    facts = assessment.facts
    window_start = facts.evaluated_at - timedelta(days=imaging_lookback_days)
    named: set[str] = set()
    sides: set[str] = set()
    diffuse = facts.distribution == "diffuse"
    for site in _liver_sites(assessment, selection):
        segments, side = _segments_of(site)
        named |= segments
        sides |= side
        diffuse = diffuse or site.diffuse
    involvement: dict[str, Involvement] = {}
    for segment in SEGMENTS:
        if diffuse:
            involvement[segment] = "diffuse"
        elif segment in named:
            involvement[segment] = "lesion"
        elif segment in sides:
            involvement[segment] = "side"
        else:
            involvement[segment] = "none"
    lesions = tuple(
        sorted(
            (
                Lesion(
                    site=_site_name(o.site),
                    size_cm=o.quantity.value,
                    date=o.time,
                    source=o.ref,
                    stale=o.time < window_start,
                )
                for o in _used_observations(selection, facts.evaluated_at)
                if o.kind == "tumour-size"
                and o.quantity is not None
                and o.site is not None
                and o.site.liver is not None
            ),
            key=lambda lesion: (-lesion.date.timestamp(), -lesion.size_cm),
        )
    )
    flr = facts.observed.get("flr")
    return LiverMap(
        involvement=involvement,
        lesions=lesions,
        resections=resections(assessment.offered, named),
        flr_percent=facts.flr_percent,
        flr_threshold=assessment.flr_threshold,
        flr_date=flr.date if flr is not None else None,
        distribution=facts.distribution,
    )


def _site_name(site: SiteRead | None) -> str:
    if site is None or site.liver is None:
        return "liver"
    liver = site.liver
    if liver.segment is not None:
        return "segment " + ("IV" if liver.segment.startswith("IV") else liver.segment)
    return liver.label


def resections(offered: Sequence[str], involved: Iterable[str]) -> tuple[Resection, ...]:
    """The resections among the offered options, each with the segments it removes.

    The caudate lobe (I) is counted with the remnant of a hemihepatectomy: whether it is
    taken with the specimen is the surgeon's decision, which the map does not anticipate.
    """
    out = []
    involved_set = set(involved)
    for option in offered:
        if option == "resection-right-hepatectomy":
            removed = RIGHT
        elif option == "resection-left-hepatectomy":
            removed = LEFT
        elif option == "resection-local" and involved_set:
            removed = frozenset(involved_set)
        else:
            continue
        out.append(
            Resection(
                option=option,
                removed=tuple(s for s in SEGMENTS if s in removed),
                remnant=tuple(s for s in SEGMENTS if s not in removed),
            )
        )
    return tuple(out)


def _points(shape: SegmentShape) -> str:
    return " ".join(f"{x},{y}" for x, y in shape.points)


def svg(liver: LiverMap, *, resection: Resection | None = None) -> str:
    """The diagram as an SVG element (markup built only from fixed names and numbers).

    ``resection`` draws its removed segments with a dashed outline (``class="removed"``).
    """
    width, height = VIEWBOX
    removed = set(resection.removed) if resection is not None else set()
    title = "Couinaud liver segments, anterior view"
    if liver.involved:
        title += "; disease in " + ", ".join(liver.involved)
    parts = [
        f'<svg class="liver-map" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} '
        f'{height}" role="img" aria-labelledby="liver-map-title">',
        f'<title id="liver-map-title">{title}</title>',
        '<defs><pattern id="side-hatch" patternUnits="userSpaceOnUse" width="8" height="8" '
        'patternTransform="rotate(45)"><rect class="hatch-bg" width="8" height="8"/>'
        '<line class="hatch-line" x1="0" y1="0" x2="0" y2="8"/></pattern></defs>',
    ]
    for shape in SHAPES:
        state = liver.involvement[shape.name]
        classes = f"segment involvement-{state}" + (" removed" if shape.name in removed else "")
        x, y = shape.label
        parts.append(
            f'<g class="{classes}" data-segment="{shape.name}" data-involvement="{state}" '
            f'data-label-x="{x}" data-label-y="{y}">'
            f'<polygon points="{_points(shape)}"/>'
            f'<text x="{x}" y="{y + 18}" class="segment-label">{shape.name}</text>'
            "</g>"
        )
    parts.append(
        '<text x="60" y="292" class="side-label">patient right</text>'
        '<text x="400" y="292" class="side-label">patient left</text></svg>'
    )
    return "".join(parts)
