"""Semantic duplicates and leaks: the checks MinHash and substring matching cannot make.

Two examples that say the same thing in other words, or an example that paraphrases a
HumanEval / MBPP problem with renamed identifiers, share few tokens but lie close together in
embedding space. Both checks embed texts with the corpus's sentence-transformers model
(core.embed.run), caching every vector in `embeddings` by (text hash, model) like the snippet
vectors, so a rerun embeds nothing new; search is exact inner product over unit vectors
(cosine) with faiss (IndexFlatIP: `range_search` for every pair above a threshold, `search`
for the k nearest benchmark problems), which is BLAS matrix products in blocks, not Python loops.

* **Semantic duplicates** (`run_semantic_duplicates`): groups of examples whose cosine is at
  least the threshold. Groups do not chain: a member must be similar to its group's kept
  example, not merely to some other member. Examples are taken in keep order (accepted by a
  person, else passed by the judge, else the oldest); each one not yet in a group keeps a group
  of the others above the threshold to it. One per group is kept, the others fail the check
  until a person keeps another one (`keep_semantic`) or overrides it.
* **Semantic decontamination** (`run_semantic_decontamination`): every example's nearest
  benchmark problems; an example whose best cosine is at least the threshold fails, and its
  detail carries both texts for a side-by-side view (`semantic_leaks`).

Both run on MiniLM (torch / fast) by default. `backend="static"` runs them on the static table
(core.embed.static: hundreds of times faster, its own cache key and leak threshold), and
`shortlist=True` lets static vectors pick the examples MiniLM then checks; bench/bench_static.py
measured both on the planted set, and neither is what `auto` picks (LEAK_SHORTLIST's note says why).
"""
from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from core.background import TaskKind
from core.dataset.checks.benchmarks import BenchmarkString, humaneval_problems, load_benchmarks, parse_spec
from core.dataset.checks.neardup import groups_around_keepers
from core.embed.vectors import missing_hashes, store_vectors
from core.errors import MissingDependency, ShoalError
from core.progress import ProgressFn, check_cancel, report
from core.store import Store, register
from core.team import members as team

DUP_KIND = "semantic_duplicate"
LEAK_KIND = "semantic_decontamination"
DEFAULT_DUP_THRESHOLD = 0.90
# planted set (tests/core/dataset/checks/test_semantic.py): paraphrases 0.50-0.92 to their source, clean stdlib
# examples <= 0.589 (PyTorch) / 0.595 (fast ONNX int8); 0.62 keeps recall 0.89 with no clean example
# flagged on both backends (0.65 lost three paraphrases on the fast one)
DEFAULT_LEAK_THRESHOLD = 0.62
NEAREST_K = 3
# Static vectors in the leak check, measured on the planted set (bench/bench_static.py; README, Performance):
# alone, no clean example is flagged from 0.80 up, where recall is 0.455 (MiniLM at 0.62: 0.891), so they
# are never the default. As a shortlist (`shortlist=True`: MiniLM embeds only the examples whose static
# nearest cosine is >= LEAK_SHORTLIST) 0.60 keeps every paraphrase MiniLM flags but passes on 79 % of the
# clean examples: 20 % less embedding, so it is offered, not chosen by `auto`.
LEAK_SHORTLIST = 0.60
STATIC_LEAK_THRESHOLD = 0.80   # the leak threshold when the check runs on static vectors (threshold None)
SIDE_BY_SIDE_CHARS = 2000
EMBED_CHARS = 4000
MAX_GROUP_LISTED = 50
SEMANTIC_CHECKS = TaskKind("semantic_checks", "A semantic check run",
                           cancelled="Cancelled: vectors embedded so far are kept; running again continues from there.")


def _faiss():
    try:
        import faiss
    except ImportError:
        raise MissingDependency("The semantic checks", "faiss-cpu") from None
    return faiss


# --------------------------------------------------------------------------- vectors (cached like snippets')

def resolve_backend(store: Store, model: str | None, backend: str = "auto") -> str:
    """torch or fast. `auto`: the backend of the latest semantic run with this model (its vectors are
    cached, and its thresholds were read on them), else core.embed.choice's pick for this machine."""
    from core.embed import run as embed
    from core.embed.choice import choose_backend

    if backend != "auto":
        return backend
    name = embed.model_key(model, "torch")
    for kind in (DUP_KIND, LEAK_KIND):
        run = latest_semantic_run(store, kind)
        key = ((run or {}).get("params") or {}).get("model_key")
        if key and embed.split_key(key)[0] == name:
            return embed.split_key(key)[1]
    return choose_backend(model, "auto").backend


def text_vectors(store: Store, texts: Sequence[str], model: str | None = None, backend: str = "auto",
                 batch_size: int = 32, progress: ProgressFn | None = None,
                 cancel: threading.Event | None = None) -> tuple[np.ndarray, dict]:
    """Unit vectors (n, dim) of `texts`, from the `embeddings` cache by (text hash, model key);
    texts not cached yet are embedded (longest first, written chunk by chunk) and cached."""
    from core.embed import run as embed

    backend = resolve_backend(store, model, backend)
    key = embed.model_key(model, backend)
    texts = [t[:EMBED_CHARS] for t in texts]
    hashes = [embed.text_hash(t) for t in texts]
    unique = dict(zip(hashes, texts))
    missing = missing_hashes(store, key, list(unique)) if unique else set()
    todo = sorted(missing, key=lambda h: -len(unique[h]))
    report(progress, 0, len(todo), f"{len(unique) - len(todo)} cached, {len(todo)} to embed ({backend})")
    if todo:
        st_model = embed.load_model(model, backend)
        chunk = embed.STATIC_CHUNK if backend == "static" else batch_size * embed.CHUNK_BATCHES
        started = time.perf_counter()
        for s in range(0, len(todo), chunk):
            check_cancel(cancel)
            part = todo[s:s + chunk]
            store_vectors(store, key, part, embed.encode(st_model, [unique[h] for h in part], batch_size))
            done = min(s + chunk, len(todo))
            report(progress, done, len(todo), f"embedding, {done / max(time.perf_counter() - started, 1e-9):.0f}/s")
        store.checkpoint()
    vectors = cached_vectors(store, key, hashes)
    if vectors is None:
        raise ShoalError("Some embedded texts are missing from the vector cache; run the check again.")
    return vectors, {"model_key": key, "backend": backend, "n_texts": len(texts), "n_embedded": len(todo)}


def _cached_table(store: Store, key: str, uniq: Sequence[str]):
    """(ord, vector) rows of the cached vectors of `uniq` under `key`, in order, as an Arrow table."""
    import warnings

    cur = store.cursor()
    register(cur, "_sem_want", pd.DataFrame({"content_hash": list(uniq), "ord": np.arange(len(uniq))}))
    try:
        with warnings.catch_warnings():  # "Arrow output on a DB-API result makes an extra copy"
            warnings.simplefilter("ignore")
            return cur.execute("SELECT w.ord, e.vector FROM _sem_want w JOIN embeddings e "
                               "ON e.content_hash = w.content_hash AND e.model = ? ORDER BY w.ord",
                               [key]).to_arrow_table()
    finally:
        cur.unregister("_sem_want")


def cached_vectors(store: Store, key: str, hashes: Sequence[str]) -> np.ndarray | None:
    """Unit vectors of `hashes` (in order) under `key` read as one Arrow column; None if any is not cached."""
    from core.embed.vectors import arrow_to_matrix

    if not hashes:
        return np.zeros((0, 0), dtype=np.float32)
    uniq = list(dict.fromkeys(hashes))
    table = _cached_table(store, key, uniq)
    if table.num_rows < len(uniq):
        return None
    m = arrow_to_matrix(table.column("vector"))
    pos = {h: i for i, h in enumerate(uniq)}
    m = m[[pos[h] for h in hashes]] if len(uniq) < len(hashes) else m
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


def n_uncached(store: Store, key: str, hashes: Sequence[str]) -> int:
    uniq = list(dict.fromkeys(hashes))
    return len(uniq) - _cached_table(store, key, uniq).num_rows


# --------------------------------------------------------------------------- search and grouping

def similar_pairs(vectors: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """Every pair (i < j) of rows with cosine >= threshold (exact: faiss range search, inner product)."""
    if not 0 < threshold <= 1:
        raise ShoalError("The semantic similarity threshold must be in (0, 1].")
    if len(vectors) < 2:
        return []
    faiss = _faiss()
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    # faiss keeps results strictly above the radius; step just below so "at least" holds
    lims, sims, ids = index.range_search(vectors, float(np.nextafter(np.float32(threshold), np.float32(-1))))
    out = []
    for i in range(len(vectors)):
        for j, s in zip(ids[lims[i]:lims[i + 1]], sims[lims[i]:lims[i + 1]]):
            if j > i:
                out.append((i, int(j), float(s)))
    return out


@dataclass
class BenchmarkProblem:
    benchmark: str
    item: str
    text: str        # problem statement + solution, what is embedded and shown side by side


def benchmark_problems(strings: Iterable[BenchmarkString]) -> list[BenchmarkProblem]:
    """One text per benchmark problem: its statement fields, then its code fields. HumanEval uses
    the full prompt (signature + docstring) and canonical solution."""
    parts: dict[tuple[str, str], list[str]] = {}
    for s in strings:
        if s.benchmark != "humaneval":
            parts.setdefault((s.benchmark, s.item), []).append(s.text)
    out = [BenchmarkProblem(b, i, "\n".join(t)) for (b, i), t in parts.items()]
    if any(s.benchmark == "humaneval" for s in strings):
        out = [BenchmarkProblem("humaneval", tid, p["prompt"] + p["canonical_solution"])
               for tid, p in humaneval_problems().items()] + out
    return out


def nearest(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(cosines, indices), each (n, k): the k nearest rows of `base` for each query (exact)."""
    faiss = _faiss()
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    return index.search(queries, min(k, len(base)))


# --------------------------------------------------------------------------- the checks, recorded

def _examples(store: Store, where: str = "") -> pd.DataFrame:
    from core.dataset.checks.examples import load_examples
    return load_examples(store, where)


def _keep_order(ex: pd.DataFrame) -> list[int]:
    """Rows in keep order: accepted by a person, then passed by the judge, then oldest first."""
    accepted = (ex["verdict"] == "accepted").to_numpy()
    judged = ex["judge_overall"].fillna(False).astype(bool).to_numpy()
    rank = np.where(accepted, 0, np.where(judged, 1, 2))
    return list(np.lexsort((ex["generation_id"].to_numpy(), rank)))


def duplicate_candidates(store: Store) -> pd.DataFrame:
    """The examples the duplicate check groups: every one a person has not rejected."""
    return _examples(store, "coalesce(r.verdict, '') <> 'rejected'")


def duplicate_details(ex: pd.DataFrame, vectors: np.ndarray, threshold: float) -> tuple[dict[int, dict], int, int]:
    """generation_id -> its group detail (members only), the number of pairs and of groups."""
    ids = ex["generation_id"].astype(int).tolist()
    pairs = similar_pairs(vectors, threshold)
    groups = groups_around_keepers(_keep_order(ex), pairs)
    detail_of: dict[int, dict] = {}
    for grp in groups:
        keep = ids[grp["keep"]]
        members = [ids[i] for i, _ in grp["members"]]
        for i, sim in grp["members"]:
            detail_of[ids[i]] = {"group": keep, "keep": keep, "members": members[:MAX_GROUP_LISTED],
                                 "size": len(members), "similarity": round(sim, 4), "similar_to": keep,
                                 "method": "embedding", "threshold": threshold}
    return detail_of, len(pairs), len(groups)


def run_semantic_duplicates(store: Store, threshold: float = DEFAULT_DUP_THRESHOLD, model: str | None = None,
                            backend: str = "auto", progress: ProgressFn | None = None,
                            cancel: threading.Event | None = None) -> dict:
    """Group every example not rejected by a person by embedding similarity; record a run."""
    from core.dataset.checks.results import record_run

    ex = duplicate_candidates(store)
    ids = ex["generation_id"].astype(int).tolist()
    backend = resolve_backend(store, model, backend)
    t0 = time.perf_counter()
    vectors, info = text_vectors(store, ex["text"].tolist(), model, backend, progress=progress, cancel=cancel)
    t1 = time.perf_counter()
    detail_of, n_pairs, n_groups = duplicate_details(ex, vectors, threshold)
    t2 = time.perf_counter()
    results = [(g, g not in detail_of or detail_of[g]["keep"] == g, detail_of.get(g, {})) for g in ids]
    summary = {"n_examples": len(ids), "n_pairs": n_pairs, "n_groups": n_groups,
               "n_flagged": sum(1 for _, ok, _ in results if not ok), "threshold": threshold,
               "model_key": info["model_key"], "n_embedded": info["n_embedded"],
               "seconds_embed": round(t1 - t0, 3), "seconds_search": round(t2 - t1, 3)}
    params = {"threshold": threshold, "model_key": info["model_key"], "text": "instruction + input + solution",
              "grouping": "around the kept example (no chaining)"}
    summary["run_id"] = record_run(store, DUP_KIND, params, summary, results)
    return summary


def _leak_search(store: Store, problem_texts: list[str], texts: list[str], model: str | None, backend: str,
                 k: int, shortlist: bool, progress: ProgressFn | None,
                 cancel: threading.Event | None) -> tuple[np.ndarray, np.ndarray, dict]:
    """(cosines (n, k), problem indices (n, k), info) under `backend` for every example; with `shortlist`,
    only for the examples whose nearest problem under the static vectors is at least LEAK_SHORTLIST
    (the others get no neighbour, index -1: not flagged, and MiniLM never embeds them)."""
    n = len(texts)
    keep = np.arange(n)
    short = None
    if shortlist and n and backend != "static":
        sb, _ = text_vectors(store, problem_texts, model, "static", cancel=cancel)
        se, _ = text_vectors(store, texts, model, "static", cancel=cancel)
        keep = np.flatnonzero(nearest(se, sb, 1)[0][:, 0] >= LEAK_SHORTLIST)
        short = {"static_threshold": LEAK_SHORTLIST, "passed_on": int(len(keep)), "of": n}
    bench_vec, _ = text_vectors(store, problem_texts, model, backend, cancel=cancel)
    ex_vec, info = text_vectors(store, [texts[i] for i in keep], model, backend, progress=progress, cancel=cancel)
    sims = np.zeros((n, k), dtype=np.float32)
    idx = np.full((n, k), -1, dtype=np.int64)
    if len(keep):
        s, j = nearest(ex_vec, bench_vec, k)
        sims[keep, :s.shape[1]], idx[keep, :j.shape[1]] = s, j
    if short is None:
        info["n_texts"] = n
    return sims, idx, {**info, "shortlist": short}


def run_semantic_decontamination(store: Store, benchmarks: str | list | None = "humaneval",
                                 threshold: float | None = None, k: int = NEAREST_K,
                                 model: str | None = None, backend: str = "auto",
                                 progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                                 shortlist: bool = False) -> dict:
    """Every parsed example's `k` nearest benchmark problems; flagged when the best is >= threshold
    (None: DEFAULT_LEAK_THRESHOLD, or STATIC_LEAK_THRESHOLD on static vectors).

    `shortlist`: static vectors pick the examples MiniLM then checks (LEAK_SHORTLIST)."""
    from core.dataset.checks.results import record_run

    spec = parse_spec(benchmarks) if benchmarks is None or isinstance(benchmarks, str) else benchmarks
    problems = benchmark_problems(load_benchmarks(spec))
    backend = resolve_backend(store, model, backend)
    ex = _examples(store)
    ids = ex["generation_id"].astype(int).tolist()
    t0 = time.perf_counter()
    if threshold is None:
        threshold = STATIC_LEAK_THRESHOLD if backend == "static" else DEFAULT_LEAK_THRESHOLD
    sims, idx, info = _leak_search(store, [p.text for p in problems], ex["text"].tolist(), model, backend, k,
                                   shortlist, progress, cancel)
    t1 = t2 = time.perf_counter()   # the search is inside _leak_search (milliseconds beside embedding)
    results: list[tuple] = []
    per_benchmark: defaultdict[str, int] = defaultdict(int)
    for row, g in enumerate(ids):
        near = [{"benchmark": problems[j].benchmark, "item": problems[j].item, "similarity": round(float(s), 4)}
                for s, j in zip(sims[row], idx[row]) if j >= 0]
        flagged = bool(near) and near[0]["similarity"] >= threshold
        detail = {"nearest": near, "threshold": threshold}
        if flagged:
            detail["benchmark_text"] = problems[int(idx[row][0])].text[:SIDE_BY_SIDE_CHARS]
            per_benchmark[near[0]["benchmark"]] += 1
        results.append((g, not flagged, detail))
    flagged_ids = [g for g, ok, _ in results if not ok]
    summary = {"n_examples": len(ids), "n_flagged": len(flagged_ids), "flagged": flagged_ids[:1000],
               "flagged_per_benchmark": dict(per_benchmark), "n_problems": len(problems), "threshold": threshold,
               "model_key": info["model_key"], "n_embedded": info["n_embedded"], "shortlist": info["shortlist"],
               "seconds_embed": round(t1 - t0, 3), "seconds_search": round(t2 - t1, 3)}
    params = {"benchmarks": [f"{n}={p}" if p else n for n, p in spec], "threshold": threshold, "k": k,
              "model_key": info["model_key"], "shortlist": info["shortlist"]}
    summary["run_id"] = record_run(store, LEAK_KIND, params, summary, results)
    return summary


# --------------------------------------------------------------------------- what a page shows

def semantic_groups(store: Store) -> list[dict]:
    """The groups of the latest semantic-duplicate run, each member with its current state."""
    from core.dataset.checks.results import check_groups
    return check_groups(store, DUP_KIND, ("similarity",))


def semantic_leaks(store: Store) -> list[dict]:
    """Examples the latest semantic decontamination flagged, with both texts side by side."""
    from core.dataset.checks.results import current_checks

    cur = current_checks(store, LEAK_KIND)
    if cur.empty:
        return []
    bad = cur[~cur["passed"].astype(bool)]
    ex = _examples(store).set_index("generation_id")
    out = []
    for _, row in bad.iterrows():
        d = json.loads(row["detail"]) if row["detail"] else {}
        best = (d.get("nearest") or [{}])[0]
        g = int(row["generation_id"])
        out.append({"generation_id": g, "overridden": bool(row["overridden"]), "benchmark": best.get("benchmark"),
                    "item": best.get("item"), "similarity": best.get("similarity"),
                    "example_text": str(ex.loc[g, "text"])[:SIDE_BY_SIDE_CHARS] if g in ex.index else "",
                    "benchmark_text": d.get("benchmark_text", "")})
    return sorted(out, key=lambda r: -(r["similarity"] or 0))


def keep_semantic(store: Store, members: list[int], keep: int, reviewer: str, note: str | None = None) -> dict:
    """The user keeps another member of a semantic group: the others are rejected with a note."""
    from core.dataset.checks.neardup import keep_one
    return keep_one(store, members, keep, reviewer, note or f"semantic duplicate of #{keep}", kind=DUP_KIND)


def latest_semantic_run(store: Store, kind: str) -> dict | None:
    """The newest real run of `kind` (not a person's keep-one record), params and summary decoded."""
    # rows(), not one(): a fetchone() leaves DuckDB's result open, and the thread's cursor then
    # refuses the register() the vector reads make next
    found = store.rows("SELECT id, params, summary, created_at FROM check_runs WHERE kind = ? "
                       "AND json_extract_string(params, '$.action') IS NULL ORDER BY id DESC LIMIT 1", [kind])
    row = found[0] if found else None
    if row:
        row["params"] = json.loads(row["params"]) if row["params"] else {}
        row["summary"] = json.loads(row["summary"]) if row["summary"] else {}
    return row


def semantic_reason(kind: str, detail: dict) -> str:
    """Why a semantic check flagged an example, in a sentence (core.dataset.checks.exclusions' table)."""
    sim = detail.get("similarity")
    if kind == DUP_KIND:
        how = f" (cosine {sim:.2f})" if isinstance(sim, (int, float)) else ""
        return (f"semantic duplicate of #{detail.get('keep')}, which is kept{how}; "
                f"group of {detail.get('size', '?')}")
    best = (detail.get("nearest") or [{}])[0]
    sim = best.get("similarity")
    return (f"close to {best.get('benchmark', 'a benchmark')} {best.get('item', '')}".rstrip()
            + (f" (cosine {sim:.2f})" if isinstance(sim, (int, float)) else ""))


# --------------------------------------------------------------------------- as a background task (Dataset page)

def start_semantic_checks(store: Store, benchmarks: str, dup_threshold: float | None,
                          leak_threshold: float | None, model: str | None = None, backend: str = "auto",
                          *, actor: str | None = None):
    """Semantic duplicates and / or leaks (a None threshold skips that check) in a worker thread
    (core.background), so leaving the page does not stop them; the examples are embedded once."""
    team.authorize(store, actor, "checks", target=benchmarks)
    from core.background import TaskContext, start_task

    if dup_threshold is None and leak_threshold is None:
        raise ShoalError("Choose at least one semantic check.")

    def work(ctx: TaskContext) -> dict:
        parts = []
        if dup_threshold is not None:
            ctx.stage("semantic duplicates")
            d = run_semantic_duplicates(store, dup_threshold, model, backend, ctx.progress, ctx.cancel)
            parts.append(f"Semantic duplicates at {dup_threshold:.2f}: {d['n_groups']} groups, "
                         f"{d['n_flagged']} flagged ({d['n_embedded']} embedded, {d['seconds_embed']:.1f} s; "
                         f"search {d['seconds_search']:.1f} s).")
        if leak_threshold is not None:
            ctx.stage("semantic leaks")
            s = run_semantic_decontamination(store, benchmarks, leak_threshold, model=model, backend=backend,
                                             progress=ctx.progress, cancel=ctx.cancel)
            parts.append(f"Semantic leaks at {leak_threshold:.2f}: {s['n_flagged']} of {s['n_examples']} "
                         f"flagged against {s['n_problems']} benchmark problems.")
        return {"summary": " ".join(parts)}

    label = ", ".join(x for x, t in (("duplicates", dup_threshold), ("leaks", leak_threshold)) if t is not None)
    return start_task(store, SEMANTIC_CHECKS, work, label=label, describe=lambda result: result)
