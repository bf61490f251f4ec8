"""The app's pages and the frame they run in (app.py runs `frame().run()`)."""
from __future__ import annotations

import streamlit as st

from ui.common import page_setup


def app_pages() -> list:
    """The navigation menu: titled pages, at the URLs the app has always used (/Corpus, /Map, ...)."""
    return [
        st.Page("pages/0_Home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/1_Corpus.py", title="Corpus", icon=":material/database:", url_path="Corpus"),
        st.Page("pages/2_Map.py", title="Map", icon=":material/scatter_plot:", url_path="Map"),
        st.Page("pages/3_Generate.py", title="Generate", icon=":material/auto_awesome:", url_path="Generate"),
        st.Page("pages/4_Review.py", title="Review", icon=":material/rate_review:", url_path="Review"),
        st.Page("pages/5_Dataset.py", title="Dataset", icon=":material/dataset:", url_path="Dataset"),
    ]


def frame():
    """The set-up done once per run around every page: the navigation menu, then the tab title,
    the wide layout, the shared store and the sidebar settings. Returns the page to run."""
    page = st.navigation(app_pages())
    page_setup(page.title)
    return page
