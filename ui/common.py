"""Things every page needs: the shared store, the sidebar settings, the set-up the frame does once."""
from __future__ import annotations

import os

import streamlit as st

from core.errors import ShoalError
from core.store import Store, default_db_path, open_store


@st.cache_resource(show_spinner=False)
def _store(path: str) -> Store:
    return open_store(path)


def get_store() -> Store:
    """The process-wide read-write connection (one per file), or a clear stop if busy."""
    path = os.environ.get("SHOAL_DB") or str(default_db_path())
    try:
        return _store(path)
    except ShoalError as exc:
        st.error(str(exc))
        st.stop()


def page_store() -> Store:
    """What every page calls first: the shared store, with the page inside the frame (app.py).

    Until some session has called st.navigation, Streamlit treats the `pages/` folder next to
    app.py as a legacy multipage app and runs a page file on its own (a fresh server whose
    first request is /Corpus). Leave that mode for good (what st.navigation itself does) and
    rerun at once, before the page draws anything, so app.py frames the same page.
    """
    from streamlit.runtime.pages_manager import PagesManager
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
    return get_store()


def reviewer_name() -> str:
    return st.session_state.get("reviewer") or os.environ.get("USER") or "reviewer"


def sidebar(store: Store) -> None:
    with st.sidebar:
        st.caption(f"Database: `{store.path}`")
        if "reviewer" not in st.session_state:
            st.session_state["reviewer"] = store.get_ui_state("reviewer", os.environ.get("USER") or "reviewer")
        name = st.text_input("Reviewer", key="reviewer", help="Recorded with every review decision.")
        if name and name != store.get_ui_state("reviewer"):
            store.set_ui_state("reviewer", name)


def page_setup(title: str, icon: str = "🐟") -> Store:
    """The frame's set-up, once per run before the page: tab title, wide layout, store, sidebar."""
    st.set_page_config(page_title=f"{title} · Shoal", page_icon=icon, layout="wide")
    store = get_store()
    sidebar(store)
    return store


def next_step_box(step: dict | None) -> None:
    """"Next step" with a link to its page (core.pipeline.next_step); the link is left out when the
    page runs outside the frame (a test running one page file), where no page can be linked to."""
    from streamlit.errors import StreamlitPageNotFoundError
    if step is None:
        st.success("Every stage has data. Export the accepted set from the Dataset page.")
        return
    st.info(f"**Next step:** {step['next']}")
    try:
        st.page_link(step["page"], label=f"Go to {step['page_title']}", icon="➡️")
    except StreamlitPageNotFoundError:
        pass
