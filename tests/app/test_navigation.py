"""The frame (app.py): every page runs inside it, with the set-up (store, sidebar) done once."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.background import wait_for_tasks

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")


@pytest.mark.parametrize("page, heading", [("pages/1_Corpus.py", "Corpus"), ("pages/2_Map.py", "Map"),
                                           ("pages/5_Dataset.py", "Dataset")])
def test_every_page_runs_inside_the_frame_with_its_sidebar(page, heading):
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert at.title[0].value == heading
    assert at.sidebar.text_input(key="reviewer") is not None        # the frame's sidebar, drawn once
    assert len([t for t in at.sidebar.text_input if t.key == "reviewer"]) == 1


def test_an_ingest_goes_on_while_the_user_is_on_another_page():
    # (AppTest resets Streamlit's pages/ detection before every run, so a run through the frame
    # starts with a rerun that drops clicks: the click happens on the page opened on its own.)
    corpus = AppTest.from_file(str(ROOT / "pages" / "1_Corpus.py"), default_timeout=60).run()
    corpus.text_input(key="corpus.path").input(str(ROOT / "tests" / "data" / "ingest" / "multilang_repo"))
    corpus.button(key="corpus.ingest_path").click().run()
    assert not corpus.exception, corpus.exception
    at = AppTest.from_file(APP, default_timeout=60).run()               # the user is on Home now
    assert not at.exception, at.exception
    assert wait_for_tasks(60), "the ingest did not finish"
    at.run()
    assert int({m.label: m.value for m in at.metric}["Corpus"].replace(",", "")) > 0   # Home sees the snippets
    at.switch_page("pages/1_Corpus.py").run()
    assert not at.exception, at.exception
    assert any("new snippets" in s.value for s in at.success)          # the outcome waits on its page
