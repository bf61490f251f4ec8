"""The Generate page's Prompts tab: edit a task's definition, requirements, judge rules and templates,
save them as a new version, and preview the exact generator prompt for one snippet."""
from __future__ import annotations

import streamlit as st

from core.errors import ShoalError
from core.generate.items import (
    PoolConfig,
    Pools,
    PoolSnapshot,
    build_generator_messages,
    current_prompt_version,
    few_shot,
    get_prompt_version,
    list_prompt_versions,
    save_prompt_version,
)
from core.ingest.snippets import get_snippet, preview_snippet_ids
from core.store import Store
from core.tasks import TASKS, get_task
from ui.common import reviewer_name
from ui.text import plain


def prompt_editor(store: Store, ptask: str, pv) -> dict:
    c = pv.content
    kp = f"gen.edit.{pv.id}"
    definition = st.text_area("Task definition", c["definition"], key=f"{kp}.definition", height=120)
    requirements = st.text_area("Requirements (one per line)", "\n".join(c["requirements"]), key=f"{kp}.req",
                                height=160)
    rules = st.text_area("Judge rules (one per line)", "\n".join(c["rules"]), key=f"{kp}.rules", height=160)
    with st.expander("Templates (Jinja2; the snippet is passed as data and fenced, never parsed as template)"):
        gen_tpl = st.text_area("Generator template", c["generator_template"], key=f"{kp}.gen_tpl", height=300)
        judge_tpl = st.text_area("Judge template", c["judge_template"], key=f"{kp}.judge_tpl", height=300)
    edited = dict(c, definition=definition.strip(),
                  requirements=[x.strip() for x in requirements.splitlines() if x.strip()],
                  rules=[x.strip() for x in rules.splitlines() if x.strip()],
                  generator_template=gen_tpl, judge_template=judge_tpl)
    note = st.text_input("Note for this version", key=f"{kp}.note")
    if st.button("Save as new version", key=f"{kp}.save", disabled=edited == c,
                 help="Enabled once the text differs from the version shown."):
        try:
            saved = save_prompt_version(store, ptask, edited, note=note or None, actor=reviewer_name())
        except ShoalError as exc:
            st.error(plain(exc))
        else:
            # show the saved version at once: the picker moves to it, and Save waits for the next change
            st.session_state["gen.prompt_version_next"] = (ptask, saved.id)
            st.session_state["gen.prompt_flash"] = f"Saved {ptask} v{saved.version}; new jobs use it."
            st.rerun()
    return edited


def prompt_preview(store: Store, ptask: str, edited: dict, snippet_ids: list[str], targets: list[str],
                   models: tuple[str, str] = ("", "")) -> None:
    st.subheader("Preview: the exact generator prompt for one snippet")
    preview_ids = snippet_ids[:50] if snippet_ids else preview_snippet_ids(
        store, seeds_first=get_task(ptask).prefers_seeds)
    sample = None
    if preview_ids:
        pid = st.selectbox("Snippet", preview_ids, key="gen.preview_snippet")
        sample = get_snippet(store, pid)
    if sample is None:
        st.info("Ingest snippets to see a preview.")
        return
    spec = get_task(ptask)
    cfg = PoolConfig(good=int(st.session_state.get("gen.pool_good", 2)),
                     bad=int(st.session_state.get("gen.pool_bad", 1)))
    try:
        pools = Pools.load(store, ptask, PoolSnapshot.take(store), generator_model=models[0] or None,
                           judge_model=models[1] or None)
        good, bad = few_shot(edited, pools, cfg, sample["id"])
        target = (targets[0] if targets else "java") if spec.needs_target_language else None
        for m in build_generator_messages(spec, edited, sample, target, good, bad):
            st.caption(m["role"])
            st.code(m["content"], language=None, wrap_lines=True)
    except Exception as exc:   # a template being edited may not render yet
        st.warning(f"The template does not render: {plain(exc)}")


def prompts_tab(store: Store, snippet_ids: list[str], targets: list[str], models: tuple[str, str] = ("", "")) -> None:
    """`models`: the (generator, judge) models a job would run with: the preview's few-shot examples
    come from the same pools a job would draw from (core.generate.items.Pools.load)."""
    ptask = st.selectbox("Task", list(TASKS), key="gen.prompt_task", format_func=lambda t: get_task(t).title)
    current = current_prompt_version(store, ptask)
    versions = list_prompt_versions(store, ptask)
    if st.session_state.get("gen.prompt_version_next", ("",))[0] == ptask:   # just saved: show that version
        st.session_state[f"gen.prompt_version.{ptask}"] = st.session_state.pop("gen.prompt_version_next")[1]
    vid = st.selectbox("Version", [v["id"] for v in versions], key=f"gen.prompt_version.{ptask}",
                       format_func=lambda i: next(f"v{v['version']}" + (f" · {v['note']}" if v["note"] else "")
                                                  + (" (current)" if v["id"] == current.id else "")
                                                  for v in versions if v["id"] == i))
    if "gen.prompt_flash" in st.session_state:
        st.success(st.session_state.pop("gen.prompt_flash"))
    edited_content = prompt_editor(store, ptask, get_prompt_version(store, vid))
    prompt_preview(store, ptask, edited_content, snippet_ids, targets, models)
