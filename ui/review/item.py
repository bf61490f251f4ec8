"""The Review view of one example: its title line and team status, the decisions, the source
snippet beside the generated fields (or the edit form), the execution run, the judge's rules and
analysis, where it came from, and its history."""
from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from core import review as rv
from core.errors import NotAllowed
from core.store import Store
from core.tasks import get_task
from ui.code import code_lang, show_field
from ui.common import can, reviewer_name
from ui.persist import PERSIST
from ui.review.comments import comments_section
from ui.review.decisions import confirm_accept, draw_actions, reject_form, reload_example
from ui.review.edit import edit_form
from ui.review.guidelines import guidelines_aside
from ui.review.queue import draw_counts, draw_queue_list
from ui.review.state import SS, STATUS_WORDS, current_filter, cursor, save_position, show_flash
from ui.text import plain, text_table, verdict_badge


def _badge_text(text: object) -> str:
    """Text inside a :colour-badge[...]: escaped, and without brackets that would close the badge."""
    return plain(str(text).replace("[", "(").replace("]", ")"))


STATUS_BADGE = {"pending": "gray", "decided": "blue", "agreed": "green", "conflict": "red", "resolved": "violet"}


def field_language(task: str, name: str, value: str, src: str | None, target: str | None) -> str | None:
    """How to show a generated field: a code language for st.code, or None for plain text (the task decides)."""
    return code_lang(get_task(task).display_language(name, value, src, target))


def show_generated(generation: dict, fields: dict, src_lang: str | None) -> None:
    """The generated fields under their names, each shown as its task says (code or text)."""
    for name, value in fields.items():
        if name != "task_name":
            show_field(name, value, field_language(generation["task"], name, str(value), src_lang,
                                                   generation.get("target_language")))


@st.fragment
def review_panel(store: Store) -> None:
    show_flash()
    f = current_filter()
    gid, view = _current_view(store)
    head = st.empty()
    if gid is None or view is None:
        st.info("Nothing to review for this filter. Change the filter in the sidebar, or generate examples "
                "on the Generate page.")
        draw_counts(store, head, f, None)
        return
    item = view["item"]
    g, review = item["generation"], item["review"]
    _stale_notice(store, gid, view)
    stop = view["stop"]
    _title_line(gid, view)
    guidelines_aside(store, g["task"])
    blind = draw_team_line(view["team"])
    if stop is not None:
        st.warning("**Stopped by the pre-filter, so the judge never saw it:** " + plain("; ".join(stop))
                   + ". Accepting it puts it in the export, flagged with these reasons.")
    draw_actions(store, gid)
    panel = SS.get("rv_panel")
    if panel == "reject":
        reject_form(store, gid)
    elif panel == "confirm_accept" and stop is not None:
        confirm_accept(store, gid)
    fields = g["fields"] or {}
    shown = review["edited_fields"] if review and review.get("edited_fields") else fields
    _source_and_generated(store, gid, view, fields, shown, editing=panel == "edit")
    _judge_section(item)
    if review and review.get("note"):
        st.caption("Note: " + plain(review["note"]) + (" · reasons: " + plain(", ".join(review["reasons"]))
                                                       if review["reasons"] else ""))
    comments_section(store, gid)
    _history(store, gid, blind)
    if st.toggle("Queue list (next 50 from here)", key="rv_list", **PERSIST):
        draw_queue_list(store, f, gid)
    draw_counts(store, head, f, gid)


def _view(store: Store, gid: int) -> dict | None:
    try:
        return rv.review_view(store, gid, reviewer_name(), see_all=can("adjudicate"))
    except NotAllowed as exc:
        st.warning(plain(exc))
        return None


def _current_view(store: Store) -> tuple[int | None, dict | None]:
    """The example the reviewer is at, else the first of the queue (which becomes the position)."""
    gid = SS.get("rv_gid")
    view = _view(store, gid) if gid is not None else None
    if view is None:
        gid = cursor().next_after(store, None)
        if gid is not None:
            save_position(store, gid)
            view = _view(store, gid)
    return gid, view


def _stale_notice(store: Store, gid: int, view: dict) -> None:
    """The last action's error, or a warning (with Reload) when the example changed since it was opened.
    Opening an example remembers its version and pre-filter stop (what Accept goes by)."""
    version, review = view["version"], view["item"]["review"]
    seen = SS.get("rv_loaded") or {}
    if seen.get("gid") != gid:
        SS["rv_loaded"] = seen = {"gid": gid, "version": version, "at": time.monotonic(), "stop": view["stop"]}
    stale = seen["version"] != version
    if SS.get("rv_error"):
        st.error(SS["rv_error"])
    elif stale:
        st.warning(f"This example changed since you opened it (now version {version}"
                   f"{' by ' + review['reviewer'] if review else ''}). Saving is refused until you reload it.")
    if stale:
        st.button("Reload example", on_click=reload_example, args=(store, gid), key="rv_reload")


def _title_line(gid: int, view: dict) -> None:
    item, stop = view["item"], view["stop"]
    g, snip, judg, review = item["generation"], item["snippet"], item["judgment"], item["review"]
    src_lang, tgt = snip.get("language"), g.get("target_language")
    langs = plain(f"{src_lang} → {tgt}" if tgt else (src_lang or "?"))
    cluster = item["cluster"]
    ctext = f" · cluster {cluster['cluster']}" + (f" ({plain(cluster['label'])})" if cluster and cluster.get("label")
                                                  else "") if cluster else ""
    human = (f":blue-badge[{review['verdict']} by {_badge_text(review['reviewer'])} · v{review['version']}]" if review
             else ":gray-badge[no final verdict yet]" if view["needed"] > 1 else ":gray-badge[not reviewed]")
    badge = ":orange-badge[stopped by the pre-filter]" if stop is not None and not judg \
        else verdict_badge(judg["overall"] if judg else None)
    st.markdown(f"### Example #{gid}\n{plain(g['task'])} · {langs}{ctext} · {badge}"
                f" {human}" + (" :orange-badge[edited]" if review and review.get("edited_fields") else ""))


def draw_team_line(team: dict | None) -> bool:
    """For an overlap example (`team`: rv.team_view): its status and the responses this reviewer
    may see (blind review). Returns True when other verdicts are hidden from this reviewer."""
    if team is None:
        return False
    st_, shown, hidden = team["status"], team["shown"], team["hidden"]
    line = (f":{STATUS_BADGE[st_['status']]}-badge[{STATUS_WORDS[st_['status']]}] · overlap example: "
            f"{st_['responses']} of {st_['needed']} verdicts in")
    if hidden:
        line += f" · :gray-badge[{hidden} other verdict(s) hidden until you give yours]"
    parts = [f"**{plain(r['reviewer'])}** {r['verdict']}" + (f" ({plain(r['note'])})" if r.get("note") else "")
             for r in shown]
    st.markdown(line + (" · " + " · ".join(parts) if parts else ""))
    return bool(hidden)


def _source_and_generated(store: Store, gid: int, view: dict, fields: dict, shown: dict, editing: bool) -> None:
    """Source and generated side by side (an edit happens in the right column: the source stays in view)."""
    g, snip = view["item"]["generation"], view["item"]["snippet"]
    src_lang = snip.get("language")
    left, right = st.columns(2, gap="medium")
    with left:
        st.markdown(f"**Source snippet** · {plain(src_lang)}")
        # long lines wrap: a half-width column would otherwise cut them off at its edge
        st.code(snip.get("code") or "(snippet missing)", language=code_lang(src_lang), line_numbers=True,
                wrap_lines=True)
        where = " · ".join(str(x) for x in (snip.get("repo"), snip.get("path"), snip.get("func_name")) if x)
        if where:
            st.caption(plain(where))
    with right:
        if editing:
            edit_form(store, gid, fields, shown)
        else:
            st.markdown("**Generated**" + (" (your edited copy)" if shown is not fields else ""))
            show_generated(g, shown, src_lang)
        _execution(view["execution"])


def _execution(run: dict | None) -> None:
    """The sandbox run of solution + tests (core.review.items.execution_of), when there was one."""
    if run:
        st.markdown(f"**Execution** :{'green' if run['passed'] else 'red'}-badge[{_badge_text(run['outcome'])}] "
                    f"{plain(run.get('language', ''))} · {plain(run.get('status', ''))}"
                    + (f" · repair rounds: {run['repair_rounds']}" if run.get("repair_rounds") else ""))
        if not run["passed"]:
            st.code((run.get("stderr") or run.get("stdout") or "")[-1500:] or "(no output)", language=None,
                    wrap_lines=True)


FAILING_ROW = "background-color: rgba(255, 43, 43, 0.12)"
ANSWER_SHOWN = {"yes": "✓ yes", "no": "✗ no"}


def rules_table(rules: list[dict]):
    """The judge's rules as a table (and how many fail): failing rules (answered no, or not answered)
    marked ✗ and shaded. Every text cell is escaped (st.table's cells are Markdown)."""
    failing = [r.get("answer") != "yes" or bool(r.get("missing")) for r in rules]
    frame = text_table(pd.DataFrame([{
        "rule": r.get("rule"), "answer": "✗ not answered" if r.get("missing") or r.get("answer") is None
        else ANSWER_SHOWN.get(r.get("answer"), str(r.get("answer"))), "reason": r.get("reason")}
        for r in rules])).set_index("rule")
    if not frame.index.is_unique:     # a reply that names one rule twice: marked, not shaded
        return frame, sum(failing)
    shade = pd.DataFrame([[FAILING_ROW if bad else ""] * frame.shape[1] for bad in failing],
                         index=frame.index, columns=frame.columns)
    return frame.style.apply(lambda _: shade, axis=None), sum(failing)


def _judge_section(item: dict) -> None:
    """The judge's verdict, rules and analysis; then which prompt and models made the example, and the raw replies."""
    g, judg = item["generation"], item["judgment"]
    st.markdown("**Judge** " + verdict_badge(judg["overall"] if judg else None))
    if judg:
        if judg["rules"]:
            # st.table: static HTML (much lighter in the browser than the st.dataframe grid), long reasons wrap
            table, n_failing = rules_table(judg["rules"])
            if n_failing:
                st.caption(f"{n_failing} of {len(judg['rules'])} rules fail (shaded, ✗).")
            st.table(table)
        if judg.get("analysis"):
            with st.expander("Judge analysis"):
                st.text(judg["analysis"])
    prompt, jprompt = item["prompt"], item["judge_prompt"]
    st.caption(plain(" · ".join(x for x in (
        f"prompt {prompt['task']} v{prompt['version']} (#{prompt['id']})" if prompt else "prompt version unknown",
        f"generator {g.get('generator_model') or '?'}",
        f"judge {judg.get('judge_model') or '?'}" if judg else None,
        f"judge prompt v{jprompt['version']}" if jprompt else None,
        f"created {str(g.get('created_at'))[:19]}") if x)))
    with st.expander("Raw replies"):
        st.markdown("Generator reply")
        st.code(g.get("raw_text") or "(none)", language="json", wrap_lines=True)
        if judg:
            st.markdown("Judge reply")
            st.code(judg.get("raw_text") or "(none)", language="json", wrap_lines=True)


def _history(store: Store, gid: int, blind: bool) -> None:
    if st.toggle("History of this example", key="rv_history", **PERSIST):
        trail = rv.audit_trail(store, gid, include_responses=not blind)
        if trail:
            st.table(text_table(pd.DataFrame([{"at": str(t["at"])[:19], "who": t["actor"], "action": t["action"],
                                               "before": (t["before"] or {}).get("verdict"),
                                               "after": (t["after"] or {}).get("verdict")} for t in trail])))
            if blind:
                st.caption("Other reviewers' responses are left out until you give yours.")
        else:
            st.caption("No decisions yet.")
