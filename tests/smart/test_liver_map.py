"""The Couinaud segment map: which segments are shaded, what a resection removes, and an
SVG whose label points the browser test can rely on."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from clinical import builders as b

from service.smart import liver_map
from service.smart.liver_map import LEFT, RIGHT, SEGMENTS, SHAPES

from .records import evaluated

PID = b.PID


def colorectal(*sites: dict[str, object], sizes: tuple[tuple[str, float], ...] = ()) -> list:
    resources = [r for r in b.colorectal_right(PID) if r["id"] not in ("met", "size")]
    resources.append(b.condition("met", b.ICD, "C78.7", sites=list(sites), onset="2026-04-01"))
    for number, (segment, size) in enumerate(sizes):
        resources.append(b.size_obs(f"size-{number}", size, site_code=b.SEG[segment]))
    return resources


async def test_segments_named_by_body_sites_are_shaded_and_others_not() -> None:
    record = await evaluated(
        colorectal(b.site(b.SEG["VI"]), b.site(b.SEG["VII"]), sizes=(("VI", 3.2), ("VII", 2.1))),
        PID,
        b.AT,
    )
    liver = liver_map.build_map(record.assessment, record.selection)
    assert liver.involved == ("VI", "VII")
    assert {s for s in SEGMENTS if liver.involvement[s] == "none"} == set(SEGMENTS) - {"VI", "VII"}
    assert [(lesion.site, lesion.size_cm) for lesion in liver.lesions] == [
        ("segment VI", 3.2),
        ("segment VII", 2.1),
    ]


async def test_segment_iva_and_ivb_shade_segment_iv() -> None:
    record = await evaluated(colorectal(b.site(b.SEG["IVa"]), b.site(b.SEG["IVb"])), PID, b.AT)
    liver = liver_map.build_map(record.assessment, record.selection)
    assert liver.involved == ("IV",)


async def test_a_lobe_code_marks_its_side_without_claiming_a_segment() -> None:
    record = await evaluated(colorectal(b.site(b.LEFT_LOBE)), PID, b.AT)
    liver = liver_map.build_map(record.assessment, record.selection)
    assert liver.involved == ()
    assert {s for s in SEGMENTS if liver.involvement[s] == "side"} == LEFT


async def test_diffuse_disease_shades_every_segment() -> None:
    record = await evaluated(colorectal(b.site(b.LIVER, diffuse=True)), PID, b.AT)
    liver = liver_map.build_map(record.assessment, record.selection)
    assert liver.distribution == "diffuse"
    assert liver.involved == SEGMENTS


async def test_a_size_dated_after_the_evaluation_is_not_drawn() -> None:
    resources = colorectal(b.site(b.SEG["VI"]))
    resources.append(b.size_obs("later", 4.0, site_code=b.SEG["II"], when=b.AT + timedelta(days=2)))
    record = await evaluated(resources, PID, b.AT)
    liver = liver_map.build_map(record.assessment, record.selection)
    assert liver.involved == ("VI",)
    assert [lesion.source for lesion in liver.lesions] == []


def test_hemihepatectomies_remove_their_half_and_keep_the_caudate_in_the_remnant() -> None:
    right, left, local = liver_map.resections(
        [
            "resection-right-hepatectomy",
            "mdt-review",
            "resection-left-hepatectomy",
            "resection-local",
        ],
        ["VI", "VII"],
    )
    assert set(right.removed) == RIGHT and right.remnant == ("I", "II", "III", "IV")
    assert set(left.removed) == LEFT and left.remnant == ("I", "V", "VI", "VII", "VIII")
    assert local.removed == ("VI", "VII")
    assert liver_map.resections(["resection-local"], []) == ()


async def test_svg_marks_each_segment_with_its_involvement_and_the_removed_part() -> None:
    record = await evaluated(colorectal(b.site(b.SEG["VI"])), PID, b.AT)
    liver = liver_map.build_map(record.assessment, record.selection)
    resection = liver_map.resections(["resection-right-hepatectomy"], liver.involved)[0]
    svg = liver_map.svg(liver, resection=resection)
    groups = dict(re.findall(r'data-segment="(\w+)" data-involvement="(\w+)"', svg))
    assert groups == {s: ("lesion" if s == "VI" else "none") for s in SEGMENTS}
    removed = set(re.findall(r'class="segment [\w-]+ removed" data-segment="(\w+)"', svg))
    assert removed == RIGHT
    assert "style=" not in svg and "<script" not in svg  # the page's CSP allows neither


def _inside(point: tuple[int, int], polygon: tuple[tuple[int, int], ...]) -> bool:
    x, y = point
    inside = False
    for (x1, y1), (x2, y2) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.name)
def test_each_label_point_lies_in_its_own_segment_only(shape: liver_map.SegmentShape) -> None:
    assert _inside(shape.label, shape.points)
    others = [s for s in SHAPES if s.name != shape.name and _inside(shape.label, s.points)]
    # Drawn later means drawn on top: the caudate lobe (I) over segment IV.
    later = [s for s in others if SHAPES.index(s) > SHAPES.index(shape)]
    assert later == []


async def test_a_size_older_than_the_imaging_window_is_shown_as_stale() -> None:
    resources = colorectal(b.site(b.SEG["VI"]))
    resources.append(b.size_obs("old", 2.5, site_code=b.SEG["VI"], when=b.AT - timedelta(days=91)))
    resources.append(b.size_obs("edge", 2.6, site_code=b.SEG["VI"], when=b.AT - timedelta(days=90)))
    record = await evaluated(resources, PID, b.AT)
    liver = liver_map.build_map(record.assessment, record.selection, imaging_lookback_days=90)
    stale = {lesion.source: lesion.stale for lesion in liver.lesions}
    assert stale == {"Observation/old": True, "Observation/edge": False}
