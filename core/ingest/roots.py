"""Which server paths the app may ingest (the data roots), and symlinks that leave a folder.

A path typed on the Corpus page ("Path on the server") is ingested only when it resolves (symlinks
followed) inside one of the data roots:

* `SHOAL_DATA_ROOTS`: folders separated by os.pathsep (':' on Linux and macOS), else
* `data_roots = ["/data", "~/src"]` under `[shoal]` in the secrets file(s) (.streamlit/secrets.toml), else
* the default: the app's working directory, plus the user's home folder while no sign-in is
  configured (one local user, who can read it anyway).

The folder the app saves uploads in (`uploads/` next to the database) is always a root; the demo
source ('stdlib') is not a path. The CLI (`shoal ingest`) is this machine's own user and reads
what it is given.

Inside a folder being ingested, a symlink whose target lies outside that folder is refused and
counted as an ingest error (`symlink_outside_root`), whoever ingests: a cloned repository cannot
pull ~/.ssh or /etc/passwd into the corpus, and so into prompts sent to an LLM.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Iterable

from core.errors import OutsideDataRoots, ShoalError

ENV = "SHOAL_DATA_ROOTS"
SYMLINK_OUTSIDE = "symlink_outside_root"


def configured_roots(secrets: list[Path] | None = None) -> list[Path] | None:
    """The roots the environment or a secrets file names; None when neither does."""
    env = os.environ.get(ENV, "")
    if env.strip():
        return [Path(p.strip()).expanduser() for p in env.split(os.pathsep) if p.strip()]
    from core.secrets_file import secrets_paths
    for path in secrets if secrets is not None else secrets_paths():
        if not path.is_file():
            continue
        try:
            shoal: Any = tomllib.loads(path.read_text(encoding="utf-8")).get("shoal") or {}
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ShoalError(f"Cannot read secrets file {path}: {exc}") from None
        value = shoal.get("data_roots") if isinstance(shoal, dict) else None
        if value:
            return [Path(str(v)).expanduser() for v in ([value] if isinstance(value, str) else value)]
    return None


def uploads_dir(store: Any) -> Path:
    """Where the app saves uploaded files: `uploads/` next to the database."""
    return Path(store.path).resolve().parent / "uploads"


def data_roots(store: Any = None) -> list[Path]:
    """The folders the app may ingest from (resolved), the upload folder of `store` included."""
    from core.secrets_file import sign_in_configured
    roots = configured_roots()
    if roots is None:
        roots = [Path.cwd()] + ([] if sign_in_configured() else [Path.home()])
    if store is not None and str(store.path) != ":memory:":
        roots.append(uploads_dir(store))
    out: list[Path] = []
    for r in roots:
        r = r.resolve()
        if r not in out:
            out.append(r)
    return out


def within(path: Path, root: Path) -> bool:
    """Whether `path` is `root` or lies under it (both already resolved)."""
    return path == root or root in path.parents


def check_sources(sources: Iterable[str], roots: list[Path]) -> None:
    """Raise OutsideDataRoots for the first server path that resolves outside every root."""
    for source in sources:
        if source == "stdlib" or source.startswith("stdlib:"):
            continue
        resolved = Path(source).expanduser().resolve()
        if not any(within(resolved, r) for r in roots):
            raise OutsideDataRoots(source, roots)


def check_team_target(store: Any, actor: str | None, path: str | os.PathLike) -> None:
    """With sign-in configured, a folder the app writes for a signed-in person (an export) must lie
    under the data roots too: an export with "overwrite" replaces the folder it names."""
    from core.secrets_file import sign_in_configured
    if actor is None or not sign_in_configured():
        return
    roots = data_roots(store)
    if not any(within(Path(path).expanduser().resolve(), r) for r in roots):
        raise OutsideDataRoots(str(path), roots, verb="write to")


def link_outside(path: Path, root: Path) -> str | None:
    """For a symlink under `root` (resolved): where it points when that is outside `root`, else None."""
    if not path.is_symlink():
        return None
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):        # dangling or a loop: counted as unreadable where it is read
        return None
    return None if within(target, root) else str(target)
