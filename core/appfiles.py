"""Where the web app's files are, and the Streamlit settings `shoal app` starts it with.

The app is `app.py` (the frame), `pages/` (one script per page) and `.streamlit/config.toml` (theme
and server settings). In a checkout they sit at the repository root, beside `core/`; an installed
wheel carries them as data files under `<prefix>/share/shoal/` (pyproject.toml,
`[tool.setuptools.data-files]`), with the same layout. `ui/` is an ordinary package in both.

Streamlit reads `.streamlit/config.toml` from the folder it is started in, which for an installed
Shoal is any folder: `shoal app` therefore passes the settings of the app's own config.toml as
`--section.key value` flags (flags win over config files and STREAMLIT_* variables).
"""
from __future__ import annotations

import os
import site
import sys
import sysconfig
import tomllib
from dataclasses import dataclass
from pathlib import Path

from core.errors import ShoalError

SHARE = Path("share") / "shoal"          # where the wheel puts app.py, pages/ and .streamlit/ under its prefix
CHECKOUT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class AppFiles:
    """The folder holding app.py, pages/ and .streamlit/config.toml; `installed` unless a checkout."""
    root: Path
    installed: bool

    @property
    def entry(self) -> Path:
        return self.root / "app.py"

    @property
    def config(self) -> Path:
        return self.root / ".streamlit" / "config.toml"

    def workdir(self) -> Path:
        """Where the app runs: a checkout's root (its .streamlit/secrets.toml, as always); for an installed
        Shoal the folder `shoal app` was started in (its .streamlit/secrets.toml, exports/ ...)."""
        return Path.cwd() if self.installed else self.root

    def secrets(self) -> list[Path]:
        """The secrets files Streamlit reads when the app runs in `workdir()`."""
        return [self.workdir() / ".streamlit" / "secrets.toml", Path.home() / ".streamlit" / "secrets.toml"]


def _is_app(root: Path) -> bool:
    return (root / "app.py").is_file() and (root / "pages").is_dir()


def install_roots() -> list[Path]:
    """Where an installed wheel's data files can be: this environment's prefix (venv, pipx), the user
    base (`pip install --user`), the scheme's data path, and the prefix above this package's site-packages."""
    places = [sys.prefix, sys.exec_prefix, site.getuserbase(), sysconfig.get_path("data")]
    roots = [Path(p) / SHARE for p in places if p]
    site_packages = CHECKOUT                      # <prefix>/lib/pythonX.Y/site-packages when installed
    if len(site_packages.parents) >= 3:
        roots.append(site_packages.parents[2] / SHARE)
    return list(dict.fromkeys(roots))


def app_files() -> AppFiles:
    """The app's files: the checkout's first (a source tree with pyproject.toml beside core/), else the
    installed copy. Raises ShoalError naming the places looked at when there is neither."""
    if (CHECKOUT / "pyproject.toml").is_file() and _is_app(CHECKOUT):
        return AppFiles(CHECKOUT, installed=False)
    roots = install_roots()
    for root in roots:
        if _is_app(root):
            return AppFiles(root, installed=True)
    raise ShoalError("The app's files (app.py, pages/) are missing: looked in " + ", ".join(map(str, roots))
                     + ". Reinstall Shoal (pip install --force-reinstall shoal-*.whl) or run from a checkout.")


def _flatten(table: dict, prefix: str = "") -> dict[str, object]:
    """{"server": {"port": 1}, "theme": {"sidebar": {...}}} -> {"server.port": 1, "theme.sidebar.x": ...}."""
    out: dict[str, object] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _flag_value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def streamlit_flags(config: Path, overrides: dict[str, object] | None = None) -> list[str]:
    """`--section.key value` for every setting in `config` (a Streamlit config.toml; none if missing),
    then `overrides` (what the command line chose: address, port, headless) over them. A list
    setting repeats its flag once per value, as Streamlit's command line takes it."""
    settings = _flatten(tomllib.loads(config.read_text(encoding="utf-8"))) if config.is_file() else {}
    settings.update(overrides or {})
    flags: list[str] = []
    for key, value in settings.items():
        for item in value if isinstance(value, list) else [value]:
            flags += [f"--{key}", _flag_value(item)]
    return flags


def streamlit_command(files: AppFiles, overrides: dict[str, object]) -> list[str]:
    """The `python -m streamlit run` line that serves the app with its settings."""
    return [sys.executable, "-m", "streamlit", "run", str(files.entry), *streamlit_flags(files.config, overrides)]


def exec_streamlit(files: AppFiles, overrides: dict[str, object], env: dict[str, str]) -> None:
    """Become Streamlit instead of waiting on it: a signal to this PID then stops the server itself,
    so `kill` never leaves a child serving and holding the database lock."""
    sys.stdout.flush(); sys.stderr.flush()
    os.chdir(files.workdir())
    os.execve(sys.executable, streamlit_command(files, overrides), env)
