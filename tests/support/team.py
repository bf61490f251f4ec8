"""A signed-in team for the role tests: its members, the secrets file that configures sign-in and names
their roles, and the refusals the audit log recorded for one of them."""
from __future__ import annotations

from pathlib import Path

OWNER, CURATOR, ANN, BOB, EVE = "owner@x.org", "cura@x.org", "ann@x.org", "bob@x.org", "eve@x.org"
AUTH = """[auth]
redirect_uri = "http://127.0.0.1:8501/oauth2callback"
cookie_secret = "0123456789abcdef0123456789abcdef"
"""
ROLES = f"""[shoal.team]
owner = "{OWNER}"
[shoal.roles]
"{CURATOR}" = "curator"
"{ANN}" = "reviewer"
"{BOB}" = "reviewer"
"""


def use_secrets(monkeypatch, path: Path | None) -> None:
    import core.secrets_file
    monkeypatch.setattr(core.secrets_file, "secrets_paths", lambda: [path] if path else [])


def refusals(store, actor: str) -> list[tuple[str, str | None]]:
    return [(r[0], r[1]) for r in store.execute(
        "SELECT action, entity_id FROM audit_log WHERE actor = ? AND action LIKE '%.refused' ORDER BY id",
        [actor]).fetchall()]
