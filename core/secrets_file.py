"""The secrets.toml files Streamlit reads: where they are, a key or a section read from them, the
sign-in settings they hold, and a key typed on the Generate page written into one (merged with
what the file holds, never a session-only key)."""
from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from core.errors import ShoalError

# A key typed on the Generate page for one session only is named with this prefix and held in
# memory (core.config.hold_session_key): no environment variable or secrets.toml key has it.
SESSION_KEY_PREFIX = "SHOAL_SESSION_KEY_"
_KEY_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def secrets_paths() -> list[Path]:
    """Where Streamlit keeps secrets: the project's .streamlit/ first, then the user's."""
    paths = [Path.cwd() / ".streamlit" / "secrets.toml", Path.home() / ".streamlit" / "secrets.toml"]
    if os.environ.get("SHOAL_SECRETS_FILE"):
        paths.insert(0, Path(os.environ["SHOAL_SECRETS_FILE"]).expanduser())
    return paths


def read_secret(name: str, paths: list[Path] | None = None) -> str | None:
    for path in paths if paths is not None else secrets_paths():
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ShoalError(f"Cannot read secrets file {path}: {exc}") from None
        value = data.get(name)
        if value is None and isinstance(data.get("shoal"), dict):
            value = data["shoal"].get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def secrets_tables(paths: list[Path] | None) -> list[dict[str, Any]]:
    """Every secrets file that exists, parsed (project file first)."""
    out = []
    for path in paths if paths is not None else secrets_paths():
        if not path.is_file():
            continue
        try:
            out.append(tomllib.loads(path.read_text(encoding="utf-8")))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ShoalError(f"Cannot read secrets file {path}: {exc}") from None
    return out


def oidc_configured(paths: list[Path] | None = None) -> bool:
    """Whether Streamlit's `st.login` has an `[auth]` section to work with (redirect + cookie secret)."""
    for data in secrets_tables(paths):
        auth = data.get("auth")
        if isinstance(auth, dict) and auth.get("redirect_uri") and auth.get("cookie_secret"):
            return True
    return False


LOCAL_SIGN_IN_ENV = "SHOAL_LOCAL_SIGN_IN"


def local_sign_in_env() -> bool:
    """SHOAL_LOCAL_SIGN_IN=1 (or true / yes / on) turns local sign-in on without a secrets file."""
    return (os.environ.get(LOCAL_SIGN_IN_ENV) or "").strip().lower() in ("1", "true", "yes", "on")


def local_sign_in_in_files(paths: list[Path] | None = None) -> bool:
    """`[shoal.local_sign_in] enabled = true` in a secrets file (core.team.local_accounts)."""
    for data in secrets_tables(paths):
        shoal = data.get("shoal")
        section = shoal.get("local_sign_in") if isinstance(shoal, dict) else None
        if isinstance(section, dict) and section.get("enabled") is True:
            return True
    return False


def local_sign_in_configured(paths: list[Path] | None = None) -> bool:
    """Whether local sign-in (email + password, accounts in DuckDB) is on: env var or secrets file."""
    return local_sign_in_env() or local_sign_in_in_files(paths)


def sign_in_configured(paths: list[Path] | None = None) -> bool:
    """Whether a team is configured: sign-in through an OIDC provider (`[auth]`, Streamlit's
    `st.login`) or local sign-in (`[shoal.local_sign_in]` / SHOAL_LOCAL_SIGN_IN), or both. Then roles
    hold for everyone but this machine's own user, and the app may listen beyond loopback."""
    return oidc_configured(paths) or local_sign_in_configured(paths)


# ---------------------------------------------------------------- writing a key

def secrets_file_for_writing() -> Path:
    """Where a key saved from the page goes: $SHOAL_SECRETS_FILE, else the project's
    .streamlit/secrets.toml (Streamlit's own place, ignored by git)."""
    return secrets_paths()[0]


def _toml_string(value: str) -> str:
    # JSON's escapes (\" \\ \n \uXXXX ...) are all valid in a TOML basic string
    return json.dumps(value, ensure_ascii=True)


def write_secret(name: str, value: str, path: Path | None = None) -> Path:
    """Set the top-level `name = "value"` in a secrets.toml, keeping everything else in it
    (other keys, tables such as [auth], comments). Refuses to touch a file that does not parse.
    Written atomically, readable by the owner only. Returns the file's path."""
    if not _KEY_NAME_RE.match(name) or name.startswith(SESSION_KEY_PREFIX):
        raise ShoalError(f"{name!r} cannot be a secrets.toml key name.")
    value = value.strip()
    if not value or "\n" in value or "\r" in value:
        raise ShoalError("The key to save is empty or spans lines.")
    path = Path(path or secrets_file_for_writing()).expanduser()
    text, before = "", {}
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        try:
            before = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ShoalError(f"{path} is not valid TOML ({exc}); fix it before saving a key into it.") from None
    new_text = _with_top_level_line(text, name, f"{name} = {_toml_string(value)}")
    try:
        after = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError:
        after = {}
    others_kept = {k: v for k, v in after.items() if k != name} == {k: v for k, v in before.items() if k != name}
    if after.get(name) != value or not others_kept:
        raise ShoalError(f"Could not set {name} in {path} without changing the rest of it; edit the file by hand.")
    _write_private(path, new_text)
    return path


def _with_top_level_line(text: str, name: str, line: str) -> str:
    """`text` with the top-level assignment of `name` replaced by `line` (or `line` added before
    the first [table], where top-level keys must be)."""
    lines = text.splitlines()
    assign = re.compile(rf"^\s*(?:{re.escape(name)}|\"{re.escape(name)}\")\s*=")
    first_table = next((i for i, raw in enumerate(lines) if raw.lstrip().startswith("[")), len(lines))
    for i in range(first_table):
        if assign.match(lines[i]):
            lines[i] = line
            break
    else:
        lines.insert(first_table, line)
        if first_table < len(lines) - 1 and lines[first_table + 1].strip():
            lines.insert(first_table + 1, "")
    return "\n".join(lines) + "\n"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secrets-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
