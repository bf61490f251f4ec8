"""The Review page's edit form: every generated field as a text area, drawn where the fields
were (beside the source snippet); saving accepts the edited copy."""
from __future__ import annotations

import json

import streamlit as st

from core.store import Store
from ui.focus import focus
from ui.review.decisions import decide
from ui.review.state import SS


def do_edit(store: Store, gid: int, names: list[str]) -> None:
    decide(store, "accepted", gid, edited={n: SS[f"rv_field_{gid}_{n}"] for n in names})


def edit_form(store: Store, gid: int, fields: dict, shown: dict) -> None:
    """The edit form, drawn where the generated fields were (beside the source snippet)."""
    names = [n for n in fields if n != "task_name"]
    with st.form(f"rv_edit_form_{gid}", border=True):
        st.caption("Edit any field, then Ctrl+Enter (or the button) saves and accepts.")
        for n in names:
            v = shown.get(n, "")
            st.text_area(n, value=v if isinstance(v, str) else json.dumps(v), key=f"rv_field_{gid}_{n}",
                         height=max(68, min(400, 22 * (str(v).count("\n") + 2))))
        st.form_submit_button("Save edit & accept", type="primary", on_click=do_edit, args=(store, gid, names))
    if names:
        focus(names[0], f"edit-{gid}")
