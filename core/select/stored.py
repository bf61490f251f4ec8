"""Stored selections: saving one (its items in pick order, its coverage and the spread of random
draws), and reading them back — by name, their snippet ids, the list, the coverage table."""
from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd

from core.errors import ShoalError
from core.store import Store, insert_frame


def name_taken(name: str) -> str:
    return f"A selection named “{name}” already exists. Pick another name (or replace it)."


def selection_id(store: Store, name: str) -> int | None:
    """The id of the selection called `name` (None when there is none)."""
    row = store.one("SELECT id FROM selections WHERE name = ?", [name])
    return None if row is None else int(row["id"])


def selection_named_or_numbered(store: Store, value: str) -> int | None:
    """The id of the selection called `value`, or numbered `value` (None when there is none)."""
    return store.scalar("SELECT id FROM selections WHERE name = ? OR CAST(id AS VARCHAR) = ?", [value, value])


def find_selection(store: Store, name: str) -> int:
    """The id of the selection called `name`; an error naming the newest ones when there is none."""
    found = selection_id(store, name)
    if found is None:
        names = [r["name"] for r in store.rows("SELECT name FROM selections ORDER BY id DESC LIMIT 10")]
        raise ShoalError(f"No selection named {name!r}." + (f" Known: {', '.join(names)}" if names
                                                              else " Make one on the Map page or with `shoal select`."))
    return found


def selection_items(store: Store, sel_id: int, limit: int | None = None) -> list[str]:
    """The snippet ids of selection `sel_id` in the order they were picked (the first `limit`)."""
    sql, params = "SELECT snippet_id FROM selection_items WHERE selection_id = ? ORDER BY rank", [int(sel_id)]
    if limit is not None:
        sql, params = sql + " LIMIT ?", params + [int(limit)]
    return [r[0] for r in store.execute(sql, params).fetchall()]


def selection_ids(store: Store, name: str, limit: int | None = None) -> list[str]:
    """The snippet ids of the selection called `name`, in pick order (an error when there is none)."""
    return selection_items(store, find_selection(store, name), limit)


def save_selection(store: Store, *, name: str, method: str, map_id: int | None, model: str, params: dict,
                   budget: int, snippet_ids: list[str], n_candidates: int, cov: dict, spread: dict | None,
                   replaces: int | None = None) -> int:
    """Store a selection (replacing selection `replaces` in the same transaction); its id.
    A name saved a moment ago by another tab, process or a second click is a plain error."""
    def save(cur) -> int:
        if replaces is not None:
            cur.execute("DELETE FROM selection_items WHERE selection_id = ?", [replaces])
            cur.execute("DELETE FROM selections WHERE id = ?", [replaces])
        new_id = cur.execute(
            "INSERT INTO selections(name, method, map_id, model, params, budget, n_items, n_candidates, "
            "coverage_mean, coverage_max, coverage_spread) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            [name, method, map_id, model, json.dumps(params), budget, len(snippet_ids), n_candidates,
             cov["coverage_mean"], cov["coverage_max"], json.dumps(spread) if spread else None]).fetchone()[0]
        items = pd.DataFrame({"selection_id": new_id, "snippet_id": snippet_ids,
                              "rank": np.arange(len(snippet_ids), dtype=np.int32)})
        insert_frame(cur, "selection_items", items)
        return int(new_id)

    try:
        return store.write(save)
    except duckdb.ConstraintException:
        raise ShoalError(name_taken(name)) from None


def stored_spread(store: Store, sel_id: int) -> dict | None:
    """The spread of random draws stored with a selection (core.select.spread); None when it was not
    measured (a selection made without baselines, or before the spread was stored)."""
    raw = store.scalar("SELECT coverage_spread FROM selections WHERE id = ?", [int(sel_id)])
    return json.loads(raw) if isinstance(raw, str) else raw


def save_spread(store: Store, sel_id: int, spread: dict) -> None:
    """Store the spread measured for a selection after it was made."""
    store.write(lambda cur: cur.execute("UPDATE selections SET coverage_spread = ? WHERE id = ?",
                                        [json.dumps(spread), int(sel_id)]))


def selection_names(store: Store) -> list[str]:
    """Every selection's name, newest first."""
    return [r[0] for r in store.execute("SELECT name FROM selections ORDER BY id DESC").fetchall()]


def list_selections(store: Store) -> pd.DataFrame:
    return store.df("SELECT id, name, method, map_id, model, budget, n_items, n_candidates, coverage_mean, "
                    "coverage_max, params, coverage_spread, created_at FROM selections ORDER BY id DESC")


def compare_coverage(store: Store, selection_id: int) -> pd.DataFrame:
    """Coverage of a stored selection next to the baselines measured with it (same pool, same budget)."""
    sel = store.one("SELECT * FROM selections WHERE id = ?", [selection_id])
    if sel is None:
        raise ShoalError(f"No selection with id {selection_id}.")
    params = json.loads(sel["params"]) if sel["params"] else {}
    rows = [{"method": f"{sel['method']} (this selection)", "coverage_mean": sel["coverage_mean"],
             "coverage_max": sel["coverage_max"]}]
    for m, c in (params.get("baselines") or {}).items():
        rows.append({"method": m, "coverage_mean": c["coverage_mean"], "coverage_max": c["coverage_max"]})
    out = pd.DataFrame(rows)
    out["picks"] = sel["n_items"]
    out["candidates"] = sel["n_candidates"]
    return out
