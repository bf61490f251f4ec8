"""Shoal: the frame around every page — the navigation (ui/navigation.py), the set-up done once, then the page.

`streamlit run app.py` runs this file on every rerun: it draws the menu (Home, Corpus, Map,
Generate, Review, Dataset), sets the page up (tab title, wide layout, the shared store, the
sidebar settings) and runs the page the user is on.
"""
from ui.navigation import frame

frame().run()
