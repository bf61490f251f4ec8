"""The app's pages: the one place a page's script is named. Everything else links to a page by its
title (`page("Corpus")`), which is also its URL (/Corpus; Home is the default page at /)."""
from __future__ import annotations

import streamlit as st

from core.appfiles import app_files

# title, script in pages/, icon, in menu order
PAGES = (
    ("Home", "0_Home.py", ":material/home:"),
    ("Corpus", "1_Corpus.py", ":material/database:"),
    ("Map", "2_Map.py", ":material/scatter_plot:"),
    ("Generate", "3_Generate.py", ":material/auto_awesome:"),
    ("Review", "4_Review.py", ":material/rate_review:"),
    ("Dataset", "5_Dataset.py", ":material/dataset:"),
    ("Team", "6_Team.py", ":material/group:"),
    ("Evaluate", "7_Evaluate.py", ":material/fact_check:"),
)
HOME = PAGES[0][0]


def page(title: str):
    """The page called `title`, for st.navigation and st.page_link (absolute path: a page script run on
    its own, as in a test, resolves relative paths from pages/ itself)."""
    try:
        _, script, icon = next(p for p in PAGES if p[0] == title)
    except StopIteration:
        raise KeyError(f"No page called {title!r}; the pages are {', '.join(p[0] for p in PAGES)}.") from None
    home = title == HOME
    return st.Page(app_files().root / "pages" / script, title=title, icon=icon, default=home,
                   url_path=None if home else title)


def page_titles() -> list[str]:
    """The pages' titles (their URLs), Home first."""
    return [title for title, _, _ in PAGES]


def app_pages() -> list:
    """The navigation menu: titled pages, at the URLs the app has always used (/Corpus, /Map, ...)."""
    return [page(title) for title in page_titles()]
