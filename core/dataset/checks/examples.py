"""The generated examples as the checks, analytics and export see them.

One row per parsed generation with the *effective* fields (a reviewer's `edited_fields`
replace `fields`), the human verdict, the latest judge verdict and the provenance. How an
example becomes an instruction / input / output row is its task's choice (TaskSpec.export_row).
"""
from __future__ import annotations

import json
import re
from typing import Any

import pandas as pd

from core.store import Store
from core.tasks import get_task

_EXAMPLES_SQL = """
SELECT g.id AS generation_id, g.task, coalesce(g.target_language, s.language) AS language,
       s.language AS source_language, g.target_language,
       g.snippet_id, g.fields, r.edited_fields, r.verdict, r.reviewer, r.note AS review_note,
       lj.overall AS judge_overall, lj.judge_model, g.generator_model, g.prompt_version_id,
       pv.task AS prompt_task, pv.version AS prompt_version, pv.content_hash AS prompt_hash,
       g.job_id, g.prefilter_ok, g.prefilter_reasons, s.code AS seed, s.source, s.repo, s.path, s.url, s.func_name, s.kind AS snippet_kind
FROM generations g
LEFT JOIN snippets s ON s.id = g.snippet_id
LEFT JOIN reviews r ON r.generation_id = g.id
LEFT JOIN latest_judgments lj ON lj.generation_id = g.id
LEFT JOIN prompt_versions pv ON pv.id = g.prompt_version_id
WHERE coalesce(g.parse_ok, TRUE) {extra}
ORDER BY g.id
"""


def _json(v: Any) -> Any:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return None
    if isinstance(v, (dict, list)):
        return v
    try:
        return json.loads(v)
    except (TypeError, ValueError):
        return None


def effective_fields(fields: Any, edited: Any) -> dict:
    """The reviewer's edit wins over the generator's fields, key by key."""
    base = _json(fields) or {}
    ed = _json(edited)
    if isinstance(ed, dict):
        base = {**base, **ed}
    return base if isinstance(base, dict) else {}


def _text(row: dict[str, str]) -> str:
    """What decontamination and near-dup look at: instruction + input + solution."""
    return "\n".join(p for p in (row["instruction"], row["input"], row["output"]) if p)


def example_text(task: str, f: dict) -> str:
    return _text(get_task(task).export_row(f))


def load_examples(store: Store, where: str = "", params: list | None = None) -> pd.DataFrame:
    """Every parsed generation with effective fields and text columns (see module doc)."""
    df = store.df(_EXAMPLES_SQL.format(extra=("AND " + where) if where else ""), params or [])
    if df.empty:
        for c in ("fields_eff", "instruction", "input", "solution", "text"):
            df[c] = pd.Series(dtype=object)
        return df
    eff = [effective_fields(f, e) for f, e in zip(df["fields"], df["edited_fields"])]
    df["fields_eff"] = eff
    rows = [get_task(t).export_row(f) for t, f in zip(df["task"], eff)]
    df["instruction"] = [r["instruction"] for r in rows]
    df["input"] = [r["input"] for r in rows]
    df["solution"] = [r["output"] for r in rows]
    df["text"] = [_text(r) for r in rows]
    df["language"] = df["language"].fillna("unknown")
    return df


_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)```", re.S)


def code_blocks(text: str, language: str | None = None) -> list[str]:
    """Fenced code blocks of `text` (those tagged `language` or untagged, if any are)."""
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(text or "")]
    if language:
        lang = language.lower()
        tagged = [b for t, b in blocks if t in (lang, "py" if lang == "python" else lang, "")]
        if tagged:
            return tagged
    return [b for _, b in blocks]


def solution_code(solution: str, language: str | None = "python") -> str:
    """The code of a solution: its fenced blocks joined, or the whole text if it has none."""
    blocks = code_blocks(solution, language)
    return "\n\n".join(blocks) if blocks else solution
