"""One rule-set version, read from cards/ruleset.yaml, on every card, in the audit and in
discovery's description (issue 19: "Rule-set version 2026.12 on every card, in the audit and
in discovery's description")."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from app_harness import make_settings, running_app
from pipeline_harness import MANIFEST, load

from service.render.content import default_cards_dir, load_content


def test_the_shipped_rule_set_is_2026_12() -> None:
    content = load_content()
    assert content.version == "2026.12"
    assert content.source_label == "Liver CDS resectability rules v2026.12"


def cards_with_version(tmp_path: Path, version: str) -> Path:
    target = tmp_path / "cards"
    shutil.copytree(default_cards_dir(), target)
    path = target / "ruleset.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["version"] = version
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return target


async def test_discovery_cards_and_audit_name_the_same_version(tmp_path: Path) -> None:
    cards = cards_with_version(tmp_path, "2099.1-test")
    async with running_app(make_settings(cards_dir=str(cards))) as app:
        discovery = (await app.client.get("/cds-services")).json()
        for service in discovery["services"]:
            assert service["description"].endswith(" Rule set v2099.1-test.")
        if not MANIFEST.is_file():
            return
        request = load("patients/r21-colon-right-icd10.json")
        response = await app.client.post(
            "/cds-services/liver-metastasis-resectability", json=request
        )
        assert response.status_code == 200, response.text
        for card in response.json()["cards"]:
            assert card["source"]["label"].endswith(" v2099.1-test")
    (record,) = app.store.audits
    assert record.ruleset_version == "2099.1-test"
