"""Reviewer guidelines per task (as Argilla and Label Studio show annotation guidelines beside the
record): a curator or the owner writes them for each task kind, and optionally general ones for all
tasks ('*'); the Review page shows the example's task's latest guidelines beside it.

Every save is a new version (1, 2, ... per task) with its author and time, kept for ever; an empty
body clears the guidelines (as a new version). Saving the text the latest version already has writes
nothing. Writing is checked here, in core (core.team.members.authorize, action "guidelines": owners and
curators); a refusal is audited by authorize as `guidelines.refused`, a save as `guidelines.set`
(entity "guidelines", the task as entity id, the previous and the new version and text).

The body is stored as written (stripped): whoever shows it shows it as text (st.text, ui.text.plain).
"""
from __future__ import annotations

import json

from core.errors import ShoalError
from core.store import Store
from core.tasks import TASKS, get_task
from core.team import members as team

ALL_TASKS = "*"                  # the general guidelines, shown for every task
MAX_GUIDELINE_CHARS = 20_000

_COLUMNS = "id, task, version, body, author, created_at"


class StaleGuidelines(ShoalError):
    """The guidelines changed since the editor opened them (`version`: the latest now, 0 for none)."""

    def __init__(self, message: str, version: int):
        super().__init__(message)
        self.version = version


def guideline_scopes() -> list[str]:
    """What guidelines can be written for: '*' (all tasks) first, then every task name."""
    return [ALL_TASKS, *TASKS]


def scope_title(task: str) -> str:
    """'All tasks' for '*', else the task's title."""
    return "All tasks" if task == ALL_TASKS else get_task(task).title


def check_scope(task: str | None) -> str:
    """A task name or '*', stripped; ShoalError for anything else."""
    name = (task or "").strip() if isinstance(task, str) else ""
    if name != ALL_TASKS and name not in TASKS:
        raise ShoalError(f"Unknown task {task!r} for guidelines; use one of: {', '.join(guideline_scopes())} "
                         "('*': the general guidelines for all tasks).")
    return name


def _clean_body(body: str | None) -> str:
    if body is not None and not isinstance(body, str):
        raise ShoalError("Guidelines must be text.")
    text = (body or "").strip()
    if len(text) > MAX_GUIDELINE_CHARS:
        raise ShoalError(f"The guidelines are {len(text):,} characters long; at most {MAX_GUIDELINE_CHARS:,} are "
                         "kept. Shorten them, or move what is common to every task into the general ('*') ones.")
    return text


def _latest(cur_or_store, task: str) -> dict | None:
    sql = f"SELECT {_COLUMNS} FROM guidelines WHERE task = ? ORDER BY version DESC LIMIT 1"
    if isinstance(cur_or_store, Store):
        return cur_or_store.one(sql, [task])
    row = cur_or_store.execute(sql, [task]).fetchone()
    return None if row is None else dict(zip(_COLUMNS.split(", "), row))


def latest_version(store: Store, task: str) -> dict | None:
    """The latest version of `task`'s guidelines (a cleared one included: body ''), None if never written."""
    return _latest(store, check_scope(task))


def set_guidelines(store: Store, task: str, body: str | None, *, actor: str | None,
                   expected_version: int | None = None) -> dict:
    """Save `body` as the next version of `task`'s guidelines ('*': all tasks) as `actor` (None: this
    machine's own user). An empty body clears them. Returns the version row (id, task, version, body,
    author, created_at) and `changed` (False: the latest version already had this text; nothing written).

    `expected_version`: the version the editor started from (0: none yet); when another save came in
    between, StaleGuidelines is raised and nothing is written. Refused (NotAllowed, audited) unless
    `actor` is a curator or the owner; ShoalError for an unknown task or a body over 20,000 characters."""
    name = check_scope(task)
    team.authorize(store, actor, "guidelines", target=name, audit_allowed=False)
    text = _clean_body(body)
    author = str(team.local()) if actor is None else (str(actor).strip() or str(team.local()))

    def write(cur) -> dict:
        before = _latest(cur, name)
        now = 0 if before is None else int(before["version"])
        if expected_version is not None and int(expected_version) != now:
            by = f" by {before['author']}" if before else ""
            raise StaleGuidelines(f"The {scope_title(name)} guidelines changed since you opened them (now version "
                                  f"{now}{by}). Look at that version first; saving again replaces it.", now)
        if (before["body"] if before else "") == text:
            return {**(before or {"id": None, "task": name, "version": 0, "body": "", "author": None,
                                  "created_at": None}), "changed": False}
        row = cur.execute(f"INSERT INTO guidelines(task, version, body, author) VALUES (?, ?, ?, ?) "
                          f"RETURNING {_COLUMNS}", [name, now + 1, text, author]).fetchone()
        saved = dict(zip(_COLUMNS.split(", "), row))
        cur.execute("INSERT INTO audit_log(actor, action, entity, entity_id, before, after) "
                    "VALUES (?, 'guidelines.set', 'guidelines', ?, ?, ?)",
                    [author, name, None if before is None else json.dumps({"version": now, "body": before["body"]}),
                     json.dumps({"version": now + 1, "body": text})])
        return {**saved, "changed": True}

    return store.write(write)


def current_guidelines(store: Store, task: str) -> dict | None:
    """What a reviewer of a `task` example reads: {"task", "general", "own"}, where `general` is the
    latest version of the '*' guidelines and `own` that of the task's own (each a version row, or None
    when never written or cleared). None when neither has any text. For task '*', `own` is None."""
    name = (task or "").strip() if isinstance(task, str) else ""
    rows = store.rows(f"SELECT {_COLUMNS} FROM guidelines g WHERE task IN (?, ?) AND version = "
                      "(SELECT max(version) FROM guidelines WHERE task = g.task)", [ALL_TASKS, name])
    latest = {r["task"]: r for r in rows if r["body"]}
    general, own = latest.get(ALL_TASKS), latest.get(name) if name != ALL_TASKS else None
    if general is None and own is None:
        return None
    return {"task": name, "general": general, "own": own}


def guideline_history(store: Store, task: str) -> list[dict]:
    """Every version of `task`'s guidelines ('*': the general ones), newest first."""
    return store.rows(f"SELECT {_COLUMNS} FROM guidelines WHERE task = ? ORDER BY version DESC", [check_scope(task)])
