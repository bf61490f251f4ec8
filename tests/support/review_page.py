"""The Review page under AppTest: a database of fake judged examples it opens, and the page's run, its
buttons and the example it shows."""
from __future__ import annotations

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.store import open_store
from tests.support.fake_generations import fill_fake

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "4_Review.py")


def review_db(tmp_path, monkeypatch, n: int = 60, seed: int = 11) -> tuple[Path, dict]:
    """A DuckDB file of `n` fake judged examples that the Review page (SHOAL_DB) opens as user "tester"."""
    db = tmp_path / "review_app.duckdb"
    monkeypatch.setenv("SHOAL_DB", str(db))
    monkeypatch.setenv("USER", "tester")
    with open_store(db) as s:
        info = fill_fake(s, n, seed=seed)
    return db, info


def run_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def shown_gid(at: AppTest) -> int | None:
    for m in at.markdown:
        hit = re.search(r"### Example #(\d+)", m.value)
        if hit:
            return int(hit.group(1))
    return None


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at
