"""Team: members and roles, who reviews what (assignment with overlap), and everyone's progress."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core import review as rv
from core.errors import ShoalError
from core.team import members as team
from ui.app_pages import page
from ui.common import can, current_role, local_sign_in_enabled, page_store, reviewer_name, sign_in_enabled
from ui.review.guidelines import guidelines_editor
from ui.team.accounts import accounts_panel
from ui.text import plain

store = page_store()
SS = st.session_state
st.title("Team")
st.caption("Owner: everything. Curator: prompts, jobs, checks, export, bulk actions and adjudication. "
           "Reviewer: reviews their own queue only.")
is_owner = can("team")
me = reviewer_name()
config = team.config_roles()


def flash() -> None:
    if SS.get("tm_flash"):
        msg, ok = SS.pop("tm_flash")
        (st.success if ok else st.error)(msg)


def save_member(identity: str, role: str) -> None:
    try:
        team.set_member(store, identity, role, actor=me, actor_role=current_role(), config=config)
        SS["tm_flash"] = (f"{plain(identity.strip())} is now {role}.", True)
        SS.pop("tm_reviewers", None)      # the team changed: offer its reviewers again
    except ShoalError as exc:
        SS["tm_flash"] = (plain(exc), False)


def drop_member(identity: str) -> None:
    try:
        team.remove_member(store, identity, actor=me, actor_role=current_role(), config=config)
        SS["tm_flash"] = (f"{plain(identity)} was removed from the team.", True)
        SS.pop("tm_reviewers", None)
    except ShoalError as exc:
        SS["tm_flash"] = (plain(exc), False)


def run_assign(reviewers: list[str], per_example: int, share: float, include_reviewed: bool, reset: bool) -> None:
    try:
        res = rv.assign_examples(store, reviewers, per_example=per_example, overlap_share=share, actor=me,
                                 actor_role=current_role(), include_reviewed=include_reviewed, reset_open=reset,
                                 seed=int(SS.get("tm_seed", 0)))
        SS["tm_flash"] = (f"Assigned {res.examples} examples ({res.overlap_examples} with overlap) to "
                          f"{len(reviewers)} reviewers: " + ", ".join(f"{plain(k)} {v}" for k, v in sorted(res.per_reviewer.items())),
                          True)
    except ShoalError as exc:
        SS["tm_flash"] = (plain(exc), False)


flash()

# --------------------------------------------------------------------------- members
st.header("Members")
if not sign_in_enabled():
    st.info("Sign-in is not configured, so this Shoal is private to this machine (127.0.0.1) and you are its "
            "owner. Configure `[auth]` in `.streamlit/secrets.toml` (see the README) to share it with a team; "
            "members sign in with their email and get the role set here.")
people = team.members(store, config)
if people:
    st.dataframe(pd.DataFrame([{"member": m.identity, "role": m.role, "name": m.name or "",
                                "set in": "secrets file" if m.from_config else "Team page"} for m in people]),
                 hide_index=True, width="stretch")
else:
    st.caption("No members yet. With sign-in configured, name the owner first (`[shoal.team]` `owner = ...` in "
               "`.streamlit/secrets.toml`): nobody becomes owner by signing in.")

if is_owner:
    with st.form("tm_member_form", border=True):
        cols = st.columns([3, 2, 1])
        ident = cols[0].text_input("Email (or OIDC subject)", key="tm_identity", placeholder="reviewer@example.com")
        role = cols[1].selectbox("Role", team.ROLES, index=2, key="tm_role")
        cols[2].form_submit_button("Add / change", type="primary",
                                   on_click=lambda: save_member(SS.get("tm_identity", ""), SS.get("tm_role")))
    removable = [m.identity for m in people if not m.from_config]
    if removable:
        cols = st.columns([3, 1])
        gone = cols[0].selectbox("Remove a member", removable, key="tm_remove", index=None,
                                 placeholder="choose a member")
        cols[1].button("Remove", key="tm_remove_go", disabled=not gone, on_click=drop_member, args=(gone,))

if is_owner and local_sign_in_enabled():
    accounts_panel(store, me)

# --------------------------------------------------------------------------- assignment
st.header("Assignment and overlap")
ov = rv.overlap_summary(store)
counts = rv.status_counts(store)
m = st.columns(6)
m[0].metric("Generated", ov["generations"])
m[1].metric("Assigned", ov["assigned"])
m[2].metric("With overlap", ov["overlap_examples"], help="Examples given to more than one reviewer.")
m[3].metric("Agreed", counts["agreed"])
m[4].metric("In conflict", counts["conflict"])
m[5].metric("Resolved", counts["resolved"])

if is_owner:
    settings = team.get_settings(store)
    candidates = [p.identity for p in people]
    with st.container(border=True):
        default = team.default_reviewers(people)
        chosen = st.multiselect("Reviewers to assign to", candidates, default=default, key="tm_reviewers")
        if not sign_in_enabled():
            extra = st.text_input("More reviewer names (comma-separated)", key="tm_extra",
                                  help="Local use: the names reviewers type in the sidebar.")
            chosen = chosen + [x.strip() for x in extra.split(",") if x.strip()]
        cols = st.columns(3)
        per = cols[0].number_input("Reviewers per example", 1, 3, int(settings["reviewers_per_example"]),
                                   key="tm_per", help="2–3 measures agreement between people.")
        share = cols[1].slider("Share of examples with that overlap", 0, 100,
                               int(round(100 * float(settings["overlap_share"]))), 5, key="tm_share",
                               disabled=per == 1, help="The others get one reviewer.") / 100
        cols[2].number_input("Seed", 0, 10_000, 0, key="tm_seed")
        inc = st.checkbox("Also assign examples that already have a human verdict", key="tm_inc")
        reset = st.checkbox("Redistribute assignments nobody has started yet", key="tm_reset")
        unassigned = ov["generations"] - ov["assigned"]
        st.caption(f"{unassigned} examples are not assigned yet.")
        st.button("Assign", type="primary", key="tm_assign", disabled=not chosen,
                  on_click=run_assign, args=(chosen, int(per), float(share), inc, reset))

# --------------------------------------------------------------------------- progress
st.header("Progress")
prog = rv.progress(store)
if prog:
    st.dataframe(pd.DataFrame([{
        "reviewer": p["reviewer"], "assigned": p["assigned"], "done": p["done"], "to do": p["to_do"],
        "accepted": p["accepted"], "rejected": p["rejected"], "skipped": p["skipped"],
        "s / example": None if p["seconds_per_example"] is None else round(p["seconds_per_example"], 1),
        "per hour": None if p["per_hour"] is None else round(p["per_hour"], 1),
        "last": str(p["last_at"] or "")[:19]} for p in prog]), hide_index=True, width="stretch")
    st.page_link(page("Review"), label="Agreement between reviewers: Review page → Agreement",
                 icon=":material/insights:")
else:
    st.caption("Nobody has reviewed yet.")

guidelines_editor(store)     # curators and the owner: the reviewer guidelines per task
