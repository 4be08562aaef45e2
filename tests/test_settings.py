"""Settings come from LIVER_CDS_* variables only, with safe defaults, and the README lists each."""

from pathlib import Path

import pytest

from service.settings import ENVIRONMENT_VARIABLES, Settings, SettingsError

README = Path(__file__).resolve().parent.parent / "README.md"


def test_defaults_are_the_documented_safe_ones() -> None:
    settings = Settings.from_env({})
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.database_url == "sqlite:///./var/liver-cds.db"
    assert settings.max_body_bytes == 5 * 1024 * 1024
    assert settings.call_budget_s == 3.0
    assert settings.auth == "off"
    assert settings.jwt_algorithms == ("ES384", "RS384")


def test_values_are_converted_by_the_type_of_their_default() -> None:
    settings = Settings.from_env(
        {
            "LIVER_CDS_PORT": "9000",
            "LIVER_CDS_FHIR_TIMEOUT_S": "1.5",
            "LIVER_CDS_STRICT_FHIR": "true",
            "LIVER_CDS_CORS_ORIGINS": "https://sandbox.cds-hooks.org, http://localhost:3000",
        }
    )
    assert settings.port == 9000
    assert settings.fhir_timeout_s == 1.5
    assert settings.strict_fhir is True
    assert settings.cors_origins == ("https://sandbox.cds-hooks.org", "http://localhost:3000")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LIVER_CDS_PORT": "eighty"}, "LIVER_CDS_PORT"),
        ({"LIVER_CDS_STRICT_FHIR": "maybe"}, "LIVER_CDS_STRICT_FHIR"),
        ({"LIVER_CDS_AUTH": "sometimes"}, "LIVER_CDS_AUTH"),
        ({"LIVER_CDS_AUTH": "required"}, "LIVER_CDS_TRUST_FILE"),
        (
            {"LIVER_CDS_AUTH": "required", "LIVER_CDS_TRUST_FILE": "trust.json"},
            "LIVER_CDS_PUBLIC_URL",
        ),
        ({"LIVER_CDS_JWT_ALGORITHMS": "HS256"}, "HS256"),
        ({"LIVER_CDS_MAX_BODY_BYTES": "0"}, "LIVER_CDS_MAX_BODY_BYTES"),
        ({"LIVER_CDS_MAX_JSON_DEPTH": "8"}, "LIVER_CDS_MAX_JSON_DEPTH must be at least 16"),
    ],
)
def test_unusable_values_are_rejected_naming_the_variable(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_unknown_variables_are_kept_for_a_startup_warning() -> None:
    settings = Settings.from_env({"LIVER_CDS_DATABSE_URL": "typo"})
    assert "LIVER_CDS_DATABSE_URL" in settings.extra


def test_readme_documents_every_setting() -> None:
    text = README.read_text(encoding="utf-8")
    undocumented = [name for name in ENVIRONMENT_VARIABLES if f"`{name}`" not in text]
    assert not undocumented, f"README settings table lacks {undocumented}"
