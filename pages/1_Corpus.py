"""Corpus: add sources, watch the ingest, see what came in and what was rejected and why."""
import os

import plotly.express as px
import streamlit as st

from core.background import TaskRecord, is_running
from core.errors import ShoalError
from core.ingest import DEFAULT_BLACKLIST, INGEST_FORMATS, browse
from core.ingest.start import INGEST, start_ingest
from core.ingest.upload import save_upload
from core.pipeline import next_step, pipeline_status
from ui.background import task_panel
from ui.code import code_lang
from ui.common import lock_note, next_step_box, page_store, reviewer_name
from ui.persist import PERSIST, keep, within
from ui.text import plain

store = page_store()

st.title("Corpus")
st.caption("Raw code in: CodeSearchNet files, whole-file corpora (The Stack style), local folders and git "
           "checkouts, or the Python standard library as a demo. Every rejected record is counted with its reason.")

stats = browse.overview(store)
# the source, filters and search keep their values while the user is on another page
keep({"corpus.path": "", "corpus.format": INGEST_FORMATS[0], "corpus.min_chars": 50, "corpus.max_chars": 800,
      "corpus.seed": 0, "corpus.keep_tests": False, "corpus.blacklist": "\n".join(DEFAULT_BLACKLIST), "corpus.reasons": [],
      "corpus.query": "", "corpus.langs": [], "corpus.kinds": []})
busy = is_running(store, INGEST.name)
locked = lock_note("ingest")    # a reviewer sees why; core refuses (and audits) anyway


def _start(sources: list[str], fmt: str = "auto") -> None:
    opts = st.session_state
    words = [w.strip() for w in opts.get("corpus.blacklist", "").splitlines() if w.strip()]
    try:
        start_ingest(store, sources, fmt=fmt, min_chars=int(opts.get("corpus.min_chars", 50)),
                     max_chars=int(opts.get("corpus.max_chars", 800)), blacklist=words,
                     seed=int(opts.get("corpus.seed", 0)), keep_tests=bool(opts.get("corpus.keep_tests", False)),
                     actor=reviewer_name())
    except ShoalError as exc:
        st.error(plain(exc))
        return
    st.rerun()


# --------------------------------------------------------------------------- add a source
with st.expander("Add a source", expanded=stats["snippets"] == 0 and not busy):
    demo_tab, path_tab, upload_tab, options_tab = st.tabs(
        ["Demo corpus", "Path on the server", "Upload a file", "Filters"])
    if locked:
        st.info(locked, icon=":material/lock:")
    with demo_tab:
        st.write("The functions of this Python's standard library: real code, no download needed.")
        if st.button("Load demo corpus", key="corpus.demo", type="primary", disabled=busy or bool(locked)):
            _start([os.environ.get("SHOAL_DEMO_SOURCE", "stdlib")], "stdlib")
    with path_tab:
        st.text_input("File or folder on the server", key="corpus.path", **PERSIST,
                      placeholder="/data/codesearchnet/python  or  ~/src/my-repo  or  stack.parquet")
        st.selectbox("Format", INGEST_FORMATS, key="corpus.format", **PERSIST,
                     help="auto: CodeSearchNet or whole-file records are told apart by their fields; "
                          "a folder with source code is read with tree-sitter.")
        if st.button("Ingest", key="corpus.ingest_path", disabled=busy or bool(locked)):
            path = st.session_state.get("corpus.path", "").strip()
            if not path:
                st.warning("Type a path first.")
            else:
                _start([path], st.session_state.get("corpus.format", "auto"))
    with upload_tab:
        up = st.file_uploader("A .jsonl / .jsonl.gz / .parquet file, a source file, or a .zip of a repository",
                              key="corpus.upload")
        if st.button("Ingest upload", key="corpus.ingest_upload", disabled=busy or up is None or bool(locked)):
            try:
                saved = save_upload(store, up.name, up.getvalue(), actor=reviewer_name())
            except ShoalError as exc:
                st.error(plain(exc))
            else:
                _start([str(saved)])
    with options_tab:
        c1, c2, c3 = st.columns(3)
        c1.number_input("Min chars", 0, 100_000, key="corpus.min_chars", **PERSIST)
        c2.number_input("Max chars", 1, 1_000_000, key="corpus.max_chars", **PERSIST)
        c3.number_input("Seed (OSS-Instruct seeds)", 0, 2**31 - 1, key="corpus.seed", **PERSIST)
        st.checkbox("Keep test code (test folders and test files)", key="corpus.keep_tests", **PERSIST,
                    help="Folders and zip uploads: tests/, test/, testing/, __tests__/, spec/ folders and files "
                         "such as test_*.py, *_test.go, *.spec.ts, *Test.java are left out by default and counted "
                         "as test_code.")
        st.text_area("Word blacklist (one per line; empty = off)", key="corpus.blacklist", **PERSIST, height=150)


# --------------------------------------------------------------------------- progress
def _ingest_progress(rec: TaskRecord) -> str:
    return f"Ingesting {rec.label} — {int(rec.fraction * 100)}% · {rec.message}"


def _ingest_outcome(rec: TaskRecord, fmt) -> None:
    (st.warning if rec.result.get("nothing_read") else st.success)(fmt(rec.result["summary"]))


task_panel(store, INGEST.name, "corpus", _ingest_progress, cancel_label="Cancel ingest", fmt=plain,
           show_result=_ingest_outcome)

# --------------------------------------------------------------------------- counts
if stats["snippets"] == 0 and stats["filtered"] + stats["errors"] == 0:
    st.info("No code yet: load the demo corpus or add a source above.")
    st.stop()

TILES = [("Snippets", "snippets", None), ("Functions", "functions", None), ("Seeds", "seeds", None),
         ("Languages", "languages", None), ("Sources", "sources", None),
         ("Duplicates", "duplicates", "Records dropped as exact copies of another record of the same source "
                                      "(counted once per source, however often it is ingested)."),
         ("Already present", "already_present", "Records the newest ingest read that the corpus already had "
                                                "(re-ingesting a source adds nothing twice)."),
         ("Rejected", "filtered", "filtered + errors")]
for col, (label, key, help_) in zip(st.columns(len(TILES)), TILES):
    value = stats[key] + (stats["errors"] if key == "filtered" else 0)
    col.metric(label, f"{value:,}", help=help_)

left, right = st.columns(2)
with left:
    st.subheader("Per language")
    lang = browse.per_language(store)
    if not lang.empty:
        fig = px.bar(lang, x="language", y="n", color="kind", labels={"n": "snippets"})
        fig.update_layout(height=320, margin=dict(l=10, r=10, t=10, b=10))
        st.plotly_chart(fig, width="stretch", key="corpus.lang_chart")
with right:
    st.subheader("Length of the code (characters)")
    hist = browse.length_histogram(store)
    if not hist.empty:
        fig = px.bar(hist, x="n_chars", y="n", color="language", labels={"n": "snippets", "n_chars": "chars"})
        fig.update_layout(height=320, bargap=0.05, margin=dict(l=10, r=10, t=10, b=10))
        st.plotly_chart(fig, width="stretch", key="corpus.length_chart")

st.subheader("Per source")
st.dataframe(browse.per_source(store), width="stretch", hide_index=True)

# --------------------------------------------------------------------------- rejected
st.subheader("Rejected records")
counts = browse.rejection_counts(store)
if counts.empty:
    st.write("Nothing rejected.")
else:
    c1, c2 = st.columns([1, 2])
    with c1:
        st.dataframe(counts, width="stretch", hide_index=True)
    with c2:
        within("corpus.reasons", counts["reason"].tolist())
        chosen = st.multiselect("Reasons", counts["reason"].tolist(), key="corpus.reasons", **PERSIST)
        st.dataframe(browse.rejections(store, chosen), width="stretch", hide_index=True, height=260)

# --------------------------------------------------------------------------- search + viewer
st.subheader("Browse snippets")
s1, s2, s3 = st.columns([3, 2, 1])
query = s1.text_input("Search name, path, docstring or code", key="corpus.query", **PERSIST)
corpus_langs = browse.languages(store)
within("corpus.langs", corpus_langs)
langs = s2.multiselect("Languages", corpus_langs, key="corpus.langs", **PERSIST)
kinds = s3.multiselect("Kind", ["function", "seed"], key="corpus.kinds", **PERSIST)
found = browse.search(store, query, langs, kinds)
st.caption(f"{len(found)} shown" + (" (first 200)" if len(found) == 200 else ""))
event = st.dataframe(found.drop(columns=["id"]), width="stretch", hide_index=True,
                     height=min(300, 38 + 35 * max(1, len(found))),
                     on_select="rerun", selection_mode="single-row", key="corpus.results")
rows = event.selection.rows if event is not None and hasattr(event, "selection") else []
if not found.empty:
    pick = found.iloc[rows[0] if rows else 0]
    snip = browse.snippet(store, pick["id"])
    title = snip["func_name"] or f"seed from {snip['path']}"
    st.markdown(f"**Snippet viewer** — {len(snip['code']):,} chars")
    st.text(f"{title}  ·  {snip['language']}  ·  {snip['repo'] or ''} {snip['path'] or ''}"
            f"{'  L%s-%s' % (snip['start_line'], snip['end_line']) if snip['start_line'] else ''}")
    st.code(snip["code"], language=code_lang(snip["language"]), line_numbers=True, wrap_lines=True)
    if snip["docstring"]:
        with st.expander("Docstring / leading comment"):
            st.text(snip["docstring"])
    meta = [f"source: {snip['source']} ({snip['source_kind']})", f"id: {snip['id']}"]
    if snip["url"]:
        meta.append(f"url: {snip['url']}")
    if snip["seed_rng"] is not None:
        meta.append(f"seed_rng: {snip['seed_rng']} (reproduces this OSS-Instruct seed)")
    st.text("\n".join(meta))

with st.expander("Ingest history"):
    st.dataframe(browse.history(store), width="stretch", hide_index=True)

nxt = next_step(pipeline_status(store))
if nxt is None or nxt["title"] != "Corpus":
    next_step_box(nxt)
