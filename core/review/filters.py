"""What the reviewer is looking at (`QueueFilter`) and the SQL it becomes.

Everything is SQL over the store, so the queue stays fast with 100k generations: the FROM clause
joins only what a filter and sort need, and the WHERE clause is built with parameters.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterable

from core.errors import ShoalError
from core.maps.build import latest_map_id
from core.review.common import JUDGE_CHOICES, SORTS, STATUS_CHOICES
from core.store import Store

TEAM_STATUSES = ("pending", "decided", "agreed", "conflict", "resolved")


@dataclass(frozen=True)
class QueueFilter:
    """What the reviewer is looking at. Empty tuples / 'any' / None mean no restriction."""
    tasks: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()          # snippet language or translation target
    clusters: tuple[int, ...] = ()           # clusters of `map_id` (default: the latest map)
    map_id: int | None = None
    selection_id: int | None = None
    judge: str = "any"                       # any | passed | failed | unjudged
    rule: str | None = None                  # a judge rule ...
    rule_answer: str = "no"                  # ... answered yes / no
    status: str = "todo"                     # see STATUS_CHOICES; todo = not accepted/rejected
    reviewer: str | None = None
    search: str = ""
    assigned_to: str | None = None           # only this reviewer's assigned examples; "todo" = not yet done by them
    team_status: str | None = None           # pending | decided | agreed | conflict | resolved (review_team_status)

    def __post_init__(self):
        if self.judge not in JUDGE_CHOICES:
            raise ShoalError(f"Unknown judge filter {self.judge!r}; use one of {', '.join(JUDGE_CHOICES)}.")
        if self.status not in STATUS_CHOICES:
            raise ShoalError(f"Unknown status filter {self.status!r}; use one of {', '.join(STATUS_CHOICES)}.")
        if self.rule_answer not in ("yes", "no"):
            raise ShoalError("rule_answer must be 'yes' or 'no'.")
        if self.team_status is not None and self.team_status not in TEAM_STATUSES:
            raise ShoalError(f"Unknown team status {self.team_status!r}; use one of {', '.join(TEAM_STATUSES)}.")

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("tasks", "languages", "clusters"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict | None) -> QueueFilter:
        d = dict(d or {})
        known = {f for f in cls.__dataclass_fields__}
        d = {k: v for k, v in d.items() if k in known}
        for k in ("tasks", "languages"):
            d[k] = tuple(str(x) for x in d.get(k) or ())
        d["clusters"] = tuple(int(x) for x in d.get("clusters") or ())
        return cls(**d)

    def with_(self, **changes) -> QueueFilter:
        return replace(self, **changes)


def needs_judgment(f: QueueFilter, sort: str | None = None) -> bool:
    """Whether the filter's WHERE clause or the sort key reads the judgment (`j`)."""
    return f.judge != "any" or bool(f.rule) or sort == "judge_failed_first"


def from_clause(store: Store, f: QueueFilter, sort: str | None = None, judgment: bool = True,
                ids: Iterable[int] | None = None) -> tuple[str, int | None]:
    """FROM clause joining only what the filter and sort need (each join costs a scan at 100k).

    `judgment=False` leaves out the newest judgment (`j`), for a query that reads nothing of it
    beyond the filter and sort (see `needs_judgment`). `ids`: a point lookup of these generations
    only; every joined table is cut to them first, so no join scans a whole table (the judgment
    view's window, the reviewer's assignments) to find a handful of rows."""
    only = None if ids is None else ", ".join(str(int(i)) for i in ids) or "NULL"

    def cut(table: str, key: str) -> str:
        return table if only is None else f"(SELECT * FROM {table} WHERE {key} IN ({only}))"

    gen = cut("generations", "id")
    # an assigned queue starts from the reviewer's assignments (filtered in where_clause), so
    # every scan covers their examples only
    parts = [f"FROM {cut('assignments', 'generation_id')} asg JOIN {gen} g ON g.id = asg.generation_id"
             if f.assigned_to else f"FROM {gen} g"]
    if judgment or needs_judgment(f, sort):
        parts.append(f"LEFT JOIN {cut('latest_judgments', 'generation_id')} j ON j.generation_id = g.id")
    parts.append(f"LEFT JOIN {cut('reviews', 'generation_id')} r ON r.generation_id = g.id")
    of_gens = "" if only is None else f" AND {{}} IN (SELECT snippet_id FROM generations WHERE id IN ({only}))"
    if f.languages or (f.search or "").strip():
        parts.append("LEFT JOIN snippets s ON s.id = g.snippet_id" + of_gens.format("s.id"))
    map_id = None
    if f.clusters or sort == "cluster":
        map_id = f.map_id if f.map_id is not None else latest_map_id(store)
        parts.append("LEFT JOIN map_points mp ON mp.snippet_id = g.snippet_id AND mp.map_id = "
                     + (str(int(map_id)) if map_id is not None else "NULL") + of_gens.format("mp.snippet_id"))
    return "\n".join(parts) + "\n", map_id


def _in(col: str, values: Iterable, params: list) -> str:
    values = list(values)
    params.extend(values)
    return f"{col} IN ({', '.join('?' * len(values))})"


_JUDGE_SQL = {"any": "TRUE", "passed": "j.overall", "failed": "NOT j.overall", "unjudged": "j.overall IS NULL"}
_STATUS_SQL = {
    "any": "TRUE",
    "todo": "(r.verdict IS NULL OR r.verdict = 'skipped')",
    "unreviewed": "r.verdict IS NULL",
    "reviewed": "r.verdict IN ('accepted', 'rejected')",
    "accepted": "r.verdict = 'accepted'",
    "rejected": "r.verdict = 'rejected'",
    "skipped": "r.verdict = 'skipped'",
    "edited": "r.edited_fields IS NOT NULL",
}


def _rule_condition(f: QueueFilter, p: list) -> str:
    """The judge answered the rule no (or yes). A rule it left unanswered is stored as answered no
    with "missing": true (core.generate.items) and is in `failed_rules`; it matches neither."""
    if f.rule_answer == "no":
        p.append(f.rule)
        return ("json_type(j.rules) = 'ARRAY' AND list_contains(list_transform(list_filter(CAST(j.rules AS JSON[]),"
                " lambda e: lower(e->>'answer') = 'no' AND NOT coalesce(TRY_CAST(e->>'missing' AS BOOLEAN), FALSE)),"
                " lambda e: e->>'rule'), ?)")
    p.extend([f.rule, f.rule])   # answered, and not among the failed ones
    return ("json_type(j.rules) = 'ARRAY' AND list_contains(json_extract_string(j.rules, '$[*].rule'), ?)"
            " AND NOT coalesce(list_contains(j.failed_rules, ?), FALSE)")


def _search_condition(text: str, p: list) -> str:
    if text.startswith("#") and text[1:].isdigit():
        p.append(int(text[1:]))
        return "g.id = ?"
    # RE2 with (?i) is ~5x faster than ILIKE on JSON text in DuckDB
    p.extend(["(?i)" + re.escape(text)] * 5)
    return ("(regexp_matches(CAST(g.fields AS VARCHAR), ?) OR regexp_matches(s.code, ?)"
            " OR regexp_matches(coalesce(r.note, ''), ?)"
            " OR regexp_matches(coalesce(CAST(r.edited_fields AS VARCHAR), ''), ?)"
            " OR regexp_matches(coalesce(s.func_name, ''), ?))")


def todo_condition(f: QueueFilter, p: list) -> str:
    """What is still to do: with no `assigned_to`, examples without a human accept/reject; for an
    assigned reviewer, the examples they have not accepted/rejected themselves, unless a
    one-reviewer example was decided by someone else or an overlap example was adjudicated."""
    if not f.assigned_to:
        return _STATUS_SQL["todo"]
    p.append(f.assigned_to)
    return ("((r.verdict IS NULL OR r.verdict = 'skipped') OR asg.needed > 1)"
            " AND g.id NOT IN (SELECT generation_id FROM review_responses WHERE reviewer = ?"
            " AND verdict IN ('accepted', 'rejected'))"
            " AND g.id NOT IN (SELECT generation_id FROM adjudications)")


def status_condition(f: QueueFilter, p: list) -> str:
    """The status part of the filter alone (where_clause with status "any" is the rest)."""
    return todo_condition(f, p) if f.status == "todo" else _STATUS_SQL[f.status]


def where_clause(f: QueueFilter) -> tuple[str, list]:
    """The WHERE clause (without the keyword) and its parameters for a filter."""
    conds: list[str] = ["TRUE"]
    p: list[Any] = []
    if f.tasks:
        conds.append(_in("g.task", f.tasks, p))
    if f.languages:
        conds.append(f"({_in('s.language', f.languages, p)} OR {_in('g.target_language', f.languages, p)})")
    if f.clusters:
        conds.append(_in("mp.cluster", f.clusters, p))
    if f.selection_id is not None:
        conds.append("g.snippet_id IN (SELECT snippet_id FROM selection_items WHERE selection_id = ?)")
        p.append(int(f.selection_id))
    conds.append(_JUDGE_SQL[f.judge])
    if f.rule:
        conds.append(_rule_condition(f, p))
    if f.assigned_to:
        conds.append("asg.reviewer = ?")          # from_clause joins the assignments as `asg`
        p.append(f.assigned_to)
    conds.append(status_condition(f, p))
    if f.team_status:
        conds.append("g.id IN (SELECT generation_id FROM review_team_status WHERE status = ?)")
        p.append(f.team_status)
    if f.reviewer:
        conds.append("r.reviewer = ?")
        p.append(f.reviewer)
    text = (f.search or "").strip()
    if text:
        conds.append(_search_condition(text, p))
    return " AND ".join(conds), p


def sort_keys(sort: str, seed: int) -> tuple[str, str]:
    """(k1, k2) expressions; the queue is ordered by k1, then k2 (both ascending, k2 unique)."""
    if sort == "judge_failed_first":
        return "(CASE WHEN j.overall = FALSE THEN 0 WHEN j.overall IS NULL THEN 1 ELSE 2 END)", "g.id"
    if sort == "random":
        return f"CAST(hash(g.id, {int(seed)}) >> 1 AS BIGINT)", "g.id"
    if sort == "cluster":
        return "coalesce(mp.cluster, 2147483647)", "g.id"
    if sort == "newest":
        return "(g.id * 0)", "-g.id"
    if sort == "oldest":
        return "(g.id * 0)", "g.id"
    raise ShoalError(f"Unknown sort {sort!r}; use one of {', '.join(SORTS)}.")
