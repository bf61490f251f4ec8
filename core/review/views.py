"""Saved views of the Review queue (as Argilla / Label Studio have): a reviewer's filters and sort kept
under a name, picked later to apply them all at once.

A view is personal (seen by its owner only) or shared with the team (seen by every member). Names
are stripped, 1-80 characters, unique per owner among personal views and unique among shared views.
Saving and using a view is the "review" action (core.team.members.authorize, with no target: it is not a
decision on an example); deleting or overwriting someone else's shared view needs the role of
"bulk_review" (a curator or the owner). Every save and delete writes an audit row (`view.save`,
`view.delete`, entity "saved_view"); a refusal is audited by authorize as `review.refused`.

What a view keeps: the QueueFilter (without the person's own "only my assigned examples",
`assigned_to`), the sort and its seed, and the map its clusters were picked on. `resolve_view`
gives the filter to apply now, without what no longer exists (a cluster of a replaced map, a
deleted selection, a task, language, judge rule or reviewer no longer in the data) and says what
it left out.

Names are stored as typed (stripped): whoever shows one where Markdown renders shows it with
ui.text.plain.
"""
from __future__ import annotations

import json
from typing import Any

from core.errors import NotAllowed, ShoalError
from core.maps.build import latest_map_id
from core.review.common import SORTS, require_reviewer
from core.review.filters import QueueFilter
from core.store import Store
from core.team import members as team

MAX_VIEW_NAME = 80

_COLUMNS = "id, name, owner, shared, filter, sort, seed, map_id, created_at, updated_at"


def _owner(actor: str | None) -> str:
    """Who owns: this machine's own user for None (the CLI), else the actor's name."""
    return str(team.local()) if actor is None else require_reviewer(str(actor))


def clean_name(name: str | None) -> str:
    """The view's name, stripped; ShoalError when empty, too long or more than one line."""
    if name is not None and not isinstance(name, str):
        raise ShoalError("A view's name must be text.")
    text = (name or "").strip()
    if not text:
        raise ShoalError("Give the view a name first.")
    if len(text) > MAX_VIEW_NAME:
        raise ShoalError(f"The view's name is {len(text)} characters long; at most {MAX_VIEW_NAME} are allowed.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise ShoalError("A view's name is one line of text (no line breaks or tabs).")
    return text


def _row(r: dict) -> dict:
    """A saved_views row as callers get it: `filter` a QueueFilter, `shared` a bool."""
    raw = r["filter"]
    d = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
    return {**r, "shared": bool(r["shared"]), "seed": int(r["seed"] or 0), "filter": QueueFilter.from_dict(d)}


def _json(view: dict) -> dict:
    """A view as the audit log and `--json` carry it."""
    return {"id": view["id"], "name": view["name"], "owner": view["owner"], "shared": view["shared"],
            "filter": view["filter"].to_dict(), "sort": view["sort"], "seed": view["seed"],
            "map_id": view["map_id"]}


def _may_change(store: Store, actor: str | None, view: dict, verb: str) -> None:
    """Authorize changing `view` (delete, overwrite): its owner may; someone else's shared view needs
    the role of "bulk_review". Refusals are audited (`review.refused`)."""
    own = view["owner"] == _owner(actor)
    role = team.acting_role(store, actor)

    def check() -> None:
        if not own and not team.allowed(role, "bulk_review"):
            raise NotAllowed(f"The shared view {view['name']!r} was saved by {view['owner']}: only its author, a "
                             f"curator or the owner may {verb} it. Save your own under another name.")

    team.authorize(store, actor, "review", role=role, check=check, audit_allowed=False)


def _same_name(cur, name: str, owner: str, shared: bool) -> dict | None:
    if shared:
        sql, params = "WHERE shared AND name = ?", [name]
    else:
        sql, params = "WHERE NOT shared AND owner = ? AND name = ?", [owner, name]
    cur.execute(f"SELECT {_COLUMNS} FROM saved_views {sql} ORDER BY id LIMIT 1", params)
    cols = [d[0] for d in cur.description]
    row = cur.fetchone()
    return None if row is None else _row(dict(zip(cols, row)))


def save_view(store: Store, name: str, filter: QueueFilter, sort: str, *, actor: str | None, shared: bool = False,
              replace: bool = False, seed: int = 0) -> dict:
    """Save the queue's `filter` and `sort` (and the random sort's `seed`) as view `name` of `actor`
    (None: this machine's own user); `shared`: visible to the whole team. A name already taken (the
    actor's personal views, or the shared views) is refused unless `replace`, which overwrites that
    view (someone else's shared view only for a curator or the owner). Returns the view."""
    owner = _owner(actor)
    team.authorize(store, actor, "review", audit_allowed=False)
    text = clean_name(name)
    if not isinstance(filter, QueueFilter):
        raise ShoalError("A view saves a queue filter (QueueFilter).")
    if sort not in SORTS:
        raise ShoalError(f"Unknown sort {sort!r}; use one of {', '.join(SORTS)}.")
    f = filter.with_(assigned_to=None)          # "only my assigned examples" is each person's own
    map_id = f.map_id if f.map_id is not None else (latest_map_id(store) if f.clusters else None)
    scope = "shared view" if shared else "view of yours"
    existing = _same_name(store.cursor(), text, owner, bool(shared))
    if existing is not None:
        if not replace:
            raise ShoalError(f"There is already a {scope} named {text!r}"
                             + (f" (saved by {existing['owner']})" if shared else "")
                             + ". Pick another name, or choose to replace it.")
        _may_change(store, actor, existing, "overwrite")
    body = [json.dumps(f.to_dict()), sort, int(seed or 0), map_id]

    def write(cur) -> dict:
        old = _same_name(cur, text, owner, bool(shared))
        if old is not None and not replace:
            raise ShoalError(f"There is already a {scope} named {text!r}; it was saved in the meantime. "
                             "Pick another name, or choose to replace it.")
        if old is not None:
            cur.execute(f"UPDATE saved_views SET filter = ?, sort = ?, seed = ?, map_id = ?, "
                        f"updated_at = current_timestamp WHERE id = ? RETURNING {_COLUMNS}", [*body, old["id"]])
        else:
            cur.execute(f"INSERT INTO saved_views(name, owner, shared, filter, sort, seed, map_id) "
                        f"VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}", [text, owner, bool(shared), *body])
        cols = [d[0] for d in cur.description]
        view = _row(dict(zip(cols, cur.fetchone())))
        cur.execute("INSERT INTO audit_log(actor, action, entity, entity_id, before, after) "
                    "VALUES (?, 'view.save', 'saved_view', ?, ?, ?)",
                    [owner, str(view["id"]), None if old is None else json.dumps(_json(old), default=str),
                     json.dumps(_json(view), default=str)])
        return view

    return store.write(write)


def list_views(store: Store, viewer: str | None, *, everyone: bool = False) -> list[dict]:
    """The views `viewer` sees (None: this machine's own user): their personal views by name, then
    the shared ones by name. `everyone`: every person's personal views too (the CLI's `--all`).
    Each: id, name, owner, shared, filter (QueueFilter), sort, seed, map_id, created_at, updated_at."""
    who = _owner(viewer)
    if everyone:
        rows = store.rows(f"SELECT {_COLUMNS} FROM saved_views ORDER BY shared, lower(name), owner, id")
    else:
        rows = store.rows(f"SELECT {_COLUMNS} FROM saved_views WHERE shared OR owner = ? "
                          "ORDER BY shared, lower(name), id", [who])
    return [_row(r) for r in rows]


def get_view(store: Store, view_id: int) -> dict:
    """One view by id (whoever's); ShoalError when there is none."""
    vid = int(view_id)
    row = store.one(f"SELECT {_COLUMNS} FROM saved_views WHERE id = ?", [vid])
    if row is None:
        raise ShoalError(f"There is no saved view #{vid} (it may have been deleted).")
    return _row(row)


def visible_view(store: Store, view_id: int, viewer: str | None) -> dict:
    """View `view_id` when `viewer` may use it (theirs, or shared): authorized as "review"."""
    team.authorize(store, viewer, "review", audit_allowed=False)
    view = get_view(store, view_id)
    if not view["shared"] and view["owner"] != _owner(viewer):
        raise ShoalError(f"There is no saved view #{int(view_id)} of yours (another person's are private).")
    return view


def delete_view(store: Store, view_id: int, *, actor: str | None) -> dict:
    """Delete view `view_id` as `actor`: their own, or a shared one for a curator or the owner.
    Another person's personal view is not theirs to see. Audited; returns the deleted view."""
    view = get_view(store, view_id)
    who = _owner(actor)
    if not view["shared"] and view["owner"] != who:
        raise ShoalError(f"There is no saved view #{int(view_id)} of yours (another person's are private).")
    _may_change(store, actor, view, "delete")

    def write(cur) -> dict:
        gone = cur.execute("DELETE FROM saved_views WHERE id = ? RETURNING id", [view["id"]]).fetchone()
        if gone is None:
            raise ShoalError(f"The view {view['name']!r} was deleted in the meantime.")
        cur.execute("INSERT INTO audit_log(actor, action, entity, entity_id, before, after) "
                    "VALUES (?, 'view.delete', 'saved_view', ?, ?, ?)",
                    [who, str(view["id"]), json.dumps(_json(view), default=str), json.dumps({"deleted_by": who})])
        return view

    return store.write(write)


def resolve_view(store: Store, view: dict, options: dict | None = None) -> tuple[QueueFilter, list[str]]:
    """The filter to apply for `view` now, and what it left out because it no longer exists: clusters
    of a map that is no longer the latest (or gone from it), a deleted selection, and tasks,
    languages, a judge rule or a reviewer no longer in the data. `options`: core.review.filter_options
    (the page passes the values its widgets offer)."""
    from core.review.options import filter_options
    opts = filter_options(store) if options is None else options
    f: QueueFilter = view["filter"]
    dropped: list[str] = []
    changes: dict[str, Any] = {}

    def keep_known(field: str, what: str, known, why: str = "no longer in the data") -> None:
        values = getattr(f, field)
        gone = [v for v in values if v not in known]
        if gone:
            changes[field] = tuple(v for v in values if v in known)
            dropped.append(f"{what}{'s' if len(gone) > 1 else ''} {', '.join(map(str, gone))} ({why})")

    keep_known("tasks", "task", set(opts.get("tasks") or ()))
    keep_known("languages", "language", set(opts.get("languages") or ()))
    if f.clusters and f.map_id is not None:             # an explicit map (not the page's "latest map")
        keep_known("clusters", "cluster", {int(r[0]) for r in store.execute(
            "SELECT DISTINCT cluster FROM map_points WHERE map_id = ?", [int(f.map_id)]).fetchall()},
            f"not on map #{int(f.map_id)}")
    elif f.clusters and view.get("map_id") is not None and opts.get("map_id") != view["map_id"]:
        changes["clusters"] = ()
        now = f"the latest map is #{opts['map_id']}" if opts.get("map_id") is not None else "there is no map now"
        dropped.append(f"cluster{'s' if len(f.clusters) > 1 else ''} {', '.join(map(str, f.clusters))} "
                       f"(picked on map #{view['map_id']}; {now})")
    elif f.clusters:
        keep_known("clusters", "cluster", {int(c["cluster"]) for c in opts.get("clusters") or ()},
                   "no longer on the latest map")
    if f.selection_id is not None and f.selection_id not in {int(s["id"]) for s in opts.get("selections") or ()}:
        changes["selection_id"] = None
        dropped.append(f"selection #{f.selection_id} (deleted)")
    if f.rule and f.rule not in set(opts.get("rules") or ()):
        changes["rule"] = None
        dropped.append(f"judge rule {f.rule!r} (no judgment names it now)")
    if f.reviewer and f.reviewer not in set(opts.get("reviewers") or ()):
        changes["reviewer"] = None
        dropped.append(f"reviewer {f.reviewer} (no verdicts of theirs now)")
    return (f.with_(**changes) if changes else f), dropped


def view_label(view: dict, viewer: str | None) -> str:
    """How a picker lists a view: its name, and "(shared by X)" for a shared one."""
    if not view["shared"]:
        return view["name"]
    by = "you" if viewer is not None and view["owner"] == str(viewer) else view["owner"]
    return f"{view['name']} (shared by {by})"
