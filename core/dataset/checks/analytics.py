"""Dataset analytics as in the Magicoder paper; every function returns a DataFrame (or dict)
and the Dataset page draws it.

* task and language mix; token lengths of instructions and solutions;
* the ten Magicoder categories, each example assigned to the most similar category
  description by sentence embedding (cached in `embeddings` by text hash);
* each example's maximum TF-IDF cosine similarity to the 164 HumanEval problems
  (prompt + canonical solution);
* acceptance rate per task and per map cluster; judge vs human agreement;
* where the accepted examples' source snippets sit on the corpus map.
"""
from __future__ import annotations

import re
from typing import Callable

import duckdb
import numpy as np
import pandas as pd

from core.embed.vectors import store_vectors
from core.maps.build import latest_map_id
from core.review import agreement
from core.store import Store, register

# Magicoder's ten categories, with a short description to embed.
CATEGORIES: dict[str, str] = {
    "Algorithms & data structures": "algorithms and data structures: sorting, searching, graphs, trees, "
                                    "dynamic programming, linked lists, arrays, recursion",
    "Math & computation": "mathematics and numerical computation: arithmetic, number theory, geometry, "
                          "statistics formulas, matrices, primes",
    "Databases & SQL": "databases and SQL: queries, tables, joins, schemas, transactions, ORM, indexes",
    "System design": "system design and architecture: services, concurrency, queues, caching layers, "
                     "distributed systems, APIs, design patterns",
    "Security & cryptography": "security and cryptography: encryption, hashing, passwords, authentication, "
                               "vulnerabilities, tokens, permissions",
    "Performance optimization": "performance optimization: speed, memory usage, profiling, caching, "
                                "parallelism, efficient code, complexity",
    "Web": "web development: HTTP, HTML, CSS, JavaScript front end, REST servers, routing, requests, URLs",
    "Domain-specific": "domain-specific applications: finance, biology, games, physics simulation, "
                       "scientific and business logic",
    "UI & application design": "user interface and application design: GUI, widgets, forms, layouts, "
                               "command line tools, events, user interaction",
    "Data science & ML": "data science and machine learning: pandas dataframes, models, training, "
                         "regression, neural networks, datasets, plots",
}

_TOKEN = re.compile(r"\w+|[^\w\s]")

Embedder = Callable[[list[str]], np.ndarray]


def count_tokens(text: str) -> int:
    """Word and punctuation pieces: a tokenizer-free proxy for model tokens."""
    return len(_TOKEN.findall(text or ""))


def verdict_status(verdict, judge) -> str:
    if verdict in ("accepted", "rejected", "skipped"):
        return verdict
    return "unreviewed"


def mix(ex: pd.DataFrame) -> pd.DataFrame:
    """task, language, status -> examples."""
    if ex.empty:
        return pd.DataFrame(columns=["task", "language", "status", "examples"])
    st = [verdict_status(v if isinstance(v, str) else None, None) for v in ex["verdict"]]
    return (ex.assign(status=st).groupby(["task", "language", "status"]).size()
            .rename("examples").reset_index())


def lengths(ex: pd.DataFrame) -> pd.DataFrame:
    """One row per example and field: generation_id, task, field (instruction|solution), tokens."""
    if ex.empty:
        return pd.DataFrame(columns=["generation_id", "task", "field", "tokens"])
    ins = pd.DataFrame({"generation_id": ex["generation_id"], "task": ex["task"], "field": "instruction",
                        "tokens": [count_tokens(a + ("\n" + b if b else "")) for a, b in
                                   zip(ex["instruction"], ex["input"])]})
    sol = pd.DataFrame({"generation_id": ex["generation_id"], "task": ex["task"], "field": "solution",
                        "tokens": [count_tokens(s) for s in ex["solution"]]})
    return pd.concat([ins, sol], ignore_index=True)


# --------------------------------------------------------------------------- categories

def default_embedder(store: Store | None = None) -> Embedder:
    """all-MiniLM-L6-v2 through core.embed.run (vectors cached in DuckDB by text hash when a store is given)."""
    from core.embed import run as embed

    def run(texts: list[str]) -> np.ndarray:
        if store is None:
            return embed.encode(embed.load_model(None), texts)
        key = embed.model_key(None)
        hashes = [embed.text_hash(t) for t in texts]
        have = _cached_vectors(store, key, sorted(set(hashes)))
        missing = sorted({h for h in hashes if h not in have})
        if missing:
            by_hash = dict(zip(hashes, texts))
            vecs = embed.encode(embed.load_model(None), [by_hash[h] for h in missing])  # only when needed
            try:
                store_vectors(store, key, missing, vecs)
            except duckdb.Error:  # a read-only store still gets its analytics
                pass
            have.update(zip(missing, vecs))
        return np.stack([have[h] for h in hashes]).astype(np.float32)
    return run


def _cached_vectors(store: Store, key: str, hashes: list[str]) -> dict[str, np.ndarray]:
    if not hashes:
        return {}
    cur = store.cursor()
    register(cur, "_ana_h", pd.DataFrame({"h": hashes}))
    try:
        rows = cur.execute("SELECT e.content_hash, e.vector FROM embeddings e JOIN _ana_h ON e.content_hash = _ana_h.h "
                           "WHERE e.model = ?", [key]).fetchall()
    finally:
        cur.unregister("_ana_h")
    return {h: np.asarray(v, dtype=np.float32) for h, v in rows}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def categories(ex: pd.DataFrame, embedder: Embedder) -> pd.DataFrame:
    """generation_id, category, similarity: the closest of the ten categories to instruction + solution."""
    if ex.empty:
        return pd.DataFrame(columns=["generation_id", "category", "similarity"])
    names = list(CATEGORIES)
    cat = _unit(embedder([CATEGORIES[n] for n in names]))
    texts = [(i + "\n" + s)[:2000] for i, s in zip(ex["instruction"], ex["solution"])]
    vec = _unit(embedder(texts))
    sims = vec @ cat.T
    best = sims.argmax(axis=1)
    return pd.DataFrame({"generation_id": ex["generation_id"].to_numpy(),
                         "category": [names[b] for b in best],
                         "similarity": sims[np.arange(len(best)), best]})


# --------------------------------------------------------------------------- HumanEval similarity

def humaneval_similarity(ex: pd.DataFrame) -> pd.DataFrame:
    """generation_id, max_similarity, closest: max TF-IDF cosine to the 164 HumanEval problems."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from core.dataset.checks.benchmarks import humaneval_problems

    if ex.empty:
        return pd.DataFrame(columns=["generation_id", "max_similarity", "closest"])
    probs = humaneval_problems()
    ids = list(probs)
    bench = [probs[i]["prompt"] + probs[i]["canonical_solution"] for i in ids]
    texts = ex["text"].tolist()
    vec = TfidfVectorizer(token_pattern=r"(?u)\b\w+\b", sublinear_tf=True)
    vec.fit(bench + texts)
    sims = vec.transform(texts) @ vec.transform(bench).T   # rows are L2-normalized: a cosine
    sims = sims.toarray()
    best = sims.argmax(axis=1)
    return pd.DataFrame({"generation_id": ex["generation_id"].to_numpy(),
                         "max_similarity": sims[np.arange(len(best)), best],
                         "closest": [ids[b] for b in best]})


# --------------------------------------------------------------------------- acceptance

def _rate(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    v = frame["verdict"].where(frame["verdict"].isin(["accepted", "rejected"]), "unreviewed")
    t = pd.crosstab(frame[key], v)
    for c in ("accepted", "rejected", "unreviewed"):
        if c not in t:
            t[c] = 0
    t = t[["accepted", "rejected", "unreviewed"]]
    decided = t["accepted"] + t["rejected"]
    t["acceptance_rate"] = (t["accepted"] / decided.where(decided > 0)).astype(float)
    t["examples"] = t[["accepted", "rejected", "unreviewed"]].sum(axis=1)
    return t.reset_index()


def acceptance_by_task(ex: pd.DataFrame) -> pd.DataFrame:
    if ex.empty:
        return pd.DataFrame(columns=["task", "accepted", "rejected", "unreviewed", "acceptance_rate", "examples"])
    return _rate(ex.assign(verdict=ex["verdict"].fillna("")), "task")


def acceptance_by_cluster(store: Store, ex: pd.DataFrame, map_id: int | None = None) -> pd.DataFrame:
    map_id = map_id or latest_map_id(store)
    cols = ["cluster", "label", "accepted", "rejected", "unreviewed", "acceptance_rate", "examples"]
    if ex.empty or map_id is None:
        return pd.DataFrame(columns=cols)
    pts = store.df("SELECT p.snippet_id, p.cluster, coalesce(c.label, 'cluster ' || p.cluster) AS label "
                   "FROM map_points p LEFT JOIN clusters c ON c.map_id = p.map_id AND c.cluster = p.cluster "
                   "WHERE p.map_id = ?", [map_id])
    j = ex[["snippet_id", "verdict"]].merge(pts, on="snippet_id", how="inner")
    if j.empty:
        return pd.DataFrame(columns=cols)
    j["cluster_name"] = j["cluster"].astype(str) + ": " + j["label"].astype(str)
    out = _rate(j.assign(verdict=j["verdict"].fillna("")), "cluster_name")
    out[["cluster", "label"]] = out["cluster_name"].str.split(": ", n=1, expand=True)
    out["cluster"] = out["cluster"].astype(int)
    return out.sort_values("cluster")[cols].reset_index(drop=True)


def judge_human_agreement(store: Store, ex: pd.DataFrame | None = None) -> dict:
    """Confusion counts of judge overall vs human accept/reject, agreement rate and Cohen's kappa,
    from core.review.agreement over the whole store (`ex` is not needed; kept for callers)."""
    a = agreement(store)
    o = a["overall"]
    return {"n": o["n"], "agreement": o["agreement"], "kappa": o["kappa"],
            "table": pd.DataFrame({"judge": ["passed", "passed", "failed", "failed"],
                                   "human": ["accepted", "rejected", "accepted", "rejected"],
                                   "examples": [o["judge_yes_accepted"], o["judge_yes_rejected"],
                                                o["judge_no_accepted"], o["judge_no_rejected"]]}),
            "per_task": pd.DataFrame([{"task": k, **v} for k, v in a["per_task"].items()])}


def accepted_on_map(store: Store, ex: pd.DataFrame, map_id: int | None = None) -> pd.DataFrame:
    """Map points (x, y, cluster) with the best status of the examples generated from each snippet."""
    map_id = map_id or latest_map_id(store)
    if map_id is None:
        return pd.DataFrame(columns=["snippet_id", "x", "y", "cluster", "status"])
    pts = store.df("SELECT snippet_id, x, y, cluster FROM map_points WHERE map_id = ?", [map_id])
    rank = {"accepted": 3, "unreviewed": 2, "skipped": 2, "rejected": 1}
    best: dict[str, str] = {}
    for sid, v in zip(ex["snippet_id"], ex["verdict"]):
        s = v if isinstance(v, str) else "unreviewed"
        if rank.get(s, 0) > rank.get(best.get(sid, ""), 0):
            best[sid] = s
    pts["status"] = [best.get(s, "no example") for s in pts["snippet_id"]]
    pts["status"] = pts["status"].replace({"skipped": "unreviewed"})
    return pts


def check_summary(store: Store) -> pd.DataFrame:
    """kind, passed, failed, overridden of the current check verdicts."""
    from core.dataset.checks.results import current_checks
    cur = current_checks(store)
    if cur.empty:
        return pd.DataFrame(columns=["kind", "passed", "failed", "overridden"])
    cur["failed_"] = ~cur["passed"].astype(bool)
    cur["over_"] = cur["failed_"] & cur["overridden"].fillna(False).astype(bool)
    g = cur.groupby("kind").agg(passed=("passed", "sum"), failed=("failed_", "sum"), overridden=("over_", "sum"))
    return g.reset_index().astype({"passed": int, "failed": int, "overridden": int})
