"""Fixtures shared by more than one folder of tests/core."""
from __future__ import annotations

import pytest

from core import review as rv
from core.store import open_store
from tests.support.fake_generations import fill_fake
from tests.support.team import ANN, AUTH, BOB, OWNER, ROLES, use_secrets


@pytest.fixture
def signed(tmp_path, monkeypatch):
    """A team on a real DuckDB file: sign-in configured, roles in the secrets file, examples assigned
    half to ann and half to bob; bob has accepted one of his."""
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(AUTH + ROLES)
    use_secrets(monkeypatch, secrets)
    monkeypatch.setenv("SHOAL_DATA_ROOTS", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    store = open_store(tmp_path / "team.duckdb")
    fill_fake(store, 12, seed=7)
    rv.assign_examples(store, [ANN, BOB], per_example=1, overlap_share=1.0, actor=OWNER, actor_role="owner")
    mine = {who: [int(r[0]) for r in store.execute(
        "SELECT generation_id FROM assignments WHERE reviewer = ? ORDER BY 1", [who]).fetchall()] for who in (ANN, BOB)}
    g = mine[BOB][0]
    rv.decide(store, g, "accepted", reviewer=BOB, expected_version=rv.version_for(store, g, BOB))
    yield store, mine
    store.close()
