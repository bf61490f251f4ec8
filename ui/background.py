"""The progress panel of a background task (core.background), polled from DuckDB while it runs."""
from __future__ import annotations

from typing import Callable

import streamlit as st

from core.background import TaskRecord, cancel_task, latest_task
from core.errors import ShoalError
from core.store import Store
from ui.common import reviewer_name
from ui.text import plain

INTERRUPTED = "Interrupted: the process running it stopped. Start it again to continue."


def _default_result(rec: TaskRecord, fmt: Callable[[str], str]) -> None:
    st.success(fmt((rec.result or {}).get("summary", "Done.")))


def task_panel(store: Store, kind: str, key: str, progress_text: Callable[[TaskRecord], str], *,
               cancel_label: str = "Cancel", fmt: Callable[[str], str] = plain,
               on_finish: Callable[[TaskRecord], None] | None = None,
               show_result: Callable[[TaskRecord, Callable[[str], str]], None] = _default_result,
               rerun_on: Callable[[TaskRecord], object] | None = None) -> None:
    """Progress of the newest `kind` task: a bar and a cancel button while it runs (refreshed every
    second), then, once, a rerun of the whole page (after `on_finish`), then its outcome.
    `fmt` prepares text for Markdown widgets (default ui.text.plain: task messages hold paths and names).
    `rerun_on(record)` (say, its stage) reruns the whole page whenever its value changes while the task
    runs, for work whose intermediate results the page shows (a first map before the full one)."""
    rec = latest_task(store, kind)
    if rec is None:
        return

    def panel() -> None:
        rec = latest_task(store, kind)
        if rec is None:
            return
        if rec.running:
            if rerun_on is not None:
                mark, seen = (rec.id, rerun_on(rec)), st.session_state.get(f"{key}.rerun_mark")
                st.session_state[f"{key}.rerun_mark"] = mark
                if seen is not None and seen[0] == rec.id and seen != mark:
                    st.rerun()
            st.progress(rec.fraction, text=fmt(progress_text(rec)))
            if st.button(cancel_label, key=f"{key}.cancel"):
                try:
                    cancel_task(store, rec.id, actor=reviewer_name())
                except ShoalError as exc:      # the role does not allow it (said, and audited, by core)
                    st.warning(str(exc), icon=":material/lock:")
            return
        if st.session_state.get(f"{key}.shown_task") != rec.id:
            st.session_state[f"{key}.shown_task"] = rec.id
            if on_finish is not None:
                on_finish(rec)
            st.rerun()  # refresh the whole page with what the task wrote
        if rec.stale or rec.status == "interrupted":
            st.warning(fmt(rec.error or INTERRUPTED))
        elif rec.error:
            st.error(fmt(rec.error))
        elif rec.status == "done":
            show_result(rec, fmt)

    st.fragment(run_every=1.0 if rec.running else None)(panel)()
