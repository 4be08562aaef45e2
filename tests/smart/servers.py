"""Servers for the SMART launch tests: the service and the test EHR on loopback ports,
and the patient the EHR's FHIR server holds."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from clinical import builders as b
from starlette.types import ASGIApp

from service.app import create_app
from service.settings import Settings

from .ehr import SmartEhr

PATIENT = "smart-liver-1"
CLIENT_ID = "liver-cds-test"
SESSION_KEY = "s" * 40


def bound_socket() -> tuple[socket.socket, str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextmanager
def serve(app: ASGIApp, sock: socket.socket) -> Iterator[None]:
    """Run ``app`` under uvicorn on ``sock`` in a thread until the block ends."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="auto"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _at(days_before: float) -> str:
    return b.iso(datetime.now(UTC) - timedelta(days=days_before))


def patient_record() -> list[dict[str, Any]]:
    """A colorectal metastasis patient with lesions in segments VI and VII, labs over a
    year (some older than the 90-day window), FLR 55 %: resectable, right side."""
    pid = PATIENT

    def lab(rid: str, loinc: str, value: float, unit: str, days: float) -> dict[str, Any]:
        return b.lab_obs(f"{pid}-{rid}", loinc, value, unit, patient=pid, when=_at(days))

    return [
        b.patient(pid, "1962-05-04")
        | {"name": [{"family": "Testperson", "given": ["Ada"]}], "gender": "female"},
        b.condition(f"{pid}-prim", b.ICD, "C18.7", patient=pid, onset="2025-01-10"),
        b.condition(
            f"{pid}-met",
            b.ICD,
            "C78.7",
            patient=pid,
            sites=[b.site(b.SEG["VI"]), b.site(b.SEG["VII"])],
            onset=_at(40)[:10],
        ),
        b.size_obs(f"{pid}-size-6", 3.2, site_code=b.SEG["VI"], patient=pid, when=_at(20)),
        b.size_obs(f"{pid}-size-7", 2.1, site_code=b.SEG["VII"], patient=pid, when=_at(20)),
        b.observation(
            f"{pid}-flr",
            "future-liver-remnant",
            system=b.FINDINGS,
            patient=pid,
            when=_at(20),
            valueQuantity=b.quantity(55, "%"),
        ),
        b.observation(f"{pid}-ecog", "89247-1", patient=pid, when=_at(10), valueInteger=0),
        lab("bili-1", "1975-2", 1.4, "mg/dL", 200),
        lab("bili-2", "1975-2", 1.0, "mg/dL", 60),
        lab("bili-3", "1975-2", 0.8, "mg/dL", 5),
        lab("alb-1", "1751-7", 3.6, "g/dL", 150),
        lab("alb-2", "1751-7", 4.1, "g/dL", 5),
        lab("inr-1", "6301-6", 1.0, "{INR}", 5),
        lab("plt-1", "777-3", 180, "10*9/L", 100),
        lab("plt-2", "777-3", 230, "10*9/L", 5),
        lab("creat-1", "2160-0", 0.9, "mg/dL", 5),
        lab("cea-1", "2039-6", 25.0, "ng/mL", 300),
        lab("cea-2", "2039-6", 12.0, "ng/mL", 30),
    ]


class Stack:
    """The running EHR and service, and what a test needs to drive them."""

    def __init__(self, ehr: SmartEhr, base: str, settings: Settings) -> None:
        self.ehr = ehr
        self.base = base
        self.settings = settings

    def launch_url(self, iss: str | None = None, launch: str | None = None) -> str:
        """What the EHR opens for the card's ``smart`` link: launch URL, iss and launch."""
        launch = launch if launch is not None else self.ehr.new_launch(PATIENT)
        query = httpx.QueryParams({"iss": iss or self.ehr.iss, "launch": launch})
        return f"{self.base}/smart/launch?{query}"


def start(ehr: SmartEhr, tmp_path: Path, **changes: Any) -> Iterator[Stack]:
    """The service with the SMART app on, registered with ``ehr`` as a client."""
    sock, base = bound_socket()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/smart.db",
        public_url=base,
        smart_client_id=CLIENT_ID,
        smart_allowed_iss=(ehr.iss,),
        smart_session_key=SESSION_KEY,
        demo_enabled=False,
        fhir_timeout_s=10.0,
        call_budget_s=15.0,
    )
    settings = replace(settings, **changes)
    ehr.register(CLIENT_ID, base + "/smart/callback", settings.smart_client_secret)
    with serve(create_app(settings), sock):
        yield Stack(ehr, base, settings)
