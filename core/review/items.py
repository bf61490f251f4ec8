"""One example as the review screen shows it, and its current review."""
from __future__ import annotations

import json
import math
from typing import Any

from core.maps.build import latest_map_id
from core.review.common import loads
from core.store import Store


def get_review(store: Store, generation_id: int) -> dict | None:
    """The live review of a generation; None when it has none (never decided, or undone)."""
    row = store.one("SELECT * FROM reviews WHERE generation_id = ?", [int(generation_id)])
    if row is None:
        return None
    row["reasons"] = loads(row["reasons"]) or []
    row["edited_fields"] = loads(row["edited_fields"])
    return row


def current_version(store: Store, generation_id: int) -> int:
    """The version a save must name as `expected_version`: the live review's, 0 when there is none."""
    r = store.scalar("SELECT version FROM reviews WHERE generation_id = ?", [int(generation_id)])
    return int(r or 0)


def _generation(store: Store, generation_id: int) -> dict | None:
    """The generation row, with `_needed`: how many reviewers it needs (NULL when not assigned)."""
    g = store.one("SELECT *, (SELECT max(needed) FROM assignments WHERE generation_id = $1) AS _needed "
                  "FROM generations WHERE id = $1", [int(generation_id)])
    if g is None:
        return None
    g["fields"] = loads(g["fields"])
    if not isinstance(g["fields"], dict):
        g["fields"] = {"raw": "" if g["fields"] is None else str(g["fields"])}
    g["prefilter_reasons"] = loads(g.get("prefilter_reasons"))
    return g


def _judgment(store: Store, generation_id: int) -> dict | None:
    """The generation's current (newest) judgment with its rules as a list of dicts."""
    judgment = store.one("SELECT * EXCLUDE (failed_rules) FROM latest_judgments WHERE generation_id = ?",
                         [int(generation_id)])
    if judgment is not None:
        rules = loads(judgment["rules"])
        judgment["rules"] = [r for r in rules if isinstance(r, dict)] if isinstance(rules, list) else []
    return judgment


def _prompts(store: Store, generator_id, judge_id) -> tuple[dict | None, dict | None]:
    """The generation's prompt version (id, task, version, note, created_at) and the judge's (id,
    task, version), in one lookup."""
    ids = [i for i in (generator_id, judge_id) if i is not None]
    if not ids:
        return None, None
    rows = {r["id"]: r for r in store.rows(
        f"SELECT id, task, version, note, created_at FROM prompt_versions WHERE id IN ({', '.join('?' * len(ids))})",
        ids)}
    gen = rows.get(generator_id) if generator_id is not None else None
    judge = rows.get(judge_id) if judge_id is not None else None
    return (dict(gen) if gen else None,
            {k: judge[k] for k in ("id", "task", "version")} if judge else None)


def _cluster(store: Store, snippet: dict) -> dict | None:
    map_id = latest_map_id(store)
    if map_id is None or not snippet:
        return None
    return store.one(
        "SELECT mp.cluster, c.label FROM map_points mp LEFT JOIN clusters c "
        "ON c.map_id = mp.map_id AND c.cluster = mp.cluster WHERE mp.map_id = ? AND mp.snippet_id = ?",
        [map_id, snippet["id"]])


def get_item(store: Store, generation_id: int) -> dict | None:
    """Everything the review screen shows for one example (point lookups only), with `needed`: how
    many reviewers it needs (1 when it is not assigned)."""
    g = _generation(store, generation_id)
    if g is None:
        return None
    needed = int(g.pop("_needed") or 1)
    snippet = store.one("SELECT * FROM snippets WHERE id = ?", [g["snippet_id"]]) or {}
    judgment = _judgment(store, generation_id)
    prompt, judge_prompt = _prompts(store, g.get("prompt_version_id"), (judgment or {}).get("prompt_version_id"))
    return {"generation": g, "snippet": snippet, "judgment": judgment, "review": get_review(store, generation_id),
            "prompt": prompt, "judge_prompt": judge_prompt, "cluster": _cluster(store, snippet), "needed": needed}


def prefilter_stop(store: Store, generation_id: int) -> list[str] | None:
    """The pre-filter's reasons when it stopped this example before the judge, else None."""
    g = store.one("SELECT prefilter_ok, prefilter_reasons FROM generations WHERE id = ?", [generation_id])
    return stop_reasons(g)


def prefilter_reasons(value: Any) -> list[str]:
    """The pre-filter's stored reasons (a JSON list, or a list already read) as strings; [] for
    anything else (NULL, NaN from a frame, text that is not a JSON list)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if not isinstance(value, (dict, list)):
        try:
            value = json.loads(value)
        except (TypeError, ValueError):
            return []
    return [str(r) for r in value] if isinstance(value, list) else []


def stop_reasons(generation: dict | None) -> list[str] | None:
    """`prefilter_stop` of a generation row already read (its prefilter_ok and prefilter_reasons)."""
    if not generation or generation["prefilter_ok"] is None or generation["prefilter_ok"]:
        return None
    return prefilter_reasons(generation["prefilter_reasons"]) or ["stopped by the pre-filter"]


def review_view(store: Store, generation_id: int, viewer: str, *, see_all: bool = False) -> dict | None:
    """Everything the Review page draws of one example for `viewer`, each thing read once: the
    item (`get_item`), how many reviewers it `needed`, the pre-filter's `stop` reasons, the
    `version` `decide` must be given (their own response's on an overlap example, else the
    review's), `team` (an overlap example's status and the responses the viewer may see:
    `core.review.responses.team_view`; None otherwise) and its `execution` run. None when there
    is no such example; NotAllowed when `viewer` may not open it (a reviewer, not assigned to it)."""
    from core.review.responses import team_view
    from core.team import members as roles
    gid = int(generation_id)
    role = roles.acting_role(store, viewer)
    see_all = see_all and roles.allowed(role, "adjudicate")
    if not see_all:     # a reviewer opens only the examples assigned to them (also by ?g= in the URL)
        roles.authorize(store, viewer, "review", target=gid, role=role, audit_allowed=False)
    item = get_item(store, gid)
    if item is None:
        return None
    need = item["needed"]
    review = item["review"]
    team = team_view(store, gid, viewer, need, review, see_all=see_all) if need > 1 else None
    version = team["my_version"] if team else int(review["version"]) if review else 0
    return {"item": item, "needed": need, "stop": stop_reasons(item["generation"]), "version": version,
            "team": team, "execution": execution_of(store, gid)}


def execution_of(store: Store, generation_id: int) -> dict | None:
    """One example's current execution verdict (the `checks` row's detail fields + passed /
    overridden), or None when its solution never ran."""
    row = store.one("SELECT passed, overridden, detail FROM checks WHERE generation_id = ? AND kind = 'execution' "
                    "ORDER BY id DESC LIMIT 1", [generation_id])
    if row is None:
        return None
    try:
        detail = json.loads(row["detail"]) if isinstance(row["detail"], str) else {}
    except ValueError:
        detail = {}
    outcome = detail.get("outcome") or ("pass" if row["passed"] else "fail")
    return {**detail, "outcome": outcome, "passed": bool(row["passed"]), "overridden": bool(row["overridden"])}


def generation_exists(store: Store, generation_id: int) -> bool:
    """Whether there is a generated example with this id."""
    return bool(store.scalar("SELECT count(*) FROM generations WHERE id = ?", [generation_id]))


def generation_count(store: Store) -> int:
    """How many examples exist (a page polls it to notice new ones)."""
    return int(store.scalar("SELECT count(*) FROM generations") or 0)
