"""Dataset page: push a folder export (data file(s) + README.md card) to a Hugging Face Hub dataset repo
(core.dataset.export.push_export → core.dataset.hub). The token typed here lives in this browser session only: held in
the process's redaction list (core.config.hold_session_key) so no error text carries it, never saved."""
from __future__ import annotations

import secrets

import streamlit as st

from core.config import hold_session_key, session_key_name
from core.dataset.export import push_export, pushable_exports
from core.dataset.formats import EXPORT_FORMATS
from core.dataset.hub import check_repo_id, hub_endpoint, token_source
from core.errors import ShoalError
from ui.persist import PERSIST, keep
from ui.text import page_text, plain


def _label(e: dict) -> str:
    pushed = f" · pushed to {e['pushed_to']}" if e.get("pushed_to") else ""
    fmt = EXPORT_FORMATS.get(e["format"], e["format"])
    return f"#{e['id']} · {str(e['created_at'])[:16]} · {fmt} · {e['n_rows']} examples · {e['path']}{pushed}"


def _typed_token() -> str:
    """The token typed in this session, registered for redaction under this session's own name."""
    typed = str(st.session_state.get("ds_hub_token", "") or "").strip()
    name = session_key_name("hub", st.session_state.setdefault("ds_hub_key_token", secrets.token_hex(8)))
    hold_session_key(name, typed)        # an empty field forgets it
    return typed


def hub_push_panel(store, actor) -> None:
    keep({"ds_hub_repo": "", "ds_hub_private": False})
    with st.expander("Push to the Hugging Face Hub", expanded=bool(st.session_state.get("ds_hub_result"))):
        exports = pushable_exports(store)
        if not exports:
            st.caption("Export to a folder first (above): the Hub gets that folder as it is, the data file(s) "
                       "and the README.md dataset card.")
            return
        by_id = {e["id"]: e for e in exports}
        export_id = st.selectbox("Export to push", list(by_id), key="ds_hub_export",
                                 format_func=lambda i: _label(by_id[i]))     # options are not Markdown
        c = st.columns([3, 1])
        repo = c[0].text_input("Dataset repository (owner/name)", key="ds_hub_repo", placeholder="my-org/my-dataset",
                               **PERSIST).strip()
        private = c[1].checkbox("Private repository", key="ds_hub_private", **PERSIST)
        st.text_input("Access token (write)", key="ds_hub_token", type="password",
                      help="Kept in this browser session only: never saved, never written to the database or logs. "
                           "Leave empty to use HF_TOKEN from the environment.")
        typed = _typed_token()
        st.caption(f"Token used: {plain(token_source(typed))}. Hub: {plain(hub_endpoint())} (HF_ENDPOINT).")
        problem = None
        if repo:
            try:
                check_repo_id(repo)
            except ShoalError as exc:
                problem = str(exc)
                st.warning(plain(problem))
        if st.button("Push to the Hub", key="ds_hub_push", disabled=not repo or problem is not None):
            try:
                url = push_export(store, int(export_id), repo, token=typed or None, private=private, actor=actor)
                st.session_state["ds_hub_result"] = ("ok", url, export_id, repo)
            except ShoalError as exc:
                st.session_state["ds_hub_result"] = ("error", str(exc), export_id, repo)
        result = st.session_state.get("ds_hub_result")
        if result and result[2:] != (export_id, repo):     # about another export or repo: not shown
            result = None
        if result and result[0] == "ok":
            st.success(f"Pushed to {plain(result[1])}")
            st.link_button("Open the dataset on the Hub", result[1])
        elif result:
            st.error(plain(page_text(result[1])))
