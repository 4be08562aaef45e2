"""cards/ is data a clinician edits: it loads, says what the spec requires, and a wording
change that breaks a limit is refused at load time with an error naming file and key."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from render import render_builders as b
from service.clinical.model import OPTION_CODES, RiskModifier
from service.render import content as content_module
from service.render.cards import render_cards
from service.render.content import ContentError, default_cards_dir, load_content
from service.render.schema import MISSING_FACTS, RISK_MODIFIERS
from service.settings import Settings

SEED_SURGERY = ("bleeding", "infection", "damage to other organs", "anaesthesia complications")
SEED_CHEMO = ("hair loss", "nausea", "vomiting", "diarrhoea")


@pytest.fixture
def shipped() -> content_module.CardContent:
    return load_content()


def copy_cards(tmp_path: Path) -> Path:
    target = tmp_path / "cards"
    shutil.copytree(default_cards_dir(), target)
    return target


def edit(cards: Path, name: str, change: Callable[[Any], None]) -> None:
    path = cards / name
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def load_error(cards: Path) -> str:
    with pytest.raises(ContentError) as caught:
        load_content(cards)
    return str(caught.value)


# --- the shipped content ------------------------------------------------------------------


def test_default_directory_is_the_repository_cards_dir() -> None:
    assert default_cards_dir() == Path(__file__).resolve().parents[2] / "cards"
    assert (default_cards_dir() / "ruleset.yaml").is_file()


def test_source_label_shows_the_rule_set_version(shipped: content_module.CardContent) -> None:
    assert shipped.version
    assert shipped.source_label.startswith("Liver CDS")
    assert f"v{shipped.version}" in shipped.source_label


def test_loading_is_cached_per_directory(shipped: content_module.CardContent) -> None:
    assert load_content() is shipped
    assert load_content(str(default_cards_dir())) is load_content(default_cards_dir())


def test_every_treatment_option_has_label_description_and_suggestion(
    shipped: content_module.CardContent,
) -> None:
    assert set(shipped.options) == set(OPTION_CODES)
    for code in OPTION_CODES:
        option = shipped.options[code]
        assert option.label and option.summary and option.description and option.suggestion


def test_risks_keep_the_seed_wording(shipped: content_module.CardContent) -> None:
    for code in ("resection-right-hepatectomy", "resection-left-hepatectomy", "resection-local"):
        risks = " ".join(shipped.options[code].risks)
        for word in SEED_SURGERY:
            assert word in risks, (code, word)
        assert "liver failure" in risks
    systemic = " ".join(shipped.options["systemic-therapy"].risks)
    for word in SEED_CHEMO:
        assert word in systemic
    assert "remnant to grow" in " ".join(shipped.options["liver-augmentation"].risks)
    assert "abscess" in " ".join(shipped.options["ablation"].risks)
    assert "post-embolisation syndrome" in " ".join(shipped.options["tace"].risks)
    for code in ("tare", "sbrt"):
        assert "radiation-induced liver disease" in " ".join(shipped.options[code].risks)
    assert "immunosuppression" in " ".join(shipped.options["transplant-evaluation"].risks)
    assert "progression between scans" in " ".join(shipped.options["monitoring"].risks)


def test_every_patient_specific_modifier_is_worded_for_the_resections(
    shipped: content_module.CardContent,
) -> None:
    modifiers: tuple[RiskModifier, ...] = RISK_MODIFIERS  # type: ignore[assignment]
    for code in (
        "resection-right-hepatectomy",
        "resection-left-hepatectomy",
        "liver-augmentation",
    ):
        assert set(shipped.options[code].modifiers) == set(modifiers), code
    # clinical-rules.md §2 (v2): the FLR is consulted only for a major resection; a local
    # resection is never held back by it, so it carries every modifier but the low FLR's
    # "unless the remnant is grown first" (cards.md v2: no augmentation for a segmentectomy).
    assert set(shipped.options["resection-local"].modifiers) == set(modifiers) - {"low-flr"}
    assert "child-pugh-b" in shipped.options["tace"].modifiers
    assert "jaundice" in shipped.options["systemic-therapy"].modifiers


def test_v2_risks_by_tumour_kind_and_of_margins_and_recurrence(
    shipped: content_module.CardContent,
) -> None:
    """clinical-rules.md §6 v2: systemic-therapy risks by tumour kind (the colorectal
    liver-injury line never for HCC); resection and ablation: a positive margin or incomplete
    ablation, and recurrence in the liver."""
    systemic = shipped.options["systemic-therapy"]
    colorectal = " ".join(systemic.risks_for("colorectal"))
    hcc = " ".join(systemic.risks_for("hcc"))
    assert "oxaliplatin and irinotecan can injure the liver" in colorectal
    assert "oxaliplatin" not in hcc and "irinotecan" not in hcc
    for words in (
        "immune-related hepatitis, colitis and thyroid disease",
        "bleeding",
        "high blood",
    ):
        assert words in hcc
    assert "immune-related" not in colorectal
    assert not any("oxaliplatin" in r for r in systemic.risks)  # not for every tumour kind
    for code in ("resection-right-hepatectomy", "resection-left-hepatectomy", "resection-local"):
        assert any(
            "positive margin" in r and "recurrence" in r for r in shipped.options[code].risks
        )
    assert any("incomplete ablation" in r for r in shipped.options["ablation"].risks)


def test_every_suggestion_label_says_it_proposes(shipped: content_module.CardContent) -> None:
    labels = [o.suggestion for o in shipped.options.values()]
    labels += [o.suggestion for o in shipped.orders.values()]
    assert all(label.startswith("Propose ") for label in labels), labels


def test_a_suggestion_label_that_orders_is_refused(tmp_path: Path) -> None:
    cards = copy_cards(tmp_path)
    edit(
        cards,
        "data-needed.yaml",
        lambda d: d["orders"]["afp"].__setitem__("suggestion", "Order serum AFP"),
    )
    assert "data-needed.yaml: orders.afp.suggestion" in load_error(cards)


def test_override_reasons_include_the_required_codes_with_display(
    shipped: content_module.CardContent,
) -> None:
    assert shipped.override_system == "https://liver-cds.org/fhir/CodeSystem/override-reason"
    codes = {r.code: r.display for r in shipped.override_reasons}
    for code in (
        "already-reviewed-by-mdt",
        "patient-declined",
        "data-incorrect",
        "not-clinically-appropriate",
    ):
        assert codes.get(code)


def test_sources_cite_guidelines_with_doi_links_only(shipped: content_module.CardContent) -> None:
    labels = {s.id: s for s in shipped.sources}
    for expected in (
        "bclc-2022",
        "ahpba-crlm-2006",
        "ahpba-crlm-2013",
        "cnlc-2022",
        "milan-1996",
        "up-to-seven-2009",
        "child-pugh-1973",
        "albi-2015",
        "meld-na-2008",
        "fong-1999",
        "collision-2025",
        "transmet-2024",
    ):
        assert expected in labels
    for source in shipped.sources:
        assert source.citation
        if source.url is not None:
            assert source.url.startswith("https://doi.org/10."), source.id


def test_every_missing_fact_says_why_and_what_to_do(shipped: content_module.CardContent) -> None:
    assert set(shipped.missing) == set(MISSING_FACTS)
    for fact, item in shipped.missing.items():
        assert item.why and item.label and item.short
        assert item.order in shipped.orders or item.action, fact
    orders = {code: o.display.lower() for code, o in shipped.orders.items()}
    assert "segment" in orders[shipped.missing["distribution"].order or ""]
    assert "inr" in orders[shipped.missing["child-pugh"].order or ""]
    assert "performance status" in orders[shipped.missing["ecog"].order or ""]
    assert "volumetry" in orders[shipped.missing["flr"].order or ""]
    assert "confirmation" in orders[shipped.missing["diagnosis-confirmation"].order or ""]


# --- edits that must be refused -----------------------------------------------------------


def test_a_summary_that_can_exceed_139_characters_is_refused(tmp_path: Path) -> None:
    cards = copy_cards(tmp_path)

    def longer(data: Any) -> None:
        data["verdicts"]["resectable"]["summary"] += "; please discuss with the whole team soon"

    edit(cards, "ruleset.yaml", longer)
    message = load_error(cards)
    assert "ruleset.yaml: verdicts.resectable.summary" in message
    assert "limit 139" in message


def test_a_long_phrase_is_refused_through_every_summary_using_it(tmp_path: Path) -> None:
    cards = copy_cards(tmp_path)

    def longer(data: Any) -> None:
        data["diseases"]["secondary-breast"] = "Liver metastases from a breast cancer " * 2

    edit(cards, "ruleset.yaml", longer)
    message = load_error(cards)
    assert "ruleset.yaml: verdicts.not-resectable.summary" in message
    assert "ruleset.yaml: verdicts.indeterminate.summary" in message


def test_a_long_data_needed_name_is_refused(tmp_path: Path) -> None:
    cards = copy_cards(tmp_path)

    def longer(data: Any) -> None:
        data["items"]["ecog"]["short"] = "ECOG or Karnofsky performance status, " * 3

    edit(cards, "data-needed.yaml", longer)
    assert "data-needed.yaml: summary.essential" in load_error(cards)


@pytest.mark.parametrize(
    ("name", "where", "change"),
    [
        (
            "options.yaml",
            "options.yaml: options.ablation.description",
            lambda d: d["options"]["ablation"].__setitem__(
                "description", "Burns <b>small</b> lesions"
            ),
        ),
        (
            "risks.yaml",
            "risks.yaml: groups.tace.risks[0]",
            lambda d: d["groups"]["tace"]["risks"].__setitem__(0, "pain&nbsp;and fever"),
        ),
        (
            "ruleset.yaml",
            "ruleset.yaml: rules.14.text",
            lambda d: d["rules"]["14"].__setitem__("text", "Resect.<br>Then review."),
        ),
        (
            "sources.yaml",
            "sources.yaml: sources.bclc-2022.citation",
            lambda d: d["sources"]["bclc-2022"].__setitem__("citation", "<a href=x>BCLC</a>"),
        ),
    ],
)
def test_html_anywhere_in_the_wording_is_refused(
    tmp_path: Path, name: str, where: str, change: Callable[[Any], None]
) -> None:
    cards = copy_cards(tmp_path)
    edit(cards, name, change)
    message = load_error(cards)
    assert where in message
    assert "HTML" in message


def test_a_comparison_sign_followed_by_a_number_is_not_html(tmp_path: Path) -> None:
    cards = copy_cards(tmp_path)
    edit(
        cards,
        "options.yaml",
        lambda d: d["options"]["ablation"].__setitem__("description", "Lesions < 3 cm, <3 cm."),
    )
    assert load_content(cards).options["ablation"].description == "Lesions < 3 cm, <3 cm."


def test_a_missing_key_is_named(tmp_path: Path) -> None:
    cards = copy_cards(tmp_path)
    edit(cards, "options.yaml", lambda d: d["options"]["tace"].pop("label"))
    message = load_error(cards)
    assert "options.yaml: options.tace: 'label' is a required property" in message


def test_a_missing_option_and_a_misspelt_key_are_named(tmp_path: Path) -> None:
    cards = copy_cards(tmp_path)

    def change(data: Any) -> None:
        data["options"].pop("haic")
        data["options"]["sbrt"]["lable"] = data["options"]["sbrt"].pop("label")

    edit(cards, "options.yaml", change)
    message = load_error(cards)
    assert "options.yaml: options: 'haic' is a required property" in message
    assert "'lable' was unexpected" in message


def test_an_unknown_placeholder_is_refused(tmp_path: Path) -> None:
    cards = copy_cards(tmp_path)
    edit(
        cards,
        "ruleset.yaml",
        lambda d: d["verdicts"]["resectable"].__setitem__(
            "summary", "{disease}: {procedure} may be an option"
        ),
    )
    message = load_error(cards)
    assert "ruleset.yaml: verdicts.resectable.summary: unknown placeholder {procedure}" in message


def test_a_duplicate_key_is_refused_with_its_line(tmp_path: Path) -> None:
    cards = copy_cards(tmp_path)
    path = cards / "options.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("  tare:\n", "  tace:\n", 1), encoding="utf-8")
    message = load_error(cards)
    assert "options.yaml: line" in message
    assert "duplicate key 'tace'" in message


def test_references_between_files_are_checked(tmp_path: Path) -> None:
    cards = copy_cards(tmp_path)
    edit(
        cards,
        "options.yaml",
        lambda d: d["options"]["tace"].__setitem__("risk_group", "embolisation"),
    )
    edit(cards, "data-needed.yaml", lambda d: d["items"]["flr"].__setitem__("order", "ct-scan"))
    edit(cards, "override-reasons.yaml", lambda d: d["reasons"].pop(1))
    message = load_error(cards)
    assert "options.yaml: options.tace.risk_group: unknown group 'embolisation'" in message
    assert "data-needed.yaml: items.flr.order: unknown order 'ct-scan'" in message
    assert "required code 'patient-declined' missing" in message


def test_a_missing_file_and_a_missing_directory_are_reported(tmp_path: Path) -> None:
    cards = copy_cards(tmp_path)
    (cards / "sources.yaml").unlink()
    assert "sources.yaml: file missing" in load_error(cards)
    assert "LIVER_CDS_CARDS_DIR" in load_error(tmp_path / "nowhere")


def test_liver_cds_cards_dir_selects_the_wording(tmp_path: Path) -> None:
    cards = copy_cards(tmp_path)
    edit(cards, "ruleset.yaml", lambda d: d.__setitem__("version", "2099.1-test"))
    edit(
        cards,
        "options.yaml",
        lambda d: d["options"]["resection-right-hepatectomy"].__setitem__(
            "summary", "right hemihepatectomy"
        ),
    )
    settings = Settings.from_env({"LIVER_CDS_CARDS_DIR": str(cards)})
    card = render_cards(b.colorectal_right(), b.context(cards_dir=settings.cards_dir))[0]
    assert card["source"]["label"].endswith("v2099.1-test")
    assert "may be removable by right hemihepatectomy" in card["summary"]
