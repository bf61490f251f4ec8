"""Files uploaded in the app: saved under `<db folder>/uploads/`, zip archives unpacked safely."""
from __future__ import annotations

import re
import zipfile
from pathlib import Path, PurePosixPath

from core.errors import ShoalError
from core.ingest.roots import uploads_dir
from core.store import Store
from core.team import members as team

MAX_UNZIPPED_BYTES = 500_000_000
MAX_ZIP_MEMBERS = 50_000


def safe_name(name: str) -> str:
    base = PurePosixPath(name.replace("\\", "/")).name
    base = re.sub(r"[^A-Za-z0-9._+-]+", "_", base).strip("._") or "upload"
    return base[:120]


def save_upload(store: Store, name: str, data: bytes, actor: str | None = None) -> Path:
    """An upload from the app, written into the store's upload folder once `actor` may ingest (a
    reviewer's upload is refused before a byte reaches the disk). Returns what to ingest."""
    team.authorize(store, actor, "ingest", target=f"upload {safe_name(name)}")
    return write_upload(name, data, uploads_dir(store))


def write_upload(name: str, data: bytes, folder: Path) -> Path:
    """Write an uploaded file; a .zip becomes a folder of its members. Returns what to ingest.
    The same content uploaded again lands on the same path (so re-ingesting adds nothing)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / safe_name(name)
    if not target.name.lower().endswith(".zip"):
        target.write_bytes(data)
        return target
    out = target.with_suffix("")
    zpath = target
    zpath.write_bytes(data)
    try:
        with zipfile.ZipFile(zpath) as zf:
            members = zf.infolist()
            if len(members) > MAX_ZIP_MEMBERS:
                raise ShoalError(f"{name}: more than {MAX_ZIP_MEMBERS:,} files in the archive.")
            if sum(m.file_size for m in members) > MAX_UNZIPPED_BYTES:
                raise ShoalError(f"{name}: unpacks to more than {MAX_UNZIPPED_BYTES // 1_000_000} MB.")
            for m in members:
                parts = PurePosixPath(m.filename.replace("\\", "/")).parts
                if m.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                    raise ShoalError(f"{name}: unsafe path {m.filename!r} in the archive.")
            zf.extractall(out)
    except zipfile.BadZipFile as exc:
        raise ShoalError(f"{name} is not a readable zip archive: {exc}") from None
    finally:
        zpath.unlink(missing_ok=True)
    return out
