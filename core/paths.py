"""Where Shoal keeps its per-user files (models, state, logs, the map component's assets)."""
from __future__ import annotations

import os
import stat
from pathlib import Path


def cache_dir() -> Path:
    """~/.cache/shoal (or $SHOAL_CACHE_DIR, or $XDG_CACHE_HOME/shoal): models, state files, logs."""
    if os.environ.get("SHOAL_CACHE_DIR"):
        return Path(os.environ["SHOAL_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "shoal"


def private_dir(path: Path) -> Path:
    """`path` as a folder only this user can read or write, created if missing.

    Refused (PermissionError) when it exists but is a symlink, belongs to someone else, or is open
    to others: files served or loaded from it must be the ones this user put there."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise PermissionError(f"{path} is not a folder owned by this user; remove it and try again")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path
