"""Dataset versions: every export is a version, and two versions can be compared.

`export_dataset` records, in the same transaction as its `exports` row, one `export_items` row per
example it wrote: the generation id and a hash of the example's content as written
(`exported_content`: instruction, input, output, task, language, seed, tests). `diff_versions`
compares two exports by those rows — examples added, removed, and edited (same example, other
content: a reviewer's edit between the two exports) — without needing the export folders.

The texts of an edited example's two versions are found again from what the database keeps: the
generated fields and every edit a reviewer ever saved (the review rows and the audit log); the
candidate whose hash matches the version's is its text. Exports made before migration 025 have no
items: comparing one says so (export again).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from core.errors import ShoalError
from core.store import Store, insert_frame

# What of an exported example a version remembers (and a diff compares), in this order.
CONTENT_FIELDS = ("instruction", "input", "output", "task", "language", "seed", "tests")
SNIPPET_CHARS = 120      # the before/after of an edited field: this much text around the first change


def exported_content(row: dict) -> dict:
    """The content of one neutral export row (core.dataset.export.select_rows) that a version hashes."""
    prov = row.get("provenance") or {}
    return {"instruction": row.get("instruction") or "", "input": row.get("input") or "",
            "output": row.get("output") or "", "task": row.get("task"), "language": row.get("language"),
            "seed": row.get("seed") or "", "tests": prov.get("tests") or None}


def example_hash(content: dict) -> str:
    text = json.dumps({k: content.get(k) for k in CONTENT_FIELDS}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_export_items(cur: Any, export_id: int, rows: list[dict]) -> int:
    """Write the `export_items` of export `export_id` on `cur` (inside the export's transaction)."""
    if not rows:
        return 0
    import pandas as pd
    frame = pd.DataFrame({"export_id": int(export_id),
                          "generation_id": [int(r["provenance"]["generation_id"]) for r in rows],
                          "content_hash": [example_hash(exported_content(r)) for r in rows]})
    insert_frame(cur, "export_items", frame)
    return len(frame)


# --------------------------------------------------------------------------- versions

_VERSIONS_SQL = """
SELECT e.id, e.created_at, e.format, e.n_rows, e.path, e.params, e.card,
       (SELECT count(*) FROM export_items i WHERE i.export_id = e.id) AS n_items
FROM exports e {where} ORDER BY e.id DESC
"""


def _name_of(params: Any, card: Any) -> str:
    """The dataset's name: recorded with the export, else the card's title."""
    try:
        p = json.loads(params) if isinstance(params, str) else (params or {})
    except ValueError:
        p = {}
    if isinstance(p, dict) and p.get("name"):
        return str(p["name"])
    for line in str(card or "").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return ""


def _version(r: dict) -> dict:
    n_rows = int(r["n_rows"] or 0)
    return {"id": int(r["id"]), "created_at": str(r["created_at"])[:19], "format": r["format"],
            "n_rows": n_rows, "path": r["path"], "name": _name_of(r["params"], r["card"]),
            # an export without items was made before versions were recorded (unless it was empty)
            "recorded": int(r["n_items"]) > 0 or n_rows == 0}


def list_versions(store: Store) -> list[dict]:
    """Every export, newest first: id, created_at, format, n_rows, path, name, and `recorded`
    (False for an export made before versions were recorded: it cannot be compared)."""
    return [_version(r) for r in store.rows(_VERSIONS_SQL.format(where=""))]


def get_version(store: Store, export_id: int) -> dict:
    rows = store.rows(_VERSIONS_SQL.format(where="WHERE e.id = ?"), [int(export_id)])
    if not rows:
        raise ShoalError(f"There is no export #{export_id}; `shoal export versions` lists them.")
    return _version(rows[0])


# --------------------------------------------------------------------------- diff

@dataclass
class FieldChange:
    field: str
    before: str | None       # a short piece of the text around the first change (None: not found)
    after: str | None


@dataclass
class DiffItem:
    generation_id: int
    change: str              # added | removed | edited
    task: str | None
    instruction: str         # the start of the instruction (of the newer text when it has one)
    fields: list[FieldChange] = field(default_factory=list)   # edited: the fields that changed


@dataclass
class VersionDiff:
    a: dict                  # the version compared from (list_versions' shape)
    b: dict                  # the version compared to
    added: list[int]
    removed: list[int]
    edited: list[int]
    unchanged: int
    items: list[DiffItem]

    @property
    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "removed": len(self.removed), "edited": len(self.edited),
                "unchanged": self.unchanged}

    def as_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "counts": self.counts, "added": self.added, "removed": self.removed,
                "edited": self.edited, "items": [asdict(i) for i in self.items]}

    def rows(self) -> list[dict]:
        """One row per added or removed example and per changed field of an edited one (for tables)."""
        out = []
        for it in self.items:
            base = {"example": it.generation_id, "change": it.change, "task": it.task or ""}
            if it.change != "edited":
                out.append({**base, "field": "", "before": it.instruction if it.change == "removed" else "",
                            "after": it.instruction if it.change == "added" else ""})
            for f in it.fields:
                out.append({**base, "field": f.field, "before": _missing(f.before), "after": _missing(f.after)})
        return out


def _missing(text: str | None) -> str:
    return "(text not found)" if text is None else text


def _items(store: Store, export_id: int) -> dict[int, str]:
    return {int(g): h for g, h in store.execute(
        "SELECT generation_id, content_hash FROM export_items WHERE export_id = ?", [int(export_id)]).fetchall()}


def _recorded(store: Store, export_id: int) -> dict:
    v = get_version(store, export_id)
    if not v["recorded"]:
        raise ShoalError(f"Export #{export_id} was made before versions were recorded; export again "
                         "to make a version that can be compared.")
    return v


def diff_versions(store: Store, a: int, b: int) -> VersionDiff:
    """What changed from export `a` to export `b`: examples added, removed, and edited (in both,
    with other content), with each one's task and, for an edited one, the fields that changed."""
    va, vb = _recorded(store, a), _recorded(store, b)
    ia, ib = _items(store, a), _items(store, b)
    added = sorted(set(ib) - set(ia))
    removed = sorted(set(ia) - set(ib))
    edited = sorted(g for g in set(ia) & set(ib) if ia[g] != ib[g])
    texts = _known_texts(store, added + removed + edited)
    tasks = _tasks(store, added + removed + edited)
    items: list[DiffItem] = []
    for change, gids in (("added", added), ("removed", removed), ("edited", edited)):
        for g in gids:
            before = texts.get(g, {}).get(ia[g]) if g in ia else None
            after = texts.get(g, {}).get(ib[g]) if g in ib else None
            shown = after or before or {}
            item = DiffItem(g, change, tasks.get(g), _start(shown.get("instruction")))
            if change == "edited":
                item.fields = _changed_fields(before, after)
            items.append(item)
    unchanged = len(set(ia) & set(ib)) - len(edited)
    return VersionDiff(va, vb, added, removed, edited, unchanged, items)


def _start(text: str | None, limit: int = SNIPPET_CHARS) -> str:
    t = " ".join(str(text or "").split())
    return t if len(t) <= limit else t[:limit - 1] + "…"


def _changed_fields(before: dict | None, after: dict | None) -> list[FieldChange]:
    if before is None or after is None:     # one side's text is no longer in the database
        return [FieldChange("(content)", None if before is None else _start(before.get("instruction")),
                            None if after is None else _start(after.get("instruction")))]
    return [FieldChange(k, *_around_change(_str(before.get(k)), _str(after.get(k))))
            for k in CONTENT_FIELDS if before.get(k) != after.get(k)]


def _str(v: Any) -> str:
    return "" if v is None else str(v)


def _around_change(before: str, after: str, width: int = SNIPPET_CHARS) -> tuple[str, str]:
    """Both texts from a little before their first difference, `width` characters each."""
    p = 0
    while p < min(len(before), len(after)) and before[p] == after[p]:
        p += 1
    start = 0 if p < width // 2 else p - width // 4     # a change near the start: from the start

    def cut(t: str) -> str:
        piece = t[start:start + width]
        return ("…" if start else "") + piece + ("…" if start + width < len(t) else "")
    return cut(before), cut(after)


def _tasks(store: Store, gids: list[int]) -> dict[int, str]:
    if not gids:
        return {}
    return {int(g): t for g, t in store.execute(
        "SELECT id, task FROM generations WHERE id IN (SELECT unnest(?))", [gids]).fetchall()}


def _known_texts(store: Store, gids: list[int]) -> dict[int, dict[str, dict]]:
    """generation id -> content hash -> content, for every text the example has had: as generated,
    and with each edit a reviewer saved (current review rows, every reviewer's response, the audit log)."""
    from core.dataset.checks.examples import effective_fields
    from core.tasks import get_task

    if not gids:
        return {}
    base = {int(r["id"]): r for r in store.rows(
        "SELECT g.id, g.task, coalesce(g.target_language, s.language) AS language, s.code AS seed, g.fields "
        "FROM generations g LEFT JOIN snippets s ON s.id = g.snippet_id WHERE g.id IN (SELECT unnest(?))", [gids])}
    edits: dict[int, list[Any]] = {g: [None] for g in base}
    keys = [str(g) for g in base]
    for gid, ed in store.execute(
            "SELECT generation_id, edited_fields FROM review_records WHERE generation_id IN (SELECT unnest(?)) "
            "UNION ALL SELECT generation_id, edited_fields FROM review_responses "
            "WHERE generation_id IN (SELECT unnest(?))", [list(base), list(base)]).fetchall():
        edits[int(gid)].append(ed)
    for gid, before, after in store.execute(
            "SELECT entity_id, json_extract(before, '$.edited_fields'), json_extract(after, '$.edited_fields') "
            "FROM audit_log WHERE entity IN ('review', 'response') AND entity_id IN (SELECT unnest(?))",
            [keys]).fetchall():
        edits[int(gid)] += [before, after]
    out: dict[int, dict[str, dict]] = {}
    for g, r in base.items():
        try:
            spec = get_task(r["task"])
        except (ShoalError, KeyError):
            continue
        found: dict[str, dict] = {}
        for ed in edits[g]:
            f = effective_fields(r["fields"], ed)
            row = spec.export_row(f)
            content = {"instruction": row["instruction"], "input": row["input"], "output": row["output"],
                       "task": r["task"], "language": r["language"] or "unknown", "seed": r["seed"] or "",
                       "tests": spec.tests_of(f) or None}
            found.setdefault(example_hash(content), content)
        out[g] = found
    return out
