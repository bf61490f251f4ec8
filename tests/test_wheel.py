"""The app runs from an installed wheel: build the wheel, install it into a clean venv outside the
checkout, then from a folder that is not the checkout `shoal --help` works and `shoal app --demo` serves
the demo (Home page in Chromium, the map component's page present).

The clean venv sees the project's dependencies through one .pth line naming this venv's site-packages:
a folder added by a .pth line has its own .pth files left unread, so the checkout's editable install
(its finder or path line) does not load, and `core`, `ui` and the app's files come from the wheel only.
Figures (wheel size, build, install, time to serve) go to test-artifacts/wheel-figures.json.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.support.browser import ARTIFACTS, no_exception, wait_for_app, wait_or_fail
from tests.support.streamlit_server import free_port

ROOT = Path(__file__).resolve().parent.parent
# what a build needs is the tree less the virtual environment, tests, caches and build leftovers
NOT_BUILT = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", "build", "dist", "test-artifacts",
                                   "*.duckdb*", ".*_cache", "tests", "bench", "docs", "secrets.toml", "exports")

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _run(cmd: list, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=180, **kw)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _build_wheel(tmp: Path) -> Path:
    """The wheel, built from a copy of the tree (an in-tree build would leave build/ and *.egg-info behind)."""
    src, dist = tmp / "src", tmp / "dist"
    shutil.copytree(ROOT, src, ignore=NOT_BUILT)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", dist, src])
    (wheel,) = dist.glob("shoal-*.whl")
    return wheel


def _clean_venv(tmp: Path, wheel: Path) -> Path:
    """A venv with the wheel installed and this venv's site-packages as a plain path (see the module doc)."""
    env_dir = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", env_dir])
    python = env_dir / "bin" / "python"
    # pip from here installs into that interpreter's environment; the wheel goes in before the .pth line,
    # so pip sees no other Shoal there (the editable one in this venv) to replace
    _run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel])
    site_dir = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site_dir / "_shoal_test_deps.pth").write_text("".join(f"{p}\n" for p in deps))
    return env_dir


def _wait_healthy(proc: subprocess.Popen, url: str, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"`shoal app` exited:\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"`shoal app` did not serve within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _check_installed(python: Path, env_dir: Path, cwd: Path, env: dict) -> None:
    """core and ui come from the wheel, not the checkout; the map component's page is there and is
    copied into the private asset folder the component is served from."""
    probe = ("import core, ui, core.appfiles as a; from ui.map.chart import _asset_dir; "
             "f = a.app_files(); d = _asset_dir(); "
             "print(core.__file__, ui.__file__, f.root, f.installed, (d / 'index.html').is_file(), sep='\\n')")
    core_file, ui_file, app_root, installed, asset = _run([python, "-c", probe], cwd=cwd, env=env).stdout.split()
    for path in (core_file, ui_file, app_root):
        assert Path(path).is_relative_to(env_dir), f"{path} is not the wheel's copy"
    assert installed == "True" and asset == "True"


def test_wheel_installs_outside_the_checkout_and_serves_the_demo(tmp_path, page):
    assert not tmp_path.is_relative_to(ROOT)
    figures: dict[str, float | int] = {}
    t0 = time.monotonic()
    wheel = _build_wheel(tmp_path)
    figures["build_s"], t0 = round(time.monotonic() - t0, 1), time.monotonic()
    figures["wheel_kib"] = wheel.stat().st_size // 1024
    names = zipfile.ZipFile(wheel).namelist()
    assert "ui/map/component/index.html" in names and any(n.startswith("core/migrations/") for n in names)
    assert not any(n.endswith("secrets.toml") or n.startswith(("tests/", "bench/")) for n in names)
    env_dir = _clean_venv(tmp_path, wheel)
    figures["install_s"] = round(time.monotonic() - t0, 1)
    python, shoal = env_dir / "bin" / "python", env_dir / "bin" / "shoal"
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HOME=str(tmp_path / "home"), SHOAL_DB=str(tmp_path / "demo.duckdb"),
               SHOAL_CACHE_DIR=str(tmp_path / "cache"))
    t0 = time.monotonic()
    _check_installed(python, env_dir, work, env)
    figures["check_s"], t0 = round(time.monotonic() - t0, 1), time.monotonic()
    assert "app" in _run([shoal, "--help"], cwd=work, env=env).stdout
    figures["help_s"] = round(time.monotonic() - t0, 1)

    port, log = free_port(), tmp_path / "app.log"
    t0 = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen([shoal, "app", "--demo", "--port", str(port)], cwd=work, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(proc, url, log)
        figures["serve_s"] = round(time.monotonic() - t0, 1)
        # the app's own settings (.streamlit/config.toml, packaged) reach Streamlit as flags
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"--theme.primaryColor" in cmdline and b"#0b6e99" in cmdline
        page.goto(url)
        wait_for_app(page, timeout=90_000)
        wait_or_fail(page, page.get_by_role("heading", name="Shoal"), 30_000, "the Home page's title")
        assert page.title() == "Home · Shoal"
        figures["first_page_s"] = round(time.monotonic() - t0, 1)
        no_exception(page)
        # the pages' paths resolve against the installed copy (a page link that does not resolve is left out)
        wait_or_fail(page, page.get_by_role("link", name="Go to").first, 30_000, "the next step's page link")
        carried = [n for n in names if "/share/shoal/pages/" in n and n.endswith(".py")]
        assert page.locator("[data-testid='stSidebarNav'] a").count() == len(carried) >= 7   # the menu: every page
        assert not (work / ".streamlit").exists() and not any(work.iterdir())   # nothing written to the cwd
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "wheel-figures.json").write_text(json.dumps(figures, indent=1))
    print("wheel figures:", figures)
