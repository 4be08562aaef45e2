"""Running the real application (create_app, lifespan and all) for end-to-end security tests."""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_URL = "https://cds.example.org"
SERVICE_ID = "liver-metastasis-resectability"
HOOK_PATH = f"/cds-services/{SERVICE_ID}"
HOOK_AUD = PUBLIC_URL + HOOK_PATH
DISCOVERY_AUD = PUBLIC_URL + "/cds-services"
FEEDBACK_AUD = HOOK_AUD + "/feedback"
FIXTURE = ROOT / "fixtures" / "patients" / "r21-colon-right-icd10.json"


def create_app_or_skip() -> Any:
    try:
        from service.app import create_app
    except ImportError as exc:  # pragma: no cover - only while the HTTP layer is missing
        pytest.skip(f"service.app.create_app is not available yet ({exc})")
    return create_app


def hook_request() -> dict[str, Any]:
    """A real fixture patient's patient-view request (resectable colorectal metastases)."""
    if not FIXTURE.exists():  # pragma: no cover
        pytest.skip(f"fixture {FIXTURE.name} is not available")
    data: dict[str, Any] = json.loads(FIXTURE.read_text())
    return copy.deepcopy(data)


def settings_for(tmp_path: Path, **fields: Any) -> Settings:
    base: dict[str, Any] = {
        "public_url": PUBLIC_URL,
        "database_url": f"sqlite:///{tmp_path / 'liver-cds.db'}",
        "demo_enabled": False,
        "log_format": "json",
    }
    base.update(fields)
    return Settings(**base)


def write_trust(tmp_path: Path, *issuers: dict[str, Any]) -> str:
    path = tmp_path / "trust.json"
    path.write_text(json.dumps({"issuers": list(issuers)}))
    return str(path)


@asynccontextmanager
async def running(settings: Settings, **kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client over ``create_app(settings)``, its lifespan started and stopped
    (the real SQLite store, the real authenticator built from ``settings``)."""
    create_app = create_app_or_skip()
    from app_harness import lifespan

    app = create_app(settings, **kwargs)
    async with lifespan(app) as with_state:
        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client:
            yield client


@contextmanager
def silent_listener() -> Iterator[tuple[int, Any]]:
    """A loopback TCP port that listens but never accepts.

    The kernel completes the handshake of any connection attempt and queues it, so after
    a call ``connections()`` tells whether anything connected to the port at all.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    port = sock.getsockname()[1]

    def connections() -> int:
        count = 0
        while True:
            try:
                conn, _ = sock.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1

    try:
        yield port, connections
    finally:
        sock.close()
