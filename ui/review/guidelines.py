"""Reviewer guidelines (core.review.guidelines): beside the example on the Review page
(`guidelines_aside`), and their editor on the Team page for curators and the owner
(`guidelines_editor`: a task, the latest text to edit, Save as a new version, the version history).

A curator is trusted, but the rule holds: the text is shown as text (ui.text.plain, st.text), never
as Markdown or HTML. Every save is written to DuckDB (role-checked and audited in core) inside the
button's callback, before the page draws again."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core import review as rv
from core.errors import ShoalError
from core.store import Store
from ui.common import can, reviewer_name
from ui.text import plain

SS = st.session_state
_FLASH = "tm_gl_flash"


def readable(body: str) -> str:
    """Guidelines as Markdown that shows them literally, line breaks kept (a hard break per line)."""
    return "  \n".join(plain(line) for line in body.splitlines())


def _stamp(row: dict) -> str:
    return f"version {row['version']} · {row['author']} · {str(row['created_at'])[:16]}"


def guidelines_aside(store: Store, task: str) -> None:
    """The example's task's guidelines (the general ones first), folded under the title line; nothing
    when none are written."""
    current = rv.current_guidelines(store, task)
    if current is None:
        return
    try:
        title = rv.scope_title(task)
    except ShoalError:       # a task this version of Shoal no longer knows
        title = task
    with st.expander(f"Guidelines for {plain(title)}", expanded=False, icon=":material/menu_book:"):
        for label, row in (("All tasks", current["general"]), (title, current["own"])):
            if row is not None:
                st.caption(plain(f"{label} · {_stamp(row)}"))
                st.markdown(readable(row["body"]))


# --------------------------------------------------------------------------- the Team page's editor

def _key(scope: str) -> str:
    return "all" if scope == rv.ALL_TASKS else scope


def _body_key(scope: str, version: int) -> str:
    """The text box of `scope` as opened at `version`: a new version (anyone's) opens a fresh box."""
    return f"tm_gl_body_{_key(scope)}_{version}"


def _save(store: Store, scope: str, version: int) -> None:
    text = SS.get(_body_key(scope, version)) or ""
    try:
        saved = rv.set_guidelines(store, scope, text, actor=reviewer_name(), expected_version=version)
    except rv.StaleGuidelines as exc:
        SS[_body_key(scope, exc.version)] = text         # the typed text stays, in the box of the newer version
        SS[_FLASH] = (str(exc), False)
        return
    except ShoalError as exc:
        SS[_FLASH] = (str(exc), False)
        return
    what = rv.scope_title(scope)
    if not saved["changed"]:
        SS[_FLASH] = (f"No change: the {what} guidelines stay at version {saved['version']}.", True)
    elif saved["body"]:
        SS[_FLASH] = (f"Saved the {what} guidelines as version {saved['version']}.", True)
    else:
        SS[_FLASH] = (f"Cleared the {what} guidelines (version {saved['version']}).", True)


def _history(store: Store, scope: str) -> None:
    rows = rv.guideline_history(store, scope)
    if not rows:
        st.caption("No version saved yet.")
        return
    with st.expander(f"Version history ({len(rows)})", expanded=False):
        st.dataframe(pd.DataFrame([{"version": r["version"], "saved at": str(r["created_at"])[:19],
                                    "author": r["author"], "characters": len(r["body"]),
                                    "text": r["body"] or "(cleared)"} for r in rows]),
                     hide_index=True, width="stretch")


def guidelines_editor(store: Store) -> None:
    """The guidelines' editor, for those who may write them (curators and the owner); nothing for others."""
    if not can("guidelines"):
        return
    st.header("Reviewer guidelines")
    st.caption("Shown to reviewers beside each example of the task on the Review page (the general ones for "
               "every task). Each save is a new version with its author and time; save an empty box to clear "
               "them. Shown as plain text.")
    flash = SS.pop(_FLASH, None)
    if flash:
        (st.success if flash[1] else st.error)(plain(flash[0]))
    scope = st.selectbox("Guidelines for", rv.guideline_scopes(), key="tm_gl_task",
                         format_func=lambda s: "All tasks (general)" if s == rv.ALL_TASKS else rv.scope_title(s))
    latest = rv.latest_version(store, scope)
    version = int(latest["version"]) if latest else 0
    key = _body_key(scope, version)
    if key not in SS:
        SS[key] = latest["body"] if latest else ""
    st.text_area("Guidelines", key=key, height=220, max_chars=rv.MAX_GUIDELINE_CHARS,
                 placeholder="What to accept and what to reject for this task, with examples.")
    st.caption(plain(f"Latest: {_stamp(latest)}." if latest else "None written yet."))
    st.button(f"Save as version {version + 1}", key="tm_gl_save", type="primary", on_click=_save,
              args=(store, scope, version))
    _history(store, scope)
