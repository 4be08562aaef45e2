"""The real server as a child process, for the durability and replica tests.

Starts ``.venv/bin/liver-cds serve --port <free port>`` (the console script the README
documents) with ``LIVER_CDS_DATABASE_URL`` pointing at the test database, waits until
``/readyz`` answers 200, and sends it the signals a container platform sends (SIGTERM
for a rolling update, SIGKILL for an OOM kill or a node failure).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "liver-metastasis-resectability"
START_LIMIT_S = 60.0
"""How long a start may take before the test gives up (a start-up failure, not a timing check)."""


def server_missing_reason() -> str | None:
    """Why the server cannot be run yet (the HTTP layer is written by another engineer)."""
    from service.cli import COMMANDS  # the CLI imports every command module to build its parser

    for module in ("service.app", *(name for name, _ in COMMANDS.values())):
        if importlib.util.find_spec(module) is None:
            return f"{module} does not exist yet: `liver-cds serve` cannot start"
    if not (ROOT / ".venv" / "bin" / "liver-cds").exists():
        return ".venv/bin/liver-cds is not installed (run `make test` once)"
    return None


def skip_unless_server_runs() -> None:
    reason = server_missing_reason()
    if reason:
        pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """One ``liver-cds serve`` process on a loopback port."""

    def __init__(
        self,
        database_url: str,
        log_path: Path,
        *,
        workers: int = 1,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVER_CDS_")}
        env.update(
            {
                "LIVER_CDS_DATABASE_URL": database_url,
                "LIVER_CDS_AUTH": "off",
                "LIVER_CDS_PUBLIC_URL": self.base_url,
                "LIVER_CDS_LOG_FORMAT": "json",
                "LIVER_CDS_LOG_LEVEL": "warning",
                **(extra_env or {}),
            }
        )
        command = [str(ROOT / ".venv" / "bin" / "liver-cds"), "serve", "--port", str(self.port)]
        if workers != 1:
            command += ["--workers", str(workers)]
        self._log = log_path.open("ab")
        # Its own process group: with --workers N, uvicorn's worker processes are children
        # of the server process, and a kill must reach them too (as a container stop does).
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_LIMIT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._kill_group()
                raise AssertionError(f"server exited at start-up:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self._kill_group()
        raise AssertionError(f"server not ready within {START_LIMIT_S} s:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL to the server and its workers: no shutdown code runs at all."""
        self._kill_group()
        self._log.close()

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self) -> int:
        """SIGTERM: graceful shutdown; returns the exit code."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        self._log.close()
        return code

    def stop(self) -> None:
        """Teardown, whatever state the test left it in: no process of the group survives."""
        self._kill_group()
        if not self._log.closed:
            self._log.close()


def feedback_item(
    card: str | None = None, *, outcome: str = "accepted", at: datetime | None = None
) -> dict[str, Any]:
    stamp = (at or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    item: dict[str, Any] = {
        "card": card or str(uuid.uuid4()),
        "outcome": outcome,
        "outcomeTimestamp": stamp,
    }
    if outcome == "accepted":
        item["acceptedSuggestions"] = [{"id": str(uuid.uuid4())}]
    else:
        item["overrideReason"] = {
            "reason": {
                "system": "https://liver-cds.org/fhir/CodeSystem/override-reason",
                "code": "patient-declined",
                "display": "Patient declined",
            },
            "userComment": "prefers systemic therapy",
        }
    return item


def hook_request(patient_id: str = "durability-patient") -> dict[str, Any]:
    """A valid patient-view call whose prefetch says "no data" (no liver malignancy)."""
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "patientId": patient_id},
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": patient_id, "gender": "female"},
            "conditions": None,
            "observations": None,
        },
    }


def feedback_url(server: ServerProcess) -> str:
    return f"{server.base_url}/cds-services/{SERVICE}/feedback"


def hook_url(server: ServerProcess) -> str:
    return f"{server.base_url}/cds-services/{SERVICE}"
