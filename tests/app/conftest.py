"""Fixtures shared by the app tests."""
from __future__ import annotations

import pytest

from core.store import open_store
from core.team import members as team
from tests.support.fake_generations import fill_fake


@pytest.fixture
def team_db(tmp_path, monkeypatch):
    import core.secrets_file
    monkeypatch.setattr(core.secrets_file, "secrets_paths", lambda: [tmp_path / "no-secrets.toml"])   # roles: DB only
    db = tmp_path / "team_app.duckdb"
    monkeypatch.setenv("SHOAL_DB", str(db))
    with open_store(db) as s:
        fill_fake(s, 60, seed=13)
        # named before the app starts (`shoal team add ... --role owner`): nobody takes the team by signing in
        team.set_member(s, "ann@example.com", "owner", actor=team.local(), actor_role="owner", config={})
    return db
