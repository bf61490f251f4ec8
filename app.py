"""Shoal: the frame around every page — the navigation, the set-up done once, then the page.

`streamlit run app.py` runs this file on every rerun; it sets the page up (tab title, wide
layout, the shared store, the sidebar settings) and runs the page the user is on.
"""
import streamlit as st

from ui.common import page_setup

PAGES = [
    st.Page("pages/0_Home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/1_Corpus.py", title="Corpus", icon=":material/database:", url_path="Corpus"),
    st.Page("pages/2_Map.py", title="Map", icon=":material/scatter_plot:", url_path="Map"),
    st.Page("pages/3_Generate.py", title="Generate", icon=":material/auto_awesome:", url_path="Generate"),
    st.Page("pages/4_Review.py", title="Review", icon=":material/rate_review:", url_path="Review"),
    st.Page("pages/5_Dataset.py", title="Dataset", icon=":material/dataset:", url_path="Dataset"),
]

page = st.navigation(PAGES)
page_setup(page.title)
page.run()
