"""Who reviews which example: assignment with overlap, balanced over the reviewers.

The owner says how many reviewers each example needs (`per_example`, 1 by default; 2–3 for an
agreement study) and, optionally, the share of examples that get that overlap (the others get one
reviewer). Examples are taken in a seeded random order and dealt round-robin: example i takes the
next `needed_i` reviewers in the rotation, so nobody reviews an example twice and every reviewer's
load differs from the others' by at most one. One SQL statement, fast at 100k examples.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from core.errors import ShoalError
from core.review.filters import QueueFilter, from_clause, where_clause
from core.store import Store
from core.team import members as team


@dataclass
class AssignResult:
    batch_id: str
    examples: int            # examples assigned by this run
    overlap_examples: int    # of those, with more than one reviewer
    rows: int                # (example, reviewer) pairs written
    per_reviewer: dict       # reviewer -> examples assigned by this run


def _scope_sql(store: Store, f: QueueFilter | None, include_reviewed: bool) -> tuple[str, list]:
    """SELECT of the candidate generation ids: in the filter, not yet assigned, and (unless
    `include_reviewed`) without a human accept/reject."""
    f = (f or QueueFilter()).with_(status="any" if include_reviewed else "todo")
    frm, _ = from_clause(store, f)
    where, p = where_clause(f)
    return (f"SELECT g.id {frm} WHERE {where} AND g.id NOT IN (SELECT generation_id FROM assignments)", p)


def assign(store: Store, reviewers: list[str], *, per_example: int = 1, overlap_share: float = 1.0,
           f: QueueFilter | None = None, include_reviewed: bool = False, seed: int = 0,
           actor: str | None = None, reset_open: bool = False) -> AssignResult:
    """Assign every unassigned example in scope to `per_example` of `reviewers` (only a share
    `overlap_share` of them gets the overlap when per_example > 1; the rest get one reviewer).

    `reset_open` first drops the assignments of examples nobody has responded to yet, so a new
    run can redistribute them (e.g. after a reviewer joined)."""
    reviewers = list(dict.fromkeys(r.strip() for r in reviewers if r and r.strip()))
    if not reviewers:
        raise ShoalError("Choose at least one reviewer to assign examples to.")
    per_example = int(per_example)
    if per_example < 1:
        raise ShoalError("Each example needs at least one reviewer.")
    if per_example > len(reviewers):
        raise ShoalError(f"{per_example} reviewers per example needs at least {per_example} reviewers; "
                         f"only {len(reviewers)} chosen.")
    share = float(overlap_share)
    if not 0.0 <= share <= 1.0:
        raise ShoalError("The overlap share is a fraction between 0 and 1.")
    batch_id = uuid.uuid4().hex
    scope, p = _scope_sql(store, f, include_reviewed)
    names = ", ".join(f"({i}, ?)" for i in range(len(reviewers)))

    def write(cur) -> AssignResult:
        if reset_open:
            cur.execute("""DELETE FROM assignments WHERE generation_id NOT IN
                           (SELECT generation_id FROM review_responses)
                           AND generation_id NOT IN (SELECT generation_id FROM adjudications)""")
        cur.execute(f"""
            CREATE OR REPLACE TEMP TABLE _assign AS
            WITH cand AS (SELECT id, hash(id, {int(seed)}) AS h, hash(id, {int(seed)}, 'overlap') AS ho
                          FROM ({scope})),
            sized AS (SELECT id, h, CASE WHEN row_number() OVER (ORDER BY ho, id) <= round(? * count(*) OVER ())
                                         THEN ? ELSE 1 END AS needed FROM cand),
            slots AS (SELECT id, needed, coalesce(sum(needed) OVER (ORDER BY h, id ROWS BETWEEN UNBOUNDED
                                                                    PRECEDING AND 1 PRECEDING), 0) AS start
                      FROM sized)
            SELECT id AS generation_id, needed, (start + unnest(range(needed))) % ? AS idx FROM slots""",
                    p + [share, per_example, len(reviewers)])
        cur.execute(f"""
            INSERT INTO assignments(generation_id, reviewer, needed, assigned_by, batch_id)
            SELECT a.generation_id, r.name, a.needed, ?, ? FROM _assign a
            JOIN (VALUES {names}) AS r(idx, name) ON r.idx = a.idx""", [actor, batch_id] + reviewers)
        examples, overlap, rows = cur.execute(
            "SELECT count(DISTINCT generation_id), count(DISTINCT generation_id) FILTER (WHERE needed > 1), "
            "count(*) FROM _assign").fetchone()
        per = dict(cur.execute("SELECT reviewer, count(*) FROM assignments WHERE batch_id = ? GROUP BY 1",
                               [batch_id]).fetchall())
        cur.execute("DROP TABLE IF EXISTS _assign")
        params = {"reviewers": reviewers, "per_example": per_example, "overlap_share": share, "seed": seed,
                  "examples": int(examples), "overlap_examples": int(overlap), "rows": int(rows)}
        cur.execute("INSERT INTO audit_log(actor, action, entity, entity_id, after, batch_id) "
                    "VALUES (?, 'team.assign', 'assignment', ?, ?, ?)", [actor, batch_id, json.dumps(params),
                                                                        batch_id])
        return AssignResult(batch_id, int(examples), int(overlap), int(rows), {k: int(v) for k, v in per.items()})

    return store.write(write)


def assign_examples(store: Store, reviewers: list[str], *, per_example: int, overlap_share: float, actor: str,
                    actor_role: str | None, include_reviewed: bool = False, reset_open: bool = False,
                    seed: int = 0) -> AssignResult:
    """The Team page's Assign button and `shoal team assign`: check the role, assign the unassigned
    examples with that overlap (`assign`), and keep the overlap as the team's setting."""
    team.authorize(store, actor, "team", target="assignment", role=actor_role, audit_allowed=False)
    res = assign(store, reviewers, per_example=per_example, overlap_share=overlap_share,
                 include_reviewed=include_reviewed, reset_open=reset_open, actor=actor, seed=seed)
    team.set_settings(store, actor=actor, actor_role=actor_role, reviewers_per_example=int(per_example),
                      overlap_share=float(overlap_share))
    return res


def needed(store_or_cur, generation_id: int) -> int:
    """How many reviewers this example needs (1 when it is not assigned)."""
    cur = store_or_cur.cursor() if isinstance(store_or_cur, Store) else store_or_cur
    v = cur.execute("SELECT max(needed) FROM assignments WHERE generation_id = ?", [int(generation_id)]).fetchone()
    return int(v[0]) if v and v[0] is not None else 1


def assignees(store: Store, generation_id: int) -> list[str]:
    return [r[0] for r in store.execute("SELECT reviewer FROM assignments WHERE generation_id = ? ORDER BY reviewer",
                                        [int(generation_id)]).fetchall()]


def has_assignments(store: Store, reviewer: str | None = None) -> bool:
    if reviewer is None:
        return bool(store.scalar("SELECT count(*) > 0 FROM (SELECT 1 FROM assignments LIMIT 1)"))
    return bool(store.scalar("SELECT count(*) > 0 FROM (SELECT 1 FROM assignments WHERE reviewer = ? LIMIT 1)",
                             [reviewer]))


def overlap_summary(store: Store) -> dict:
    """How the examples are spread over reviewers: examples per `needed`, and totals."""
    rows = store.rows("""SELECT needed, count(*) AS examples FROM
                         (SELECT generation_id, max(needed) AS needed FROM assignments GROUP BY 1)
                         GROUP BY 1 ORDER BY 1""")
    assigned = sum(int(r["examples"]) for r in rows)
    overlap = sum(int(r["examples"]) for r in rows if int(r["needed"]) > 1)
    total = int(store.scalar("SELECT count(*) FROM generations"))
    return {"generations": total, "assigned": assigned, "overlap_examples": overlap,
            "overlap_share": overlap / assigned if assigned else 0.0,
            "by_needed": {int(r["needed"]): int(r["examples"]) for r in rows}}
