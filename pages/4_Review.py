"""Review: one example at a time, judge reasoning beside the code; accept / reject / edit fast; bulk; agreement.

Every decision is written to DuckDB (core.review) inside the button callback, before the page
moves on; the page only keeps what it is showing (the example id and the review version it was
loaded at, so a save over someone else's newer verdict is refused).

In a team, each reviewer's position and filters are their own (ui_state keyed by reviewer), their
queue holds the examples assigned to them, other reviewers' verdicts on an overlap example stay
hidden until they have given theirs (blind), and adjudicators resolve conflicts in "Conflicts".
"""
from __future__ import annotations

import json
import time

import pandas as pd
import streamlit as st

from core import review as rv
from core.checks.execution import execution_of
from core.errors import ShoalError
from core.tasks import get_task
from ui.code import code_lang, show_field
from ui.common import can, get_user_state, page_store, reviewer_name, set_user_state
from ui.focus import focus
from ui.text import plain, verdict_badge

store = page_store()

SS = st.session_state
STATE_KEY = "review.state"           # ui_state (per reviewer): filter, sort, seed, current example
SHORTCUTS = {"accept": "A", "reject": "X", "edit": "E", "skip": "S", "undo": "U", "next": "J", "prev": "K"}


# --------------------------------------------------------------------------- state

@st.cache_data(ttl=30, show_spinner=False)
def options(_store, db: str) -> dict:
    return rv.filter_options(_store)


def saved_state() -> dict:
    return get_user_state(store, STATE_KEY, {}) or {}


def has_queue() -> bool:
    """Whether this reviewer has examples assigned (then their queue is those, not everything)."""
    return rv.has_assignments(store, reviewer_name())


def init_state() -> None:
    """First run of a browser session: filter and position from the URL / DuckDB."""
    if SS.get("rv_init"):
        return
    saved = saved_state()
    f = rv.QueueFilter.from_dict(saved.get("filter"))
    SS.update({
        "rv_tasks": list(f.tasks), "rv_langs": list(f.languages), "rv_clusters": list(f.clusters),
        # selectboxes use 0 / "" for "no restriction" (a None value would show as an empty widget)
        "rv_selection": f.selection_id or 0, "rv_judge": f.judge, "rv_rule": f.rule or "",
        "rv_rule_answer": f.rule_answer, "rv_status": f.status, "rv_reviewer_filter": f.reviewer or "",
        "rv_search": f.search,
        "rv_sort": saved.get("sort", "judge_failed_first"), "rv_seed": int(saved.get("seed", 0)),
        "rv_mode": "Review", "rv_panel": None, "rv_mine": bool(saved.get("mine", True)),
    })
    gid = st.query_params.get("g") or saved.get("generation_id")
    try:
        SS["rv_gid"] = int(gid) if gid is not None else None
    except ValueError:
        SS["rv_gid"] = None
    SS["rv_init"] = True


def current_filter() -> rv.QueueFilter:
    return rv.QueueFilter(
        tasks=tuple(SS.rv_tasks), languages=tuple(SS.rv_langs), clusters=tuple(SS.rv_clusters),
        selection_id=SS.rv_selection or None, judge=SS.rv_judge, rule=SS.rv_rule or None,
        rule_answer=SS.rv_rule_answer, status=SS.rv_status, reviewer=SS.rv_reviewer_filter or None,
        search=SS.rv_search or "", assigned_to=reviewer_name() if mine_only() else None)


def mine_only() -> bool:
    """Only my assigned examples: always for a reviewer with a queue; a choice for owners and curators."""
    if not SS.get("rv_has_queue"):
        return False
    return not can("bulk_review") or bool(SS.get("rv_mine", True))


def save_position(gid: int | None) -> None:
    """Where the reviewer is: URL (?g=) and DuckDB, so a reload or a new tab lands here."""
    if gid != SS.get("rv_gid"):
        SS["rv_error"] = None
    SS["rv_gid"] = gid
    if gid is None:
        st.query_params.pop("g", None)
    else:
        st.query_params["g"] = str(gid)
    set_user_state(store, STATE_KEY, {"filter": current_filter().to_dict(), "sort": SS.rv_sort,
                                      "seed": int(SS.rv_seed), "generation_id": gid, "mine": bool(SS.get("rv_mine", True))})


def cursor() -> rv.QueueCursor:
    f, sort, seed = current_filter(), SS.rv_sort, int(SS.rv_seed)
    cur = SS.get("rv_cursor")
    if cur is None or not cur.same_queue(f, sort, seed):
        cur = SS["rv_cursor"] = rv.QueueCursor(f, sort, seed)
    return cur


def on_filter_change() -> None:
    """A new filter starts at the top of its queue."""
    SS["rv_panel"] = None
    save_position(cursor().next_after(store, None))


def flash(message: str, icon: str = "✅", error: bool = False) -> None:
    SS["rv_flash"] = (message, icon)
    SS["rv_error"] = message if error else None


# --------------------------------------------------------------------------- actions (callbacks)

def loaded(gid: int) -> int:
    """The version this session saw when it opened the example (the reviewer's own response's on
    an overlap example, else the example's review's)."""
    seen = SS.get("rv_loaded") or {}
    return int(seen["version"]) if seen.get("gid") == gid else rv.version_for(store, gid, reviewer_name())


def seconds_open(gid: int) -> float | None:
    seen = SS.get("rv_loaded") or {}
    return time.monotonic() - seen["at"] if seen.get("gid") == gid and seen.get("at") else None


def go_next(after: int | None) -> None:
    nxt = cursor().next_after(store, after)
    SS["rv_panel"] = None
    save_position(nxt)


def prefilter_stop(gid: int) -> list[str] | None:
    """The pre-filter's reasons when it stopped this example before the judge, else None."""
    return rv.prefilter_stop(store, gid)


def ask_accept(gid: int) -> None:
    """Accept, except that an example the pre-filter stopped asks first (it was never judged)."""
    if prefilter_stop(gid) is not None:
        SS["rv_panel"] = "confirm_accept"
        return
    decide("accepted", gid)


def decide(verdict: str, gid: int, edited: dict | None = None, note: str | None = None,
           reasons: list | None = None) -> None:
    try:
        res = rv.decide(store, gid, verdict, reviewer=reviewer_name(), expected_version=loaded(gid),
                        note=note, reasons=reasons, edited_fields=edited, seconds_open=seconds_open(gid))
    except rv.StaleReview as exc:
        # said once: the error above the example (with its Reload button), no toast, no second notice
        SS["rv_error"] = str(exc)
        SS["rv_panel"] = None
        return
    except ShoalError as exc:
        flash(str(exc), "⚠️", error=True)
        return
    word = {"accepted": "Accepted" + (" (edited)" if res["edited_fields"] and edited else ""),
            "rejected": "Rejected", "skipped": "Skipped"}[verdict]
    status = f" · {STATUS_WORDS[res['status']]}" if res.get("status") else ""
    flagged = " · stopped by the pre-filter: flagged in the export" \
        if verdict == "accepted" and prefilter_stop(gid) is not None else ""
    flash(f"{word} #{gid} — saved (version {res['version']}){status}{flagged}", "✅" if verdict == "accepted" else "📝")
    go_next(gid)


def do_reject(gid: int) -> None:
    decide("rejected", gid, note=SS.get(f"rv_note_{gid}") or None, reasons=SS.get(f"rv_reasons_{gid}") or [])


def do_edit(gid: int, names: list[str]) -> None:
    decide("accepted", gid, edited={n: SS[f"rv_field_{gid}_{n}"] for n in names})


def do_skip(gid: int) -> None:
    review = rv.get_review(store, gid)
    if review and review["verdict"] in ("accepted", "rejected"):
        flash(f"#{gid} keeps its verdict ({review['verdict']}); moved on", "⏭️")
        go_next(gid)
        return
    decide("skipped", gid)


def do_undo() -> None:
    try:
        res = rv.undo_last(store, reviewer_name())
    except ShoalError as exc:
        flash(str(exc), "⚠️", error=isinstance(exc, rv.StaleReview))
        return
    if res.action in ("review.decide", "review.respond") and res.generation_ids:
        gid = res.generation_ids[0]
        SS["rv_loaded"] = {"gid": gid, "version": rv.version_for(store, gid, reviewer_name()), "at": time.monotonic()}
        save_position(gid)
        flash(f"Undone: #{gid} is back to its previous state", "↩️")
    else:
        flash(f"Undone bulk action: {res.restored} examples restored"
              + (f", {res.not_restored} changed since and left alone" if res.not_restored else ""), "↩️")
    SS["rv_panel"] = None


def do_prev(gid: int) -> None:
    f = current_filter()
    ids = rv.queue_window(store, f, SS.rv_sort, int(SS.rv_seed), gid, direction=-1, limit=1)
    if ids:
        SS["rv_panel"] = None
        save_position(ids[0])
    else:
        flash("This is the first example in the queue", "ℹ️")


def open_panel(name: str) -> None:
    SS["rv_panel"] = None if SS.get("rv_panel") == name else name


def reload_example(gid: int) -> None:
    SS["rv_loaded"] = {"gid": gid, "version": rv.version_for(store, gid, reviewer_name()), "at": time.monotonic()}
    SS["rv_error"] = None


def show_cell(f: rv.QueueFilter) -> None:
    """Agreement drill-down: put the cell's filter in the sidebar and review it."""
    SS.update({"rv_tasks": list(f.tasks), "rv_judge": f.judge, "rv_rule": f.rule or "",
               "rv_rule_answer": f.rule_answer, "rv_status": f.status, "rv_mode": "Review"})
    on_filter_change()


# --------------------------------------------------------------------------- drawing helpers

def field_language(task: str, name: str, value: str, src: str | None, target: str | None) -> str | None:
    """How to show a generated field: a code language for st.code, or None for plain text (the task decides)."""
    return code_lang(get_task(task).display_language(name, value, src, target))


# --------------------------------------------------------------------------- review panel

@st.fragment
def review_panel() -> None:
    show_flash()
    f = current_filter()
    gid = SS.get("rv_gid")
    item = rv.get_item(store, gid) if gid is not None else None
    if item is None:
        gid = cursor().next_after(store, None)
        if gid is not None:
            save_position(gid)
            item = rv.get_item(store, gid)
    head = st.empty()
    if item is None:
        st.info("Nothing to review for this filter. Change the filter in the sidebar, or generate examples "
                "on the Generate page.")
        draw_counts(head, f, None)
        return
    g, snip, judg, review = item["generation"], item["snippet"], item["judgment"], item["review"]
    version = rv.version_for(store, gid, reviewer_name())
    seen = SS.get("rv_loaded") or {}
    if seen.get("gid") != gid:
        SS["rv_loaded"] = seen = {"gid": gid, "version": version, "at": time.monotonic()}
    stale = seen["version"] != version
    if SS.get("rv_error"):
        st.error(SS["rv_error"])
    elif stale:
        st.warning(f"This example changed since you opened it (now version {version}"
                   f"{' by ' + review['reviewer'] if review else ''}). Saving is refused until you reload it.")
    if stale:
        st.button("Reload example", on_click=reload_example, args=(gid,), key="rv_reload")

    # ---- title line
    src_lang, tgt = snip.get("language"), g.get("target_language")
    langs = f"{src_lang} → {tgt}" if tgt else (src_lang or "?")
    cluster = item["cluster"]
    ctext = f" · cluster {cluster['cluster']}" + (f" ({cluster['label']})" if cluster and cluster.get("label") else "") \
        if cluster else ""
    human = (f":blue-badge[{review['verdict']} by {review['reviewer']} · v{review['version']}]" if review
             else ":gray-badge[no final verdict yet]" if rv.is_overlap(store, gid) else ":gray-badge[not reviewed]")
    stop = prefilter_stop(gid)
    badge = ":orange-badge[stopped by the pre-filter]" if stop is not None and not judg \
        else verdict_badge(judg["overall"] if judg else None)
    st.markdown(f"### Example #{gid}\n`{g['task']}` · {langs}{ctext} · {badge}"
                f" {human}" + (" :orange-badge[edited]" if review and review.get("edited_fields") else ""))
    blind = draw_team_line(gid)
    if stop is not None:
        st.warning("**Stopped by the pre-filter, so the judge never saw it:** " + plain("; ".join(stop))
                   + ". Accepting it puts it in the export, flagged with these reasons.")

    # ---- decisions
    draw_actions(gid)
    panel = SS.get("rv_panel")
    fields = g["fields"] or {}
    shown = review["edited_fields"] if review and review.get("edited_fields") else fields
    if panel == "reject":
        with st.form(f"rv_reject_form_{gid}", border=True):
            st.text_input("Reject note", key=f"rv_note_{gid}", placeholder="Why is this example bad? (Enter saves)")
            st.pills("Quick reasons", rv.QUICK_REASONS, selection_mode="multi", key=f"rv_reasons_{gid}")
            st.form_submit_button("Confirm reject (Enter)", type="primary", on_click=do_reject, args=(gid,))
        focus("Reject note", f"reject-{gid}")
    elif panel == "confirm_accept" and stop is not None:
        with st.container(border=True):
            st.markdown(f"Accept #{gid} although the pre-filter stopped it? It was never judged; the export "
                        "marks it (`prefilter_failed`).")
            c1, c2 = st.columns(2)
            c1.button("Accept anyway", key="rv_accept_anyway", type="primary", on_click=decide,
                      args=("accepted", gid), width="stretch")
            c2.button("Cancel", key="rv_accept_cancel", on_click=open_panel, args=("confirm_accept",),
                      width="stretch")

    # ---- source and generated side by side (an edit happens in the right column: the source stays in view)
    left, right = st.columns(2, gap="medium")
    with left:
        st.markdown(f"**Source snippet** · {src_lang}")
        st.code(snip.get("code") or "(snippet missing)", language=code_lang(src_lang), line_numbers=True)
        where = " · ".join(str(x) for x in (snip.get("repo"), snip.get("path"), snip.get("func_name")) if x)
        if where:
            st.caption(where)
    with right:
        if panel == "edit":
            edit_form(gid, fields, shown)
        else:
            st.markdown("**Generated**" + (" (your edited copy)" if shown is not fields else ""))
            for name, value in shown.items():
                if name == "task_name":
                    continue
                show_field(name, value, field_language(g["task"], name, str(value), src_lang, tgt))
        run = execution_of(store, gid)
        if run:   # the sandbox run of solution + tests (core.checks.execution)
            st.markdown(f"**Execution** :{'green' if run['passed'] else 'red'}-badge[{run['outcome']}] "
                        f"{run.get('language', '')} · {run.get('status', '')}"
                        + (f" · repair rounds: {run['repair_rounds']}" if run.get("repair_rounds") else ""))
            if not run["passed"]:
                st.code((run.get("stderr") or run.get("stdout") or "")[-1500:] or "(no output)", language=None)

    # ---- judge
    st.markdown("**Judge** " + verdict_badge(judg["overall"] if judg else None))
    if judg:
        if judg["rules"]:
            # st.table: static HTML, much lighter in the browser than the st.dataframe grid
            st.table(pd.DataFrame([{"rule": r.get("rule"), "answer": r.get("answer"), "reason": r.get("reason")}
                                   for r in judg["rules"]]).set_index("rule"))
        if judg.get("analysis"):
            with st.expander("Judge analysis"):
                st.text(judg["analysis"])
    prompt, jprompt = item["prompt"], item["judge_prompt"]
    st.caption(" · ".join(x for x in (
        f"prompt {prompt['task']} v{prompt['version']} (#{prompt['id']})" if prompt else "prompt version unknown",
        f"generator {g.get('generator_model') or '?'}",
        f"judge {judg.get('judge_model') or '?'}" if judg else None,
        f"judge prompt v{jprompt['version']}" if jprompt else None,
        f"created {str(g.get('created_at'))[:19]}") if x))
    with st.expander("Raw replies"):
        st.markdown("Generator reply")
        st.code(g.get("raw_text") or "(none)", language="json", wrap_lines=True)
        if judg:
            st.markdown("Judge reply")
            st.code(judg.get("raw_text") or "(none)", language="json", wrap_lines=True)
    if review and review.get("note"):
        st.caption(f"Note: {review['note']}" + (f" · reasons: {', '.join(review['reasons'])}" if review["reasons"] else ""))
    if st.toggle("History of this example", key="rv_history"):
        trail = rv.audit_trail(store, gid, include_responses=not blind)
        if trail:
            st.table(pd.DataFrame([{"at": str(t["at"])[:19], "who": t["actor"], "action": t["action"],
                                    "before": (t["before"] or {}).get("verdict"),
                                    "after": (t["after"] or {}).get("verdict")} for t in trail]))
            if blind:
                st.caption("Other reviewers' responses are left out until you give yours.")
        else:
            st.caption("No decisions yet.")
    if st.toggle("Queue list (next 50 from here)", key="rv_list"):
        draw_queue_list(f, gid)
    draw_counts(head, f, gid)


STATUS_WORDS = {"pending": "pending", "decided": "decided", "agreed": "agreed", "conflict": "in conflict",
                "resolved": "resolved"}
STATUS_BADGE = {"pending": "gray", "decided": "blue", "agreed": "green", "conflict": "red", "resolved": "violet"}


def draw_team_line(gid: int) -> bool:
    """For an overlap example: its status and the responses this reviewer may see (blind review).
    Returns True when other verdicts are hidden from this reviewer."""
    if not rv.is_overlap(store, gid):
        return False
    st_ = rv.example_status(store, gid)
    shown, hidden = rv.visible_responses(store, gid, reviewer_name(), see_all=can("adjudicate"))
    line = (f":{STATUS_BADGE[st_['status']]}-badge[{STATUS_WORDS[st_['status']]}] · overlap example: "
            f"{st_['responses']} of {st_['needed']} verdicts in")
    if hidden:
        line += f" · :gray-badge[{hidden} other verdict(s) hidden until you give yours]"
    parts = [f"**{r['reviewer']}** {r['verdict']}" + (f" ({r['note']})" if r.get("note") else "") for r in shown]
    st.markdown(line + (" · " + " · ".join(parts) if parts else ""))
    return bool(hidden)


def edit_form(gid: int, fields: dict, shown: dict) -> None:
    """The edit form, drawn where the generated fields were (beside the source snippet)."""
    names = [n for n in fields if n != "task_name"]
    with st.form(f"rv_edit_form_{gid}", border=True):
        st.caption("Edit any field, then Ctrl+Enter (or the button) saves and accepts.")
        for n in names:
            v = shown.get(n, "")
            st.text_area(n, value=v if isinstance(v, str) else json.dumps(v), key=f"rv_field_{gid}_{n}",
                         height=max(68, min(400, 22 * (str(v).count("\n") + 2))))
        st.form_submit_button("Save edit & accept", type="primary", on_click=do_edit, args=(gid, names))
    if names:
        focus(names[0], f"edit-{gid}")


def jump_to(ids: list[int]) -> None:
    state = SS.get("rv_list_table")
    rows = list(state["selection"]["rows"]) if state else []
    if rows and rows[0] < len(ids):
        SS["rv_panel"] = None
        save_position(ids[rows[0]])


def draw_queue_list(f: rv.QueueFilter, gid: int) -> None:
    """The next examples in queue order (keyset from the current one); click a row to open it."""
    ids = [gid] + rv.queue_window(store, f, SS.rv_sort, int(SS.rv_seed), gid, 1, 49)
    df = rv.queue_rows(store, ids)
    st.dataframe(df, hide_index=True, key="rv_list_table", on_select=lambda: jump_to(ids),
                 selection_mode="single-row", width="stretch")


def draw_actions(gid: int) -> None:
    cols = st.columns(7)
    k = SHORTCUTS
    cols[0].button("Accept", key="rv_accept", type="primary", shortcut=k["accept"], on_click=ask_accept,
                   args=(gid,), width="stretch")
    cols[1].button("Reject…", key="rv_reject", shortcut=k["reject"], on_click=open_panel, args=("reject",),
                   width="stretch")
    cols[2].button("Edit…", key="rv_edit", shortcut=k["edit"], on_click=open_panel, args=("edit",), width="stretch")
    cols[3].button("Skip", key="rv_skip", shortcut=k["skip"], on_click=do_skip, args=(gid,), width="stretch")
    cols[4].button("Undo", key="rv_undo", shortcut=k["undo"], on_click=do_undo, width="stretch")
    cols[5].button("Prev", key="rv_prev", shortcut=k["prev"], on_click=do_prev, args=(gid,), width="stretch")
    cols[6].button("Next", key="rv_next", shortcut=k["next"], on_click=go_next, args=(gid,), width="stretch")
    st.caption("Keys: **A** accept · **X** reject (type a note, Enter) · **E** edit (Ctrl+Enter saves & accepts) · "
               "**S** skip · **U** undo your last decision · **J** / **K** next / previous. "
               f"Reviewing as **{reviewer_name()}**" + (" · your assigned queue" if mine_only() else "") + ".")


def draw_counts(slot, f: rv.QueueFilter, gid: int | None) -> None:
    """Counts for the current filter; drawn last into a slot at the top so the example shows first."""
    c = cursor().summary(store, gid)          # kept in step, not recounted (core.review.counts)
    pos = f"{c['position']} of {c['in_filter']}" if c["position"] else f"– of {c['in_filter']}"
    slot.markdown(
        f"**Queue** {pos} · to do {c['todo']} · accepted {c['accepted']} · rejected {c['rejected']} · "
        f"skipped {c['skipped']} · edited {c['edited']} · judge pass {c['judge_passed']} / fail "
        f"{c['judge_failed']} / not judged {c['unjudged']}")


# --------------------------------------------------------------------------- bulk panel

def bulk_panel() -> None:
    show_flash()
    if SS.get("rv_error"):
        st.error(SS.pop("rv_error"))
    f = current_filter()
    st.markdown("Apply one verdict to **every example matching the sidebar filter**, as one action you can undo.")
    verdict = st.radio("Verdict", ["accepted", "rejected"], horizontal=True, key="rv_bulk_verdict",
                       format_func=lambda v: {"accepted": "Accept all", "rejected": "Reject all"}[v])
    overwrite = st.checkbox("Also change examples that already have a human verdict", key="rv_bulk_overwrite")
    note = st.text_input("Note for these verdicts (optional)", key="rv_bulk_note")
    pre = rv.bulk_preview(store, f, verdict, overwrite)
    st.markdown(f"{pre.matching} examples match the filter; **{pre.to_change} will be {verdict}**"
                + (f" ({pre.overriding} overriding a human verdict)" if pre.overriding else "")
                + (f"; {pre.already} already are." if pre.already else "."))
    st.checkbox(f"Yes, mark {pre.to_change} examples as {verdict}", key="rv_bulk_confirm",
                disabled=pre.to_change == 0)
    st.button("Apply bulk action", type="primary", key="rv_bulk_go", on_click=do_bulk,
              args=(f, verdict, overwrite, note), disabled=not SS.get("rv_bulk_confirm") or pre.to_change == 0)
    st.subheader("Recent actions")
    acts = rv.recent_actions(store, 15)
    if not acts:
        st.caption("No decisions yet.")
    for a in acts:
        c1, c2 = st.columns([5, 1])
        kind = "bulk" if a["action"] == "review.bulk" else f"#{a['first_generation']}"
        c1.markdown(f"{str(a['at'])[:19]} · **{a['reviewer']}** · {kind} · {a['verdict']} · {a['n']} example(s)"
                    + (" · _undone_" if a["undone"] else ""))
        if not a["undone"]:
            c2.button("Undo", key=f"rv_undo_{a['action_id']}", on_click=do_undo_action, args=(a["action_id"],))


def do_bulk(f: rv.QueueFilter, verdict: str, overwrite: bool, note: str) -> None:
    try:
        res = rv.bulk_decide(store, f, verdict, reviewer=reviewer_name(), note=note, overwrite=overwrite)
    except ShoalError as exc:
        flash(str(exc), "⚠️", error=True)
        return
    SS["rv_bulk_confirm"] = False
    flash(f"{res.changed} examples {verdict} as one action — saved", "✅")


def do_undo_action(action_id: str) -> None:
    try:
        res = rv.undo_action(store, action_id, reviewer=reviewer_name())
    except ShoalError as exc:
        flash(str(exc), "⚠️", error=True)
        return
    flash(f"Undone: {res.restored} restored"
          + (f", {res.not_restored} changed since and left alone" if res.not_restored else ""), "↩️")


def show_flash() -> None:
    if SS.get("rv_flash"):
        msg, icon = SS.pop("rv_flash")
        st.toast(msg, icon=icon)


# --------------------------------------------------------------------------- agreement panel

def agreement_panel() -> None:
    base = current_filter()
    res = rv.agreement(store, base)
    o = res["overall"]
    st.markdown("How often the judge's verdict matches yours, on examples that have both (the sidebar filter "
                "applies, except status/judge/rule). High agreement and kappa mean the judge can be trusted on "
                "the rest.")
    if o["n"] == 0:
        st.info("No example has both a judge verdict and a human accept/reject yet.")
        return
    fmt = lambda v: "–" if v is None else f"{v:.2f}"
    m = st.columns(3)
    m[0].metric("Examples with both", o["n"])
    m[1].metric("Agreement", fmt(o["agreement"]))
    m[2].metric("Cohen's kappa", fmt(o["kappa"]))
    scopes = ["all"] + [f"task: {t}" for t in res["per_task"]] + [f"rule: {r}" for r in res["per_rule"]]
    scope = st.selectbox("Confusion matrix for", scopes, key="rv_agree_scope")
    task = scope[6:] if scope.startswith("task: ") else None
    rule = scope[6:] if scope.startswith("rule: ") else None
    cell = o if scope == "all" else (res["per_task"][task] if task else res["per_rule"][rule])
    st.caption(f"n={cell['n']} · agreement {fmt(cell['agreement'])} · kappa {fmt(cell['kappa'])} — "
               "click a cell to review its examples.")
    hdr = st.columns([2, 2, 2])
    hdr[1].markdown("**human accepted**")
    hdr[2].markdown("**human rejected**")
    judge_word = "rule says yes" if rule else "judge pass"
    for judge_yes in (True, False):
        row = st.columns([2, 2, 2])
        row[0].markdown(f"**{judge_word if judge_yes else judge_word.replace('yes', 'no').replace('pass', 'fail')}**")
        for col, human in ((row[1], True), (row[2], False)):
            key = f"judge_{'yes' if judge_yes else 'no'}_{'accepted' if human else 'rejected'}"
            col.button(str(cell[key]), key=f"rv_cell_{key}", width="stretch", on_click=show_cell,
                       args=(rv.cell_filter(base, judge_yes, human, task=task, rule=rule),))
    st.subheader("Per task")
    st.dataframe(pd.DataFrame([{"task": k, **v} for k, v in res["per_task"].items()]), hide_index=True)
    st.subheader("Per rule")
    st.dataframe(pd.DataFrame([{"rule": k, **v} for k, v in res["per_rule"].items()]), hide_index=True)


# --------------------------------------------------------------------------- agreement between people

def open_example(gid: int) -> None:
    SS.update({"rv_mode": "Review", "rv_panel": None})
    save_position(int(gid))


def _kappa(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def people_cells(res: dict) -> dict[str, list[int]]:
    """Every cell of the people tables that lists examples: label -> example ids."""
    cells = {}
    for p in res["pairs"]:
        for k, ids in p["examples"].items():
            cells[f"{p['a']} vs {p['b']}: {k.replace('a_', p['a'] + ' ').replace('b_', p['b'] + ' ')}"] = ids
    cells["all reviewers: split verdicts"] = res["fleiss"]["split_examples"]
    for t, b in res["per_task"].items():
        cells[f"task {t}: split verdicts"] = b["split_examples"]
    for r, b in res["per_reason"].items():
        cells[f"reason '{r}': split"] = b["split_examples"]
    for r, b in res["per_rule"].items():
        for k, ids in b["examples"].items():
            cells[f"rule '{r}': {k.replace('_', ' & ')}"] = ids
    return {k: v for k, v in cells.items() if v}


def people_panel() -> None:
    st.subheader("Between reviewers")
    res = rv.people_agreement(store)
    fl = res["fleiss"]
    m = st.columns(4)
    m[0].metric("Reviewers", len(res["reviewers"]))
    m[1].metric("Examples with 2+ verdicts", fl["n_examples"])
    m[2].metric("Split", fl["split"])
    m[3].metric("Fleiss' kappa", _kappa(fl["kappa"]))
    if res["pairs"]:
        st.markdown("**Cohen's kappa per pair** (each pair on the examples both reviewed)")
        st.dataframe(pd.DataFrame([{k: v for k, v in p.items() if k != "examples"} for p in res["pairs"]]),
                     hide_index=True, key="rv_people_pairs")
    if res["per_task"]:
        st.markdown("**Per task** (Fleiss' kappa)")
        st.dataframe(pd.DataFrame([{"task": t, **{k: v for k, v in b.items() if k != "split_examples"}}
                                   for t, b in res["per_task"].items()]), hide_index=True)
    if res["per_reason"]:
        st.markdown("**Per reject reason** (did the reviewers cite it? Fleiss' kappa)")
        st.dataframe(pd.DataFrame([{"reason": r, **{k: v for k, v in b.items() if k != "split_examples"}}
                                   for r, b in res["per_reason"].items()]), hide_index=True)
    if res["per_rule"]:
        st.markdown("**Every reviewer's verdict against the judge's rules** (rule failed vs rejected)")
        st.dataframe(pd.DataFrame([{"rule": r, **{k: v for k, v in b.items() if k != "examples"}}
                                   for r, b in res["per_rule"].items()]), hide_index=True)
    cells = people_cells(res)
    if cells:
        st.markdown("**Examples behind a cell**")
        c1, c2, c3 = st.columns([3, 1, 1])
        cell = c1.selectbox("Cell", list(cells), key="rv_people_cell")
        gid = c2.selectbox("Example", cells[cell], key="rv_people_gid", format_func=lambda g: f"#{g}")
        c3.button("Open", key="rv_people_open", on_click=open_example, args=(gid,), width="stretch")
    elif not res["pairs"]:
        st.info("No example has verdicts from two reviewers yet. Give examples an overlap on the Team page.")
    if res["progress"]:
        st.markdown("**Progress and speed**")
        st.dataframe(pd.DataFrame(res["progress"]), hide_index=True)


# --------------------------------------------------------------------------- conflicts (adjudication)

def do_adjudicate(gid: int, verdict: str) -> None:
    try:
        out = rv.adjudicate(store, gid, verdict, adjudicator=reviewer_name(),
                            note=SS.get(f"rv_adj_note_{gid}") or None)
    except ShoalError as exc:
        flash(str(exc), "⚠️", error=True)
        return
    flash(f"#{gid} resolved: {out['verdict']} (final) — saved", "⚖️")


def conflicts_panel() -> None:
    show_flash()
    if SS.get("rv_error"):
        st.error(SS.pop("rv_error"))
    ids = rv.conflict_ids(store)
    counts = rv.status_counts(store)
    st.markdown(f"**{len(ids)} in conflict** · agreed {counts['agreed']} · resolved {counts['resolved']} · "
                f"pending {counts['pending']}. An adjudication is final and goes into the audit log.")
    if not ids:
        st.info("No conflicts: every overlap example so far has reviewers who agree (or is still pending).")
        return
    gid = st.selectbox("Conflict", ids, key="rv_conflict", format_func=lambda g: f"Example #{g}")
    item = rv.get_item(store, gid)
    g, snip = item["generation"], item["snippet"]
    st.markdown(f"### Conflict on example #{gid}\n`{g['task']}` · "
                f"{verdict_badge(item['judgment']['overall'] if item['judgment'] else None)}")
    st.table(pd.DataFrame([{"reviewer": r["reviewer"], "verdict": r["verdict"], "note": r.get("note") or "",
                            "reasons": ", ".join(r["reasons"]), "edited": r["edited_fields"] is not None,
                            "at": str(r["updated_at"])[:19]} for r in rv.responses(store, gid)]).set_index("reviewer"))
    left, right = st.columns(2, gap="medium")
    with left:
        st.code(snip.get("code") or "(snippet missing)", language=code_lang(snip.get("language")), line_numbers=True)
    with right:
        for name, value in (g["fields"] or {}).items():
            if name != "task_name":
                show_field(name, value, field_language(g["task"], name, str(value), snip.get("language"),
                                                       g.get("target_language")))
    st.text_input("Adjudication note", key=f"rv_adj_note_{gid}", placeholder="Why this verdict (optional)")
    c = st.columns(2)
    c[0].button("Accept (final)", key="rv_adj_accept", type="primary", on_click=do_adjudicate,
                args=(gid, "accepted"), width="stretch")
    c[1].button("Reject (final)", key="rv_adj_reject", on_click=do_adjudicate, args=(gid, "rejected"),
                width="stretch")


# --------------------------------------------------------------------------- refresh while examples arrive

@st.fragment(run_every=3.0)
def watch_for_new_examples() -> None:
    """Another tab (or a job) adds examples: refresh the page so the queue and its counts show them.
    Waits while a reject note or an edit is open, so nothing typed is disturbed."""
    n = rv.generation_count(store)
    seen = SS.get("rv_seen_generations")
    SS["rv_seen_generations"] = n
    if seen is not None and n != seen and not SS.get("rv_panel"):
        st.rerun()


# --------------------------------------------------------------------------- page

init_state()
SS["rv_has_queue"] = has_queue()
opts = options(store, str(store.path))
with st.sidebar:
    st.subheader("Review queue")
    if SS.rv_has_queue and can("bulk_review"):
        st.toggle("Only my assigned examples", key="rv_mine", on_change=on_filter_change)
    st.multiselect("Task", opts["tasks"], key="rv_tasks", on_change=on_filter_change)
    st.multiselect("Language", opts["languages"], key="rv_langs", on_change=on_filter_change)
    clusters = {c["cluster"]: c["label"] for c in opts["clusters"]}
    SS["rv_clusters"] = [c for c in SS.rv_clusters if c in clusters]
    st.multiselect("Cluster (latest map)", list(clusters), key="rv_clusters", on_change=on_filter_change,
                   format_func=lambda c: f"{c} · {clusters.get(c) or ''}", disabled=not clusters)
    sels = {s["id"]: s["name"] for s in opts["selections"]}
    if SS.rv_selection not in sels:
        SS["rv_selection"] = 0
    st.selectbox("Selection", [0, *sels], key="rv_selection", on_change=on_filter_change,
                 format_func=lambda i: sels.get(i, "all snippets"))
    st.selectbox("Judge verdict", rv.JUDGE_CHOICES, key="rv_judge", on_change=on_filter_change)
    if SS.rv_rule not in opts["rules"]:
        SS["rv_rule"] = ""
    st.selectbox("Judge rule", ["", *opts["rules"]], key="rv_rule", on_change=on_filter_change,
                 format_func=lambda r: r or "any rule")
    if SS.rv_rule:
        st.radio("…answered", ["no", "yes"], key="rv_rule_answer", horizontal=True, on_change=on_filter_change)
    st.selectbox("Review status", rv.STATUS_CHOICES, key="rv_status", on_change=on_filter_change,
                 format_func=lambda s: {"todo": "to do (not accepted/rejected)"}.get(s, s))
    if SS.rv_reviewer_filter not in opts["reviewers"]:
        SS["rv_reviewer_filter"] = ""
    st.selectbox("Reviewer", ["", *opts["reviewers"]], key="rv_reviewer_filter", on_change=on_filter_change,
                 format_func=lambda r: r or "anyone")
    st.text_input("Search text (or #id)", key="rv_search", on_change=on_filter_change)
    st.selectbox("Sort", list(rv.SORTS), key="rv_sort", format_func=rv.SORTS.get, on_change=on_filter_change)
    if SS.rv_sort == "random":
        st.number_input("Random seed", min_value=0, step=1, key="rv_seed", on_change=on_filter_change)

st.title("Review")
modes = ["Review"] + (["Bulk"] if can("bulk_review") else []) + ["Agreement"] + (
    ["Conflicts"] if can("adjudicate") else [])
if SS.get("rv_mode") not in modes:
    SS["rv_mode"] = "Review"
mode = st.segmented_control("View", modes, key="rv_mode", required=True, label_visibility="collapsed")
if mode == "Bulk":
    bulk_panel()
elif mode == "Agreement":
    agreement_panel()
    if can("adjudicate"):
        people_panel()
elif mode == "Conflicts":
    conflicts_panel()
else:
    review_panel()
watch_for_new_examples()
