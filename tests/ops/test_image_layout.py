"""The container image's file layout works, checked without a container engine.

The image installs the package non-editably (``pip install .``): only the Python modules
and the declared package data land in site-packages, and ``cards/`` and ``fixtures/`` are
found through the ``LIVER_CDS_*`` paths the Dockerfile sets, not next to the source. This
test rebuilds that layout in a temporary directory from the Dockerfile's own COPY and ENV
instructions and pyproject's package rules, starts the app from it (this interpreter, the
project's dependencies), and checks that the demo page and a hook call with cards work.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from .dockerfile import DOCKERFILE, ROOT, env_values, only, parse

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def install_like_setuptools(site: Path) -> None:
    """Copy what a wheel of this project contains: packages (directories with
    ``__init__.py`` matching ``packages.find.include``), their ``.py`` modules, and the
    files matched by ``package-data``."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    include = setuptools["packages"]["find"]["include"]
    package_data: dict[str, list[str]] = setuptools.get("package-data", {})
    for init in ROOT.glob("**/__init__.py"):
        package_dir = init.parent
        dotted = ".".join(package_dir.relative_to(ROOT).parts)
        if not any(
            dotted == pattern.rstrip("*").rstrip(".") or dotted.startswith(pattern.rstrip("*"))
            for pattern in include
        ) or any(part.startswith(".") for part in package_dir.relative_to(ROOT).parts):
            continue
        target = site / package_dir.relative_to(ROOT)
        target.mkdir(parents=True, exist_ok=True)
        for module in package_dir.glob("*.py"):
            shutil.copy2(module, target / module.name)
        for pattern in package_data.get(dotted, []):
            for data in package_dir.glob(pattern):
                if data.is_file():
                    destination = target / data.relative_to(package_dir)
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(data, destination)


def fixture_with_cards() -> str:
    manifest = json.loads((ROOT / "fixtures" / "manifest.json").read_text())
    patient = next(p for p in manifest["patients"] if p["expected"]["verdict"] is not None)
    return Path(patient["file"]).stem


PROBE = textwrap.dedent(
    """
    import asyncio, json, sys
    import httpx
    from asgi_lifespan import LifespanManager
    import service
    from service.app import create_app
    from service.settings import Settings

    async def main():
        app = create_app(Settings.from_env())
        out = {"service_file": service.__file__}
        async with LifespanManager(app) as running:
            transport = httpx.ASGITransport(app=running.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                out["healthz"] = (await c.get("/healthz")).status_code
                out["page"] = (await c.get("/")).status_code
                out["markdown"] = (
                    await c.post("/demo/markdown", json={"markdown": ["**a** <b>"]})
                ).json()
                out["fixtures"] = len((await c.get("/demo/fixtures")).json()["patients"])
                request = (await c.get("/demo/fixtures/" + sys.argv[1])).json()
                answer = await c.post("/cds-services/liver-metastasis-resectability", json=request)
                out["hook_status"] = answer.status_code
                out["cards"] = len(answer.json().get("cards", []))
                view = await c.get("/demo/view/" + sys.argv[1])
                out["full_view"] = view.status_code
                out["full_view_assets"] = [
                    (await c.get("/smart/static/" + path)).status_code
                    for path in ("app.js", "app.css", "vendor/uPlot.iife.min.js")
                ]
        print(json.dumps(out))

    asyncio.run(main())
    """
)


def test_the_image_layout_serves_the_demo_and_cards(tmp_path: Path) -> None:
    instructions = parse(DOCKERFILE.read_text())
    root = tmp_path / "image"
    workdir = root / only(instructions, "WORKDIR")[-1].args.strip().lstrip("/")
    workdir.mkdir(parents=True)

    def inside(path: str) -> Path:
        return root / path.lstrip("/") if path.startswith("/") else workdir / path

    for copy in only(instructions, "COPY"):
        *sources, destination = copy.args.split()
        for source in sources:
            target = inside(destination)
            if not (ROOT / source).exists():
                continue  # reported by test_dockerfile; not needed at run time (README.md)
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / source, target / Path(source).name)
    site = root / "site-packages"
    install_like_setuptools(site)

    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVER_CDS_")}
    for name, value in env_values(instructions).items():
        if name.startswith("LIVER_CDS_"):
            env[name] = value.replace("sqlite:////", f"sqlite:///{root}/").replace(
                "/app/", f"{workdir}/"
            )
    for volume in only(instructions, "VOLUME"):
        for path in json.loads(volume.args):
            inside(path).mkdir(parents=True, exist_ok=True)
    env["PYTHONPATH"] = str(site)
    # Run as a script outside the source tree, like the console script: the working
    # directory holds a copy of service/ that must not be what gets imported.
    script = root / "bin" / "probe.py"
    script.parent.mkdir()
    script.write_text(PROBE)
    done = subprocess.run(
        [sys.executable, str(script), fixture_with_cards()],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    log = done.stderr[-3000:]
    assert result["service_file"].startswith(str(site))
    assert result["healthz"] == 200
    assert result["page"] == 200
    assert result["markdown"] == {"html": ["<p><strong>a</strong> &lt;b&gt;</p>\n"]}
    assert result["fixtures"] >= 1
    assert result["hook_status"] == 200, log
    assert result["cards"] >= 1, log
    assert result["full_view"] == 200, log  # templates ship in the package
    assert result["full_view_assets"] == [200, 200, 200]
