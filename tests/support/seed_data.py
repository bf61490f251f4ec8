"""Fill a store with snippets, generations, judgments, reviews (and a map) for check/export tests."""
from __future__ import annotations

import hashlib
import json
import random

from core.store import Store

_n = [0]


def add_snippet(store: Store, code: str, language: str = "python", kind: str = "function",
                repo: str = "demo/repo", path: str = "mod.py") -> str:
    sid = hashlib.sha256(code.encode()).hexdigest()[:32]
    store.execute("INSERT INTO snippets(id, kind, source, source_kind, repo, path, func_name, language, code, n_chars) "
                  "VALUES (?, ?, 'tests', 'dir', ?, ?, 'f', ?, ?, ?) ON CONFLICT DO NOTHING",
                  [sid, kind, repo, path, language, code, len(code)])
    return sid


def add_example(store: Store, fields: dict, task: str = "code_generation", language: str = "python",
                target_language: str | None = None, verdict: str | None = None, judge: bool | None = None,
                edited: dict | None = None, reviewer: str = "alice", seed_code: str | None = None,
                generator_model: str = "gen-model", judge_model: str = "judge-model") -> int:
    _n[0] += 1
    sid = add_snippet(store, seed_code or f"def seed_{_n[0]}():\n    return {_n[0]}\n", language)
    gid = store.scalar(
        "INSERT INTO generations(snippet_id, task, target_language, generator_model, fields, raw_text, parse_ok) "
        "VALUES (?, ?, ?, ?, ?, ?, TRUE) RETURNING id",
        [sid, task, target_language, generator_model, json.dumps(fields), json.dumps(fields)])
    if judge is not None:
        rules = [{"rule": "the solution is only code", "answer": "yes" if judge else "no", "reason": "test"}]
        store.execute("INSERT INTO judgments(generation_id, judge_model, rules, overall, parse_ok) "
                      "VALUES (?, ?, ?, ?, TRUE)", [gid, judge_model, json.dumps(rules), judge])
    if verdict is not None:
        store.execute("INSERT INTO review_records(generation_id, verdict, edited_fields, reviewer, version) "
                      "VALUES (?, ?, ?, ?, 1)", [gid, verdict, None if edited is None else json.dumps(edited),
                                                 reviewer])
    return int(gid)


def wave(instruction: str, solution: str, information: str = "no input", task: str = "code_generation") -> dict:
    return {"task_name": task, "instruction": instruction, "information": information, "solution": solution}


def oss(problem: str, solution: str) -> dict:
    return {"problem": problem, "solution": solution}


TOPICS = ["parse a CSV file of orders", "compute the median of streaming numbers",
          "validate an email address", "merge overlapping intervals", "rate-limit API calls",
          "render a Markdown table", "hash passwords with a salt", "query users from SQLite",
          "train a linear regression", "build a small HTTP router", "cache Fibonacci numbers",
          "walk a directory tree", "tokenize an arithmetic expression", "encode run-length strings",
          "schedule tasks by priority", "find the shortest path in a grid"]


def distinct_python_solution(i: int) -> str:
    """Code whose identifiers differ per i (token sets far apart, unlike the templated one)."""
    rng = random.Random(1000 + i)
    names = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(7)) for _ in range(12)]
    body = "\n".join(f"    {names[k]} = {names[k - 1]} + {rng.randrange(1000)}" for k in range(1, 12))
    return f"def {names[0]}_fn({names[0]}):\n{body}\n    return {names[11]}\n"


def clean_python_solution(i: int) -> str:
    return (f"def helper_{i}(values):\n    \"\"\"Step {i}: combine the values.\"\"\"\n"
            f"    total_{i} = 0\n    for v in values:\n        total_{i} += v * {i + 1}\n"
            f"    return total_{i}\n\nprint(helper_{i}([1, 2, 3]))\n")


def demo_dataset(store: Store, n: int = 48, seed: int = 7, with_map: bool = True) -> list[int]:
    """A small mixed set: every task, several languages, verdicts, judge results, edits, a map."""
    rng = random.Random(seed)
    tasks = ["code_generation"] * 5 + ["code_summarization"] * 2 + ["code_translation"] * 2 + \
            ["code_repair"] * 2 + ["oss_instruct"] * 3
    langs = ["python"] * 4 + ["java", "javascript", "go"]
    ids = []
    for i in range(n):
        task = rng.choice(tasks)
        lang = rng.choice(langs)
        topic = TOPICS[i % len(TOPICS)]
        sol = clean_python_solution(i) if lang == "python" else f"// {topic}\nfunction f{i}(x) {{ return x * {i}; }}\n"
        if task == "oss_instruct":
            fields = oss(f"Write a {lang} program to {topic} (variant {i}).", f"```{lang}\n{sol}```")
        elif task == "code_summarization":
            fields = wave(f"Summarize what this {lang} code does.", f"It is used to {topic}, variant {i}.",
                          information=sol, task=task)
        else:
            fields = wave(f"Write a {lang} function to {topic}; variant {i} adds logging.", sol, task=task)
        verdict = rng.choice([None, None, "accepted", "accepted", "accepted", "rejected"])
        judge = rng.choice([True, True, False, None])
        edited = {"instruction": fields.get("instruction", "") + " (edited)"} if verdict == "accepted" and i % 7 == 0 \
            and task != "oss_instruct" else None
        ids.append(add_example(store, fields, task, lang, verdict=verdict, judge=judge, edited=edited,
                               target_language="rust" if task == "code_translation" and lang != "python" else None,
                               seed_code=f"# seed {i}\ndef s{i}(x):\n    return x + {i}\n"))
    if with_map:
        mid = store.scalar("INSERT INTO maps(name, model, n_points, n_clusters) VALUES ('m', 'test', 0, 4) RETURNING id")
        sids = [r[0] for r in store.execute("SELECT id FROM snippets").fetchall()]
        for j, sid in enumerate(sids):
            store.execute("INSERT INTO map_points VALUES (?, ?, ?, ?, ?)",
                          [mid, sid, rng.gauss(j % 4, 0.3), rng.gauss((j % 4) * 2, 0.3), j % 4])
        for c in range(4):
            store.execute("INSERT INTO clusters(map_id, cluster, label, size) VALUES (?, ?, ?, ?)",
                          [mid, c, f"cluster {c}", sum(1 for j in range(len(sids)) if j % 4 == c)])
    return ids
