"""Shared fixtures: every test gets its own database file; paths to test data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def _isolated_db(tmp_path, monkeypatch):
    """Point SHOAL_DB at a temp file so no test touches a real database."""
    monkeypatch.setenv("SHOAL_DB", str(tmp_path / "shoal.duckdb"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    yield


@pytest.fixture
def store(tmp_path):
    from core.store import open_store
    s = open_store(tmp_path / "test.duckdb")
    yield s
    s.close()
