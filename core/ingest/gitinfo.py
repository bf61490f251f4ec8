"""Provenance of a git checkout read straight from .git (no `git` binary needed):
repository name, HEAD commit and a web URL for permalinks to GitHub/GitLab/Bitbucket."""
from __future__ import annotations

import configparser
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass
class GitInfo:
    root: Path
    repo: str                 # owner/name from the origin remote, else the folder name
    commit: str | None
    web_url: str | None       # https://github.com/owner/name

    def permalink(self, rel: str, start: int, end: int) -> str | None:
        if not self.web_url or not self.commit:
            return None
        return f"{self.web_url}/blob/{self.commit}/{rel}#L{start}-L{end}"


_REMOTE = re.compile(r"^(?:https?://|ssh://)?(?:[^@/]+@)?(?P<host>[^/:]+)[:/](?P<path>.+?)(?:\.git)?/?$")


def _head_commit(git_dir: Path) -> str | None:
    try:
        head = (git_dir / "HEAD").read_text().strip()
    except OSError:
        return None
    if not head.startswith("ref:"):
        return head or None
    ref = head[4:].strip()
    try:
        return (git_dir / ref).read_text().strip()
    except OSError:
        pass
    try:
        for line in (git_dir / "packed-refs").read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref:
                return parts[0]
    except OSError:
        pass
    return None


def git_info(root: Path) -> GitInfo | None:
    """GitInfo if `root` is the top of a git checkout, else None."""
    git_dir = root / ".git"
    if git_dir.is_file():  # worktree / submodule: "gitdir: <path>"
        try:
            target = git_dir.read_text().split(":", 1)[1].strip()
            git_dir = (root / target).resolve()
        except (OSError, IndexError):
            return None
    if not git_dir.is_dir():
        return None
    repo, web = root.resolve().name, None
    cfg = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        cfg.read(git_dir / "config")
        url = cfg.get('remote "origin"', "url", fallback=None)
    except configparser.Error:
        url = None
    if url:
        m = _REMOTE.match(url.strip())
        if m:
            repo = m.group("path").strip("/")
            host = m.group("host")
            if host in ("github.com", "gitlab.com", "bitbucket.org"):
                web = f"https://{host}/{repo}"
    return GitInfo(root=root, repo=repo, commit=_head_commit(git_dir), web_url=web)
