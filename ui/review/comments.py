"""Comments on the example under review: listed oldest first (author, time, the body as text), a form
to add one, a delete button on one's own (on everyone's for curators and the owner).

Every add and delete is written to DuckDB (core.review.comments, role-checked and audited there)
inside the button's callback, before the section draws again; a refusal is said under "Comments"."""
from __future__ import annotations

import streamlit as st

from core import review as rv
from core.errors import ShoalError
from core.store import Store
from ui.common import can, reviewer_name
from ui.review.state import SS, flash
from ui.text import plain

_ERROR = "rv_comment_error"


def _body_key(gid: int) -> str:
    return f"rv_comment_body_{gid}"


def _add(store: Store, gid: int) -> None:
    """The form's callback: saved, then the box emptied; on a refusal the typed text stays in the box."""
    try:
        rv.add_comment(store, gid, SS.get(_body_key(gid)) or "", actor=reviewer_name())
    except ShoalError as exc:
        SS[_ERROR] = (gid, str(exc))
        return
    SS[_body_key(gid)] = ""
    flash(f"Comment added to #{gid}", "💬")


def _delete(store: Store, gid: int, comment_id: int) -> None:
    try:
        rv.delete_comment(store, comment_id, actor=reviewer_name())
    except ShoalError as exc:
        SS[_ERROR] = (gid, str(exc))
        return
    flash(f"Comment deleted from #{gid}", "🗑️")


def comments_section(store: Store, gid: int) -> None:
    """The example's comments and the form to add one."""
    comments = rv.list_comments(store, gid)
    me, moderate = str(reviewer_name()), can("moderate_comments")
    st.markdown(f"**Comments** ({len(comments)})" if comments else "**Comments**")
    error = SS.pop(_ERROR, None)
    if error and error[0] == gid:
        st.error(plain(error[1]))
    for c in comments:
        with st.container(border=True, key=f"rv_comment_{c['id']}"):
            left, right = st.columns([12, 1], vertical_alignment="top")
            left.caption(plain(f"{c['author']} · {str(c['created_at'])[:19]}"))
            left.text(c["body"])     # as typed: never Markdown (no image fetched, no link drawn)
            if c["author"] == me or moderate:
                right.button("Delete", key=f"rv_comment_del_{c['id']}", icon=":material/delete:", type="tertiary",
                             help="Delete this comment", on_click=_delete, args=(store, gid, int(c["id"])))
    # not clear_on_submit: that empties the box even when the comment is refused; `_add` empties it once saved
    with st.form(f"rv_comment_form_{gid}", border=False):
        st.text_area("Add a comment", key=_body_key(gid), max_chars=rv.MAX_COMMENT_CHARS, height=80,
                     placeholder="A note for the team about this example (kept with it, shown as plain text)")
        st.form_submit_button("Add comment", on_click=_add, args=(store, gid))
