"""Every setting the engine reads reaches its thresholds (issue 18, rule set v2)."""

from __future__ import annotations

import pytest

from service.clinical.thresholds import DEFAULT_THRESHOLDS, thresholds_from_settings
from service.settings import Settings, SettingsError


def test_default_settings_give_the_default_thresholds() -> None:
    assert thresholds_from_settings(Settings()) is DEFAULT_THRESHOLDS


def test_both_lookbacks_are_applied() -> None:
    t = thresholds_from_settings(Settings(lookback_days=30, imaging_lookback_days=180))
    assert (t.lookback_days, t.imaging_lookback_days) == (30, 180)
    assert t.platelets_portal_hypertension == DEFAULT_THRESHOLDS.platelets_portal_hypertension


def test_the_imaging_lookback_is_read_from_the_environment() -> None:
    settings = Settings.from_env({"LIVER_CDS_IMAGING_LOOKBACK_DAYS": "45"})
    assert thresholds_from_settings(settings).imaging_lookback_days == 45
    with pytest.raises(SettingsError, match="LIVER_CDS_IMAGING_LOOKBACK_DAYS"):
        Settings.from_env({"LIVER_CDS_IMAGING_LOOKBACK_DAYS": "0"})
