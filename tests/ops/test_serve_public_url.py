"""``liver-cds serve``: the public URL follows the host and port served unless
``LIVER_CDS_PUBLIC_URL`` says otherwise (a JWT's ``aud`` and the SMART redirect URI are
built from it, so a server on port 9000 must not call itself ``:8000``)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from service.settings import Settings, default_public_url

VARIABLES = ("LIVER_CDS_HOST", "LIVER_CDS_PORT", "LIVER_CDS_WORKERS", "LIVER_CDS_PUBLIC_URL")


def serve(monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str]) -> Any:
    """Run ``liver-cds serve`` with uvicorn replaced; the (target, options) it was given."""
    import uvicorn

    from service.cli import main

    for name in VARIABLES:
        monkeypatch.setenv(name, "")  # recorded first, so whatever serve exports is undone
        monkeypatch.delenv(name)
    monkeypatch.setenv("LIVER_CDS_DEMO_ENABLED", "false")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: calls.append((target, kw)))
    assert main(["serve", *argv]) == 0
    (call,) = calls
    return call


def served_settings(target: Any) -> Settings:
    settings: Settings = target.state.runtime.settings
    return settings


def test_port_flag_moves_the_public_url(monkeypatch: pytest.MonkeyPatch) -> None:
    target, options = serve(monkeypatch, ["--port", "9000"], {})
    assert options["port"] == 9000
    assert served_settings(target).public_url == "http://127.0.0.1:9000"


def test_a_wildcard_bind_address_is_reached_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    target, _ = serve(monkeypatch, ["--host", "0.0.0.0", "--port", "9002"], {})
    assert served_settings(target).public_url == "http://127.0.0.1:9002"


def test_the_port_setting_moves_it_too(monkeypatch: pytest.MonkeyPatch) -> None:
    target, _ = serve(monkeypatch, [], {"LIVER_CDS_PORT": "9003"})
    assert served_settings(target).public_url == "http://127.0.0.1:9003"
    assert Settings.from_env({"LIVER_CDS_PORT": "9003"}).public_url == "http://127.0.0.1:9003"


def test_an_explicit_public_url_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    target, _ = serve(
        monkeypatch, ["--port", "9004"], {"LIVER_CDS_PUBLIC_URL": "https://cds.example.org"}
    )
    assert served_settings(target).public_url == "https://cds.example.org"


def test_workers_inherit_host_and_port_through_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target, _ = serve(monkeypatch, ["--port", "9005", "--workers", "2"], {})
    assert target == "service.app:create_app_from_env"
    assert os.environ["LIVER_CDS_PORT"] == "9005"
    assert Settings.from_env().public_url == "http://127.0.0.1:9005"  # what a worker builds


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("127.0.0.1", 8000, "http://127.0.0.1:8000"),
        ("0.0.0.0", 80, "http://127.0.0.1:80"),
        ("::", 8000, "http://127.0.0.1:8000"),
        ("::1", 8000, "http://[::1]:8000"),
        ("cds.internal", 8443, "http://cds.internal:8443"),
    ],
)
def test_default_public_url(host: str, port: int, url: str) -> None:
    assert default_public_url(host, port) == url
