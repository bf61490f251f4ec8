"""Helpers for Streamlit AppTest sessions: run without an exception, the text rendered as Markdown, and
the pages' own database connection."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest


def ran(at_or_widget) -> AppTest:
    """Run the app (after a widget's change, when given the widget); no exception on the page."""
    at = at_or_widget.run()
    assert not at.exception, at.exception
    return at


def shared_store(db: Path):
    """The pages' own (cached, process-wide) connection, to see what they wrote."""
    from ui.common import _store
    return _store(str(db))


def markdown_texts(at: AppTest) -> list[str]:
    """Everything on the page that Streamlit renders as Markdown (code blocks and st.text are literal)."""
    texts = [e.value for kind in ("markdown", "caption", "error", "warning", "info", "success", "toast")
             for e in getattr(at, kind)]
    texts += [e.label for e in at.expander] + [m.label for m in at.metric]
    for t in at.table:
        frame = t.value
        texts += [str(v) for v in frame.to_numpy().ravel()] + [str(v) for v in frame.index]
    return texts
