"""The Dockerfile, checked instruction by instruction (no container engine runs in CI).

What an operator relies on: a slim Python 3.11 base, a non-root user, a health check on
/healthz that works without curl, the port exposed, settings by environment, and an
install step that installs the same project and dependencies as the README's commands
(both install the project described by pyproject.toml, never a separate list).
"""

from __future__ import annotations

import fnmatch
import http.server
import json
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.settings import ENVIRONMENT_VARIABLES, Settings

from .dockerfile import DOCKERFILE, ROOT, Instruction, env_values, only, parse

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse(DOCKERFILE.read_text())


def test_base_image_is_python_311_slim(instructions: list[Instruction]) -> None:
    froms = only(instructions, "FROM")
    assert instructions[0].keyword == "FROM"
    image = froms[-1].args.split()[0]
    assert re.fullmatch(r"python:3\.11-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", image), image


def test_the_service_runs_as_a_non_root_user(instructions: list[Instruction]) -> None:
    users = only(instructions, "USER")
    assert users, "no USER instruction: the container would run as root"
    user, _, group = users[-1].args.partition(":")
    assert user not in ("root", "0") and group not in ("root", "0")
    cmd = only(instructions, "CMD")[-1]
    assert users[-1].line < cmd.line
    created = " ".join(i.args for i in only(instructions, "RUN"))
    if user.isdigit():
        assert int(user) >= 1000
        assert re.search(rf"useradd\b[^&;]*--uid {user}\b", created), "the USER is never created"
    else:
        assert re.search(rf"useradd\b[^&;]*\b{re.escape(user)}\b", created)


def test_no_instruction_after_user_needs_root(instructions: list[Instruction]) -> None:
    last_user = only(instructions, "USER")[-1].line
    assert not [i for i in only(instructions, "RUN") if i.line > last_user]


def test_the_service_command_listens_on_the_exposed_port(instructions: list[Instruction]) -> None:
    cmd = only(instructions, "CMD")[-1].exec_form()
    assert cmd == ["liver-cds", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert PYPROJECT["project"]["scripts"]["liver-cds"] == "service.cli:main"
    exposed = {p.split("/")[0] for e in only(instructions, "EXPOSE") for p in e.args.split()}
    assert exposed == {"8000"}


def test_healthcheck_probes_healthz_with_python_not_curl(instructions: list[Instruction]) -> None:
    (check,) = only(instructions, "HEALTHCHECK")
    probe = check.exec_form()
    assert probe is not None and probe[0] == "python"
    joined = " ".join(probe)
    assert "http://127.0.0.1:8000/healthz" in joined
    assert "curl" not in joined and "wget" not in joined
    assert re.search(r"--timeout=\d+s", check.args) and re.search(r"--interval=\d+s", check.args)


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_healthcheck_command_really_succeeds_on_200_and_fails_otherwise(
    instructions: list[Instruction], health_server: http.server.HTTPServer
) -> None:
    """Run the image's probe (with this Python, on a free port) against a stub /healthz."""
    probe = only(instructions, "HEALTHCHECK")[0].exec_form()
    assert probe is not None
    port = health_server.server_address[1]
    command = [sys.executable] + [a.replace(":8000/", f":{port}/") for a in probe[1:]]
    assert subprocess.run(command, capture_output=True, timeout=10).returncode == 0
    _Health.status = 503
    try:
        assert subprocess.run(command, capture_output=True, timeout=10).returncode != 0
    finally:
        _Health.status = 200
    health_server.shutdown()
    health_server.server_close()
    assert subprocess.run(command, capture_output=True, timeout=10).returncode != 0


def pip_installs(instructions: list[Instruction]) -> list[list[str]]:
    installs = []
    for run in only(instructions, "RUN"):
        for part in re.split(r"&&|;", run.args):
            words = shlex.split(part)
            if "pip" in " ".join(words[:4]) and "install" in words:
                installs.append(words[words.index("install") + 1 :])
    return installs


def test_install_step_installs_the_project_from_pyproject(instructions: list[Instruction]) -> None:
    """One `pip install .`: the dependencies are pyproject.toml's, no second list to drift."""
    (install,) = pip_installs(instructions)
    targets = [w for w in install if not w.startswith("-")]
    assert targets == ["."], install
    assert "--no-cache-dir" in install
    install_line = next(i.line for i in only(instructions, "RUN") if "pip install" in i.args)
    copied_before = " ".join(i.args for i in only(instructions, "COPY") if i.line < install_line)
    assert "pyproject.toml" in copied_before
    assert "service" in copied_before.split()
    assert PYPROJECT["project"]["readme"] in copied_before  # setuptools reads it to build


def test_readme_commands_install_the_same_project() -> None:
    """`make run` / `make test` (the README's commands) install the same pyproject project;
    they add the [test] extra and an editable install, the image does not (operations guide)."""
    makefile = (ROOT / "Makefile").read_text()
    installs = re.findall(r"pip install ([^\n]+)", makefile)
    project = [line for line in installs if "--upgrade pip" not in line]
    assert project, "the Makefile installs no project"
    for line in project:
        targets = [w for w in shlex.split(line) if not w.startswith("-")]
        assert targets and all(t == "." or t.startswith(".[") for t in targets), line
    assert "pyproject.toml" in makefile  # the venv is rebuilt when pyproject changes


def test_settings_come_from_known_environment_variables(instructions: list[Instruction]) -> None:
    env = env_values(instructions)
    ours = {k: v for k, v in env.items() if k.startswith("LIVER_CDS_")}
    assert set(ours) <= set(ENVIRONMENT_VARIABLES), set(ours) - set(ENVIRONMENT_VARIABLES)
    Settings.from_env(ours)  # the image's defaults are valid settings


def test_the_database_lives_on_a_volume_the_user_owns(instructions: list[Instruction]) -> None:
    url = env_values(instructions)["LIVER_CDS_DATABASE_URL"]
    assert url.startswith("sqlite:////"), "an absolute path (four slashes) inside the image"
    db_dir = str(Path(url.removeprefix("sqlite:///")).parent)
    volumes = [v for ins in only(instructions, "VOLUME") for v in json.loads(ins.args)]
    assert db_dir in volumes
    runs = " ".join(i.args for i in only(instructions, "RUN"))
    assert re.search(rf"chown \S+ {re.escape(db_dir)}", runs)


def test_every_copied_path_exists_and_is_not_dockerignored(instructions: list[Instruction]) -> None:
    ignored = [
        p.strip()
        for p in (ROOT / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]
    for copy in only(instructions, "COPY"):
        sources = [s for s in copy.args.split()[:-1] if not s.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "var"} <= ignored


def test_guides_show_build_and_run_commands_and_only_real_settings() -> None:
    readme = (ROOT / "README.md").read_text()
    guide = (ROOT / "docs" / "operations.md").read_text()
    for text in (readme, guide):
        assert "docker build -t liver-cds ." in text
        assert re.search(r"docker run [^\n]*-p 8000:8000", text)
    docs = readme + "".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))
    named = set(re.findall(r"LIVER_CDS_[A-Z0-9_]+", docs))
    assert named and named <= set(ENVIRONMENT_VARIABLES), named - set(ENVIRONMENT_VARIABLES)
    for name in re.findall(r"LIVER_CDS_[A-Z0-9_]+", (ROOT / "Dockerfile").read_text()):
        assert name in guide, f"{name} is set by the image but not documented"
