"""`check_runs` / `checks` rows: record a run, read the current verdicts, override one.

The current verdict of a check kind for a generation is its latest `checks` row. A failing
check keeps a generation out of the export unless a person overrode it; an override is
carried over to later runs of the same kind while the check keeps failing.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

import pandas as pd

from core.errors import ShoalError
from core.store import Store, insert_frame
from core.team import members as team

KINDS = ("decontamination", "near_duplicate", "execution", "semantic_duplicate", "semantic_decontamination")


def record_run(store: Store, kind: str, params: dict, summary: dict,
               results: Iterable[tuple[int, bool, Any]]) -> int:
    """One `check_runs` row and one `checks` row per (generation_id, passed, detail)."""
    results = list(results)

    def write(cur) -> int:
        run_id = cur.execute(
            "INSERT INTO check_runs(kind, params, summary) VALUES (?, ?, ?) RETURNING id",
            [kind, json.dumps(params, default=str), json.dumps(summary, default=str)]).fetchone()[0]
        prior = {int(g) for (g,) in cur.execute(
            """SELECT generation_id FROM checks WHERE kind = ?
               QUALIFY row_number() OVER (PARTITION BY generation_id ORDER BY id DESC) = 1
               AND overridden""", [kind]).fetchall()}
        frame = pd.DataFrame({
            "run_id": run_id,
            "generation_id": [int(g) for g, _, _ in results],
            "kind": kind,
            "passed": [bool(p) for _, p, _ in results],
            "detail": [json.dumps(d, default=str) for _, _, d in results],
            "overridden": [(not p) and int(g) in prior for g, p, _ in results],
        })
        if not frame.empty:
            insert_frame(cur, "checks", frame)
        return run_id

    run_id = store.write(write)
    store.checkpoint()
    return int(run_id)


def current_checks(store: Store, kind: str | None = None) -> pd.DataFrame:
    """The latest `checks` row per (generation, kind): generation_id, kind, passed, overridden, detail."""
    where = "WHERE kind = ?" if kind else ""
    return store.df(f"""
        SELECT id AS check_id, run_id, generation_id, kind, passed, overridden, detail, created_at
        FROM checks {where}
        QUALIFY row_number() OVER (PARTITION BY generation_id, kind ORDER BY id DESC) = 1
        ORDER BY generation_id, kind""", [kind] if kind else [])


def check_groups(store: Store, kind: str, fields: tuple[str, ...]) -> list[dict]:
    """The groups of the latest run of a grouping check (near or semantic duplicates): the kept example
    and each member with its current state and `fields` of its detail; groups of one left out."""
    groups: dict[int, dict] = {}
    for _, row in current_checks(store, kind).iterrows():
        d = json.loads(row["detail"]) if row["detail"] else {}
        if not d.get("group"):
            continue
        grp = groups.setdefault(int(d["group"]), {"group": int(d["group"]), "keep": d["keep"], "members": []})
        grp["members"].append({"generation_id": int(row["generation_id"]), "passed": bool(row["passed"]),
                               "overridden": bool(row["overridden"]), **{f: d.get(f) for f in fields}})
    return [g for g in sorted(groups.values(), key=lambda g: g["group"]) if len(g["members"]) > 1]


def blocking_checks(store: Store) -> dict[int, list[str]]:
    """generation_id -> kinds whose current verdict fails and is not overridden."""
    df = current_checks(store)
    if df.empty:
        return {}
    bad = df[(~df["passed"].astype(bool)) & (~df["overridden"].fillna(False).astype(bool))]
    out: dict[int, list[str]] = {}
    for g, k in zip(bad["generation_id"], bad["kind"]):
        out.setdefault(int(g), []).append(k)
    return out


def set_override(store: Store, generation_id: int, kind: str, overridden: bool = True,
                 actor: str | None = None) -> None:
    """A person says a failing check should (not) keep this example out of the export."""
    team.authorize(store, actor, "checks", target=generation_id, audit_allowed=False)   # audited below
    row = store.one("""SELECT id, passed, overridden FROM checks WHERE generation_id = ? AND kind = ?
                       ORDER BY id DESC LIMIT 1""", [generation_id, kind])
    if row is None:
        raise ShoalError(f"No {kind} check recorded for generation {generation_id}.")

    def write(cur) -> None:
        cur.execute("UPDATE checks SET overridden = ? WHERE id = ?", [overridden, row["id"]])
        store.audit("check_override" if overridden else "check_override_removed", "checks", row["id"],
                    before={"overridden": bool(row["overridden"])}, after={"overridden": overridden,
                    "generation_id": generation_id, "kind": kind}, actor=actor)

    store.write(write)


def latest_run(store: Store, kind: str) -> dict | None:
    row = store.one("SELECT id, kind, params, summary, created_at FROM check_runs WHERE kind = ? "
                    "ORDER BY id DESC LIMIT 1", [kind])
    if row:
        row["params"] = json.loads(row["params"]) if row["params"] else {}
        row["summary"] = json.loads(row["summary"]) if row["summary"] else {}
    return row


def check_filter_sql(kind: str | None = None, state: str = "failed", id_column: str = "g.id") -> tuple[str, list]:
    """A WHERE predicate (and its parameters) on a generation id column for the review queue:
    state 'failed' (current verdict fails, not overridden), 'passed', 'overridden' or 'unchecked';
    kind None means any check kind."""
    if kind is not None and kind not in KINDS:
        raise ShoalError(f"Unknown check kind {kind!r}; use one of {', '.join(KINDS)}.")
    cond = {"failed": "NOT passed AND NOT coalesce(overridden, FALSE)", "passed": "passed",
            "overridden": "NOT passed AND coalesce(overridden, FALSE)"}
    kind_sql, params = ("kind = ? AND ", [kind]) if kind else ("", [])
    latest = (f"SELECT generation_id FROM (SELECT generation_id, passed, overridden FROM checks "
              f"WHERE {kind_sql}TRUE QUALIFY row_number() OVER (PARTITION BY generation_id, kind ORDER BY id DESC) = 1)")
    if state == "unchecked":
        return f"{id_column} NOT IN ({latest})", params
    if state not in cond:
        raise ShoalError("Check filter state must be failed, passed, overridden or unchecked.")
    return f"{id_column} IN ({latest} WHERE {cond[state]})", params
