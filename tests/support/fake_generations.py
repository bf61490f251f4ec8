"""Fill a database with N realistic generated examples, judgments, snippets, a map and a selection.

Built as DataFrames and bulk-inserted, so 100k examples take seconds (tests and benchmarks).
Usage: `info = fill_fake(store, 200, seed=1)` -> dict with ids and counts.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from core.store import Store

TASKS = ("code_generation", "code_summarization", "code_translation", "code_repair", "oss_instruct")
LANGUAGES = ("python", "java", "javascript", "go", "rust")

RULES = {
    "code_generation": [
        "the instruction names the programming language",
        "the solution is the specific resolution of the instruction and the information",
        "the solution is only code, with no prose outside",
        "the solution imports what it needs",
    ],
    "code_summarization": [
        "the instruction asks for a summary of the code",
        "the summary describes what the code does",
        "the instruction is one or two sentences",
    ],
    "code_translation": [
        "the instruction names both languages",
        "the solution is written in the target language",
        "the solution keeps the behaviour of the input",
    ],
    "code_repair": [
        "the information contains a real bug",
        "the solution fixes the bug",
        "the solution imports what it needs",
    ],
    "oss_instruct": [
        "the problem is self-contained",
        "the solution solves the problem",
        "the problem is inspired by the seed but not a copy",
    ],
}

_VERBS = ("parse", "merge", "count", "filter", "normalize", "encode", "split", "load", "score", "rank")
_NOUNS = ("tokens", "records", "paths", "intervals", "matrix", "config", "events", "words", "edges", "prices")

_CODE = {
    "python": "def {name}(items, limit=10):\n    \"\"\"{verb} the {noun}.\"\"\"\n    out = []\n"
              "    for item in items[:limit]:\n        if item:\n            out.append(item)\n    return out\n",
    "java": "public static List<String> {name}(List<String> items, int limit) {{\n"
            "    // {verb} the {noun}\n    List<String> out = new ArrayList<>();\n"
            "    for (String s : items) {{ if (out.size() < limit) out.add(s); }}\n    return out;\n}}\n",
    "javascript": "function {name}(items, limit = 10) {{\n  // {verb} the {noun}\n"
                  "  return items.filter(Boolean).slice(0, limit);\n}}\n",
    "go": "func {name}(items []string, limit int) []string {{\n\t// {verb} the {noun}\n\tout := []string{{}}\n"
          "\tfor _, s := range items {{\n\t\tif len(out) < limit {{ out = append(out, s) }}\n\t}}\n\treturn out\n}}\n",
    "rust": "fn {name}(items: &[String], limit: usize) -> Vec<String> {{\n    // {verb} the {noun}\n"
            "    items.iter().take(limit).cloned().collect()\n}}\n",
}


def _code(lang: str, verb: str, noun: str, i: int) -> str:
    name = f"{verb}_{noun}_{i}" if lang in ("python", "rust", "go") else f"{verb}{noun.title()}{i}"
    return _CODE[lang].format(name=name, verb=verb, noun=noun)


def _fields(task: str, lang: str, target: str | None, code: str, verb: str, noun: str) -> dict:
    if task == "code_generation":
        return {"task_name": "code_generation",
                "instruction": f"Write a {lang} function that can {verb} a list of {noun}.",
                "information": "no input", "solution": code}
    if task == "code_summarization":
        return {"task_name": "code_summarization",
                "instruction": f"Summarize what this {lang} function does.",
                "information": code,
                "solution": f"The function takes a list of {noun}, keeps the non-empty ones and "
                            f"returns at most `limit` of them ({verb})."}
    if task == "code_translation":
        return {"task_name": "code_translation",
                "instruction": f"Translate this {lang} function to {target}.",
                "information": code, "solution": _code(target, verb, noun, 0)}
    if task == "code_repair":
        buggy = code.replace("limit", "limit - 1", 1)
        return {"task_name": "code_repair",
                "instruction": f"Fix the off-by-one bug in this {lang} function.",
                "information": buggy, "solution": code}
    return {"problem": f"You are given a list of {noun}. Implement a {lang} function to {verb} "
                       f"them, keeping at most `limit` items.\n\n```{lang}\n{code}```",
            "solution": f"```{lang}\n{code}```\nThe function walks the list once."}


def fill_fake(store: Store, n: int, seed: int = 0, n_snippets: int | None = None,
              judged_fraction: float = 0.95, pass_rate: float = 0.6, n_clusters: int = 12,
              with_map: bool = True, with_selection: bool = True, generator_model: str = "fake-gen",
              judge_model: str = "fake-judge") -> dict:
    """Insert `n` generations (+ snippets, judgments, prompt versions, map, selection)."""
    rng = np.random.default_rng(seed)
    n_snippets = n_snippets or max(1, n // 3)
    # snippets
    langs = rng.choice(LANGUAGES, size=n_snippets, p=[0.5, 0.15, 0.15, 0.1, 0.1])
    verbs = rng.choice(_VERBS, size=n_snippets)
    nouns = rng.choice(_NOUNS, size=n_snippets)
    codes = [_code(lang, v, o, i) for i, (lang, v, o) in enumerate(zip(langs, verbs, nouns))]
    salt = f"fake{seed}-"
    ids = [hashlib.sha256((salt + c).encode()).hexdigest()[:32] for c in codes]
    snippets = pd.DataFrame({
        "id": ids, "kind": "function", "source": "fake", "source_kind": "wholefile",
        "repo": [f"org/repo{i % 37}" for i in range(n_snippets)],
        "path": [f"src/mod{i % 101}.{lang}" for i, lang in enumerate(langs)],
        "func_name": [c.split("(")[0].split()[-1] for c in codes],
        "language": langs, "code": codes, "docstring": [f"{v} the {o}." for v, o in zip(verbs, nouns)],
        "start_line": 1, "end_line": [c.count("\n") for c in codes], "n_chars": [len(c) for c in codes],
    })
    store.insert_df("snippets", snippets)

    # prompt versions (one per task)
    pv = {}
    for task in TASKS:
        row = store.one("SELECT id FROM prompt_versions WHERE task = ? ORDER BY version DESC LIMIT 1", [task])
        if row is None:
            store.execute("INSERT INTO prompt_versions(task, version, content, content_hash, note) "
                          "VALUES (?, 1, ?, ?, 'fake')", [task, json.dumps({"rules": RULES[task]}), task])
            row = store.one("SELECT id FROM prompt_versions WHERE task = ? AND version = 1", [task])
        pv[task] = int(row["id"])

    # generations: explicit ids drawn from the sequence, so judgments can point at them
    gen_ids = [r[0] for r in store.execute("SELECT nextval('seq_generations') FROM range(?)", [n]).fetchall()]
    snip_idx = rng.integers(0, n_snippets, size=n)
    tasks = rng.choice(TASKS, size=n, p=[0.3, 0.2, 0.15, 0.15, 0.2])
    targets, fields, raws = [], [], []
    for i in range(n):
        s, task = snip_idx[i], tasks[i]
        lang = langs[s]
        target = None
        if task == "code_translation":
            target = str(rng.choice([lg for lg in LANGUAGES if lg != lang]))
        fd = _fields(task, lang, target, codes[s], verbs[s], nouns[s])
        targets.append(target)
        js = json.dumps(fd)
        fields.append(js)
        raws.append(js)
    generations = pd.DataFrame({
        "id": gen_ids, "snippet_id": [ids[s] for s in snip_idx], "task": tasks, "target_language": targets,
        "prompt_version_id": [pv[t] for t in tasks], "generator_model": generator_model,
        "fields": fields, "raw_text": raws, "parse_ok": True, "prefilter_ok": True,
    })
    store.insert_df("generations", generations)

    # judgments: all rules yes for a pass, one or two "no" for a fail
    judged = rng.random(n) < judged_fraction
    passed = rng.random(n) < pass_rate
    jrows = {"generation_id": [], "judge_model": [], "prompt_version_id": [], "rules": [], "overall": [],
             "analysis": [], "raw_text": [], "parse_ok": []}
    for i in np.flatnonzero(judged):
        task = tasks[i]
        rules = RULES[task]
        fails = set() if passed[i] else set(rng.choice(len(rules), size=int(rng.integers(1, 3)), replace=False))
        table = [{"rule": r, "answer": "no" if k in fails else "yes",
                  "reason": ("Violated: " if k in fails else "Holds: ") + r} for k, r in enumerate(rules)]
        jrows["generation_id"].append(gen_ids[i])
        jrows["judge_model"].append(judge_model)
        jrows["prompt_version_id"].append(pv[task])
        jrows["rules"].append(json.dumps(table))
        jrows["overall"].append(not fails)
        jrows["analysis"].append("Step by step: " + "; ".join(t["reason"] for t in table))
        jrows["raw_text"].append(json.dumps({"rules": table, "overall": "yes" if not fails else "no"}))
        jrows["parse_ok"].append(True)
    store.insert_df("judgments", pd.DataFrame(jrows))

    info = {"generation_ids": gen_ids, "snippet_ids": ids, "n": n, "n_snippets": n_snippets,
            "n_judged": int(judged.sum()), "n_passed": int((judged & passed).sum()), "map_id": None,
            "selection_id": None}
    if with_map:
        map_id = int(store.scalar(
            "INSERT INTO maps(name, model, params, n_points, n_clusters) VALUES ('fake map', 'fake', '{}', ?, ?) "
            "RETURNING id", [n_snippets, n_clusters]))
        clusters = rng.integers(0, n_clusters, size=n_snippets)
        store.insert_df("map_points", pd.DataFrame({
            "map_id": map_id, "snippet_id": ids, "x": rng.normal(size=n_snippets).astype("float32"),
            "y": rng.normal(size=n_snippets).astype("float32"), "cluster": clusters.astype("int32")}))
        sizes = np.bincount(clusters, minlength=n_clusters)
        store.insert_df("clusters", pd.DataFrame({
            "map_id": map_id, "cluster": np.arange(n_clusters, dtype="int32"),
            "label": [f"{_VERBS[c % len(_VERBS)]} {_NOUNS[(c * 3) % len(_NOUNS)]}" for c in range(n_clusters)],
            "terms": [json.dumps([{"term": _VERBS[c % len(_VERBS)], "score": 1.0}]) for c in range(n_clusters)],
            "size": sizes.astype("int32")}))
        info["map_id"] = map_id
    if with_selection:
        k = max(1, n_snippets // 2)
        name = f"fake-selection-{seed}-{gen_ids[0] if gen_ids else 0}"
        sel_id = int(store.scalar(
            "INSERT INTO selections(name, method, map_id, budget, n_items, n_candidates) "
            "VALUES (?, 'random', ?, ?, ?, ?) RETURNING id", [name, info["map_id"], k, k, n_snippets]))
        pick = rng.choice(n_snippets, size=k, replace=False)
        store.insert_df("selection_items", pd.DataFrame({
            "selection_id": sel_id, "snippet_id": [ids[i] for i in pick], "rank": np.arange(k, dtype="int32")}))
        info["selection_id"] = sel_id
    if n > 5000:
        store.checkpoint()
    return info
