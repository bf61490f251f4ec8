"""Comments on an example (as Argilla / Label Studio have): anyone who may open the example on the
Review page may comment on it; comments are kept with the example, listed oldest first with their
author and time; a person deletes their own, curators and the owner anyone's.

Roles are checked here, in core (core.team.members.authorize): "comment" for adding (a reviewer only on the
examples assigned to them, the rule "review" has) and for deleting one's own, "moderate_comments"
for deleting someone else's. Every add and delete writes an audit row (`comment.add`,
`comment.delete`, entity "comment"); a refusal is audited by authorize as `<action>.refused`.
A deleted comment keeps its row with `deleted_at` set and is listed no more.

The body is stored as typed (stripped): whoever shows it shows it as text (st.text, ui.text.plain).
"""
from __future__ import annotations

import json
from typing import Iterable

from core.errors import ShoalError
from core.review.common import require_reviewer
from core.store import Store
from core.team import members as team

MAX_COMMENT_CHARS = 4000

_COLUMNS = "id, generation_id, author, body, created_at"


def _author(actor: str | None) -> str:
    """Who signs: this machine's own user for None (the CLI), else the actor's name."""
    return str(team.local()) if actor is None else require_reviewer(str(actor))


def _clean_body(body: str | None) -> str:
    if body is not None and not isinstance(body, str):
        raise ShoalError("A comment must be text.")
    text = (body or "").strip()
    if not text:
        raise ShoalError("The comment is empty: write something first.")
    if len(text) > MAX_COMMENT_CHARS:
        raise ShoalError(f"The comment is {len(text):,} characters long; at most {MAX_COMMENT_CHARS:,} are "
                         "kept. Shorten it (or split it in two).")
    return text


def add_comment(store: Store, generation_id: int, body: str, *, actor: str | None) -> dict:
    """Add a comment to example `generation_id` as `actor` (None: this machine's own user); returns
    the comment. Refused (NotAllowed, audited) for someone who may not open the example; ShoalError
    for an empty or too long body, or an example that does not exist."""
    gid = int(generation_id)
    team.authorize(store, actor, "comment", target=gid, audit_allowed=False)   # a reviewer: own queue
    author = _author(actor)
    text = _clean_body(body)

    def write(cur) -> dict:
        if not cur.execute("SELECT count(*) FROM generations WHERE id = ?", [gid]).fetchone()[0]:
            raise ShoalError(f"There is no generated example #{gid}.")
        row = cur.execute(f"INSERT INTO comments(generation_id, author, body) VALUES (?, ?, ?) RETURNING {_COLUMNS}",
                          [gid, author, text]).fetchone()
        comment = dict(zip(_COLUMNS.split(", "), row))
        cur.execute("INSERT INTO audit_log(actor, action, entity, entity_id, after) "
                    "VALUES (?, 'comment.add', 'comment', ?, ?)",
                    [author, str(comment["id"]), json.dumps({"generation_id": gid, "body": text})])
        return comment

    return store.write(write)


def list_comments(store: Store, generation_id: int) -> list[dict]:
    """The example's live comments, oldest first: id, generation_id, author, body, created_at."""
    return store.rows(f"SELECT {_COLUMNS} FROM comments WHERE generation_id = ? AND deleted_at IS NULL "
                      "ORDER BY created_at, id", [int(generation_id)])


def comments_for(store: Store, generation_ids: Iterable[int]) -> dict[int, list[dict]]:
    """generation id -> its live comments (oldest first) for many examples at once; examples without
    comments are left out (the export carries them as provenance)."""
    ids = sorted({int(g) for g in generation_ids})
    if not ids:
        return {}
    out: dict[int, list[dict]] = {}
    for r in store.rows(f"SELECT {_COLUMNS} FROM comments WHERE deleted_at IS NULL "
                        "AND generation_id IN (SELECT unnest(?::BIGINT[])) ORDER BY generation_id, created_at, id",
                        [ids]):
        out.setdefault(int(r["generation_id"]), []).append(r)
    return out


def delete_comment(store: Store, comment_id: int, *, actor: str | None) -> dict:
    """Delete comment `comment_id` as `actor`: their own ("comment"), or anyone's for a curator or the
    owner ("moderate_comments"). Audited; returns the deleted comment."""
    cid = int(comment_id)
    row = store.one(f"SELECT {_COLUMNS}, deleted_at FROM comments WHERE id = ?", [cid])
    if row is None or row["deleted_at"] is not None:
        raise ShoalError(f"There is no comment #{cid}" + (" (it was deleted)." if row else "."))
    author = _author(actor)
    own = row["author"] == author
    team.authorize(store, actor, "comment" if own else "moderate_comments",
                   target=None if own else f"comment {cid}", audit_allowed=False)

    def write(cur) -> dict:
        done = cur.execute("UPDATE comments SET deleted_at = current_timestamp WHERE id = ? AND deleted_at IS NULL "
                           "RETURNING deleted_at", [cid]).fetchone()
        if done is None:
            raise ShoalError(f"Comment #{cid} was deleted in the meantime.")
        cur.execute("INSERT INTO audit_log(actor, action, entity, entity_id, before, after) "
                    "VALUES (?, 'comment.delete', 'comment', ?, ?, ?)",
                    [author, str(cid), json.dumps({"generation_id": row["generation_id"], "author": row["author"],
                                                   "body": row["body"]}),
                     json.dumps({"deleted_by": author})])
        return {k: row[k] for k in _COLUMNS.split(", ")}

    return store.write(write)
