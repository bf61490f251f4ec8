"""The generated examples as the checks, analytics and export see them.

One row per parsed generation with the *effective* fields (a reviewer's `edited_fields`
replace `fields`), the human verdict, the latest judge verdict and the provenance.
"""
from __future__ import annotations

import json
import re
from typing import Any

import pandas as pd

from core.store import Store

WAVECODER_TASKS = ("code_generation", "code_summarization", "code_translation", "code_repair")
NO_INPUT = {"", "no input", "none", "n/a", "<noinput>"}

_EXAMPLES_SQL = """
WITH lj AS (
    SELECT generation_id, overall, judge_model, id AS judgment_id
    FROM judgments
    QUALIFY row_number() OVER (PARTITION BY generation_id ORDER BY id DESC) = 1
)
SELECT g.id AS generation_id, g.task, coalesce(g.target_language, s.language) AS language,
       s.language AS source_language, g.target_language,
       g.snippet_id, g.fields, r.edited_fields, r.verdict, r.reviewer, r.note AS review_note,
       lj.overall AS judge_overall, lj.judge_model, g.generator_model, g.prompt_version_id,
       pv.task AS prompt_task, pv.version AS prompt_version, pv.content_hash AS prompt_hash,
       g.job_id, s.code AS seed, s.source, s.repo, s.path, s.url, s.func_name, s.kind AS snippet_kind
FROM generations g
LEFT JOIN snippets s ON s.id = g.snippet_id
LEFT JOIN reviews r ON r.generation_id = g.id
LEFT JOIN lj ON lj.generation_id = g.id
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


def instruction_of(task: str, f: dict) -> str:
    return str(f.get("problem") if task == "oss_instruct" else f.get("instruction") or "") if f else ""


def input_of(task: str, f: dict) -> str:
    """WaveCoder's `information`, or '' when it says there is no input."""
    if task == "oss_instruct":
        return ""
    info = str(f.get("information") or "")
    return "" if info.strip().lower() in NO_INPUT else info


def solution_of(f: dict) -> str:
    return str(f.get("solution") or "")


def example_text(task: str, f: dict) -> str:
    """What decontamination and near-dup look at: instruction + input + solution."""
    return "\n".join(p for p in (instruction_of(task, f), input_of(task, f), solution_of(f)) if p)


def load_examples(store: Store, where: str = "", params: list | None = None) -> pd.DataFrame:
    """Every parsed generation with effective fields and text columns (see module doc)."""
    df = store.df(_EXAMPLES_SQL.format(extra=("AND " + where) if where else ""), params or [])
    if df.empty:
        for c in ("fields_eff", "instruction", "input", "solution", "text"):
            df[c] = pd.Series(dtype=object)
        return df
    eff = [effective_fields(f, e) for f, e in zip(df["fields"], df["edited_fields"])]
    df["fields_eff"] = eff
    df["instruction"] = [instruction_of(t, f) for t, f in zip(df["task"], eff)]
    df["input"] = [input_of(t, f) for t, f in zip(df["task"], eff)]
    df["solution"] = [solution_of(f) for f in eff]
    df["text"] = [example_text(t, f) for t, f in zip(df["task"], eff)]
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
