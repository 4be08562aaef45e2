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


@pytest.mark.parametrize(
    "name",
    [
        "LIVER_CDS_PORT",
        "LIVER_CDS_MAX_RESOURCES",
        "LIVER_CDS_FHIR_TIMEOUT_S",
        "LIVER_CDS_CALL_BUDGET_S",
        "LIVER_CDS_FHIR_MAX_PAGES",
        "LIVER_CDS_LOOKBACK_DAYS",
        "LIVER_CDS_IMAGING_LOOKBACK_DAYS",
        "LIVER_CDS_SMART_SESSION_TTL_S",
    ],
)
def test_counts_and_durations_must_be_positive(name: str) -> None:
    with pytest.raises(SettingsError, match=f"^{name} must be positive, not '0'$"):
        Settings.from_env({name: "0"})


def test_a_secret_is_never_repeated_in_the_error() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"LIVER_CDS_SMART_SESSION_TTL_S": "-1", "LIVER_CDS_AUDIT_KEY": "k" * 8})
    assert "kkkkkkkk" not in str(caught.value)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {
                "LIVER_CDS_SMART_CLIENT_ID": "app",
                "LIVER_CDS_SMART_ALLOWED_ISS": "https://ehr.example.org/fhir",
                "LIVER_CDS_SMART_SESSION_KEY": "too-short-secret",
            }
        )
    assert "LIVER_CDS_SMART_SESSION_KEY" in str(caught.value)
    assert "too-short-secret" not in str(caught.value)


def test_only_the_given_mapping_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVER_CDS_PORT", "9999")
    assert Settings.from_env({}).port == 8000
    assert Settings.from_env().port == 9999


def test_names_are_exact_and_values_stripped() -> None:
    settings = Settings.from_env(
        {"liver_cds_port": "1234", "LIVER_CDS_AUTH": " OFF ", "LIVER_CDS_STRICT_FHIR": ""}
    )
    assert settings.port == 8000
    assert settings.auth == "off"
    assert settings.strict_fhir is False


def test_an_empty_list_is_empty_not_the_default() -> None:
    # An empty LIVER_CDS_CORS_ORIGINS turns CORS off; it must never widen to the default "*".
    assert Settings.from_env({"LIVER_CDS_CORS_ORIGINS": ""}).cors_origins == ()


def test_secrets_never_appear_in_the_settings_repr() -> None:
    settings = Settings(
        smart_client_secret="client-secret-value",
        smart_session_key="k" * 40,
        metrics_token="t" * 40,
        audit_key="audit-key-value",
        database_url="postgresql://liver:db-password@db.example/liver",
        redis_url="redis://:redis-password@cache.example:6379/0",
    )
    text = repr(settings)
    for secret in ("client-secret-value", "k" * 40, "t" * 40, "audit-key-value"):
        assert secret not in text
    assert "db-password" not in text and "redis-password" not in text
