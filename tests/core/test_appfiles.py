"""Where `shoal app` finds the app (checkout first, else the installed copy) and the settings it passes."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

import core.appfiles as appfiles
from core.appfiles import AppFiles, app_files, streamlit_command, streamlit_flags
from core.errors import ShoalError


def _app(root: Path, checkout: bool = False) -> Path:
    (root / "pages").mkdir(parents=True)
    (root / "app.py").write_text("")
    if checkout:
        (root / "pyproject.toml").write_text("")
    return root


def test_the_checkout_comes_first(tmp_path, monkeypatch):
    monkeypatch.setattr(appfiles, "CHECKOUT", _app(tmp_path / "repo", checkout=True))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    _app(tmp_path / "venv" / "share" / "shoal")
    files = app_files()
    assert files == AppFiles(tmp_path / "repo", installed=False)
    assert files.workdir() == tmp_path / "repo"


def test_an_installed_copy_is_found_under_the_prefix_and_runs_in_the_cwd(tmp_path, monkeypatch):
    site_packages = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    _app(site_packages)      # a stray app.py in site-packages is no checkout: no pyproject.toml beside it
    monkeypatch.setattr(appfiles, "CHECKOUT", site_packages)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    share = _app(tmp_path / "venv" / "share" / "shoal")
    monkeypatch.chdir(tmp_path)
    files = app_files()
    assert files == AppFiles(share, installed=True)
    assert files.workdir() == tmp_path and files.secrets()[0] == tmp_path / ".streamlit" / "secrets.toml"


def test_missing_app_files_name_the_places_looked_at(tmp_path, monkeypatch):
    monkeypatch.setattr(appfiles, "CHECKOUT", tmp_path / "site-packages")
    monkeypatch.setattr(appfiles, "install_roots", lambda: [tmp_path / "nowhere"])
    with pytest.raises(ShoalError, match="nowhere"):
        app_files()


def test_config_becomes_flags_under_the_command_line_choices(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[server]\nheadless = true\nport = 1\n[theme]\nprimaryColor = "#0b6e99"\n'
                      '[theme.sidebar]\nbase = "dark"\n[server2]\nlist = ["a", "b"]\n')
    flags = streamlit_flags(config, {"server.port": 8502, "server.headless": False})
    pairs = list(zip(flags[::2], flags[1::2]))
    assert ("--theme.primaryColor", "#0b6e99") in pairs and ("--theme.sidebar.base", "dark") in pairs
    assert ("--server.port", "8502") in pairs and ("--server.port", "1") not in pairs
    assert ("--server.headless", "false") in pairs
    assert [v for k, v in pairs if k == "--server2.list"] == ["a", "b"]
    assert streamlit_flags(tmp_path / "missing.toml", {"server.port": 1}) == ["--server.port", "1"]


def test_the_checkouts_own_config_reaches_streamlit():
    files = app_files()
    cmd = streamlit_command(files, {"server.port": 8501})
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4] == str(files.entry)
    assert "--theme.primaryColor" in cmd and "--server.fileWatcherType" in cmd
