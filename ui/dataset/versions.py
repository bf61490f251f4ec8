"""Dataset page: every export is a dataset version (core.dataset.versions). A table of the versions,
two of them to compare (the two newest at first), and their diff: how many examples were added,
removed and edited, and a table of them (for an edited one, each changed field before and after)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.dataset.versions import diff_versions, list_versions
from core.errors import ShoalError
from ui.text import page_text

_COLUMNS = {"id": "version", "created_at": "created", "format": "format", "n_rows": "examples", "name": "name",
            "path": "where"}


def _label(v: dict) -> str:
    return f"#{v['id']} · {v['created_at']} · {v['format']} · {v['n_rows']} examples"


def versions_panel(store) -> None:
    st.subheader("Versions")
    versions = list_versions(store)
    if not versions:
        st.caption("Every export is a version of the dataset; export once to start, again later to see what changed.")
        return
    table = pd.DataFrame(versions)
    table["comparable"] = table["recorded"].map({True: "yes", False: "no (made before versions were recorded)"})
    st.dataframe(table[[*_COLUMNS, "comparable"]].rename(columns=_COLUMNS), hide_index=True, width="stretch",
                 key="ds_ver_table")
    if len(versions) < 2:
        st.caption("Export again to compare two versions.")
        return
    by_id = {v["id"]: v for v in versions}
    ids = list(by_id)                       # newest first
    c = st.columns(2)
    a = c[0].selectbox("Compare version", ids, index=1, key="ds_ver_a", format_func=lambda i: _label(by_id[i]))
    b = c[1].selectbox("with version", ids, index=0, key="ds_ver_b", format_func=lambda i: _label(by_id[i]))
    if a == b:
        st.info("Choose two different versions to compare.")
        return
    try:
        d = diff_versions(store, int(a), int(b))
    except ShoalError as exc:
        st.warning(page_text(exc))
        return
    m = st.columns(4)
    for col, (what, n) in zip(m, d.counts.items()):
        col.metric(what.capitalize(), n)
    rows = d.rows()
    if not rows:
        st.info(f"Versions #{a} and #{b} hold the same examples with the same content.")
        return
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="ds_ver_diff")
