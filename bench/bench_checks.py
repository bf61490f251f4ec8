"""Dataset-check timings on 10k generated examples; writes bench/results/checks.json.

A temporary database gets N synthetic examples (instruction + Python solution, ~1.5 KB each,
varied vocabulary), of which some copy HumanEval / MBPP text and some are near copies of
others. Timed, each next to the straightforward reference in the same run:
* decontamination (HumanEval + MBPP 11-510 if the MBPP file is there): the Aho-Corasick
  pass vs one `str.find` scan per benchmark string; the n-gram (12) mode; the whole
  `run_decontamination` including loading and writing 10k `checks` rows;
* near-duplicates: MinHash LSH vs all-pairs exact Jaccard (on a subset, extrapolated
  quadratically); the whole `run_near_duplicates`;
* execution: the sandbox on a sample (seconds per example, with 2 workers);
* analytics: max TF-IDF similarity to HumanEval for every example;
* semantic checks: embedding (all-MiniLM-L6-v2, measured on a sample of real example texts and
  extrapolated to N; cached afterwards, so a rerun costs only the search), then on N vectors the
  faiss exact range search for duplicate pairs + the non-chaining grouping, and the k-nearest
  benchmark problems, each next to a plain numpy blocked matrix product finding the same pairs.

    python -m bench.bench_checks [--examples 10000] [--exec-sample 40] [--mbpp PATH]
                                 [--semantic-sample 400] [--only semantic]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.dataset.checks import semantic  # noqa: E402
from core.dataset.checks.analytics import humaneval_similarity  # noqa: E402
from core.dataset.checks.benchmarks import humaneval_problems, load_benchmarks  # noqa: E402
from core.dataset.checks.decontam import Matcher, match_form, run_decontamination  # noqa: E402
from core.dataset.checks.examples import load_examples  # noqa: E402
from core.dataset.checks.execution import run_execution_checks  # noqa: E402
from core.dataset.checks.neardup import jaccard, minhash_pairs, run_near_duplicates, token_set  # noqa: E402
from core.store import open_store  # noqa: E402
from tests.support.shared_folder import SHARED  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "checks.json"
DEFAULT_MBPP = SHARED / "data" / "benchmarks" / "mbpp.jsonl"
WORDS = ("value items index count total result buffer record parse load save merge split filter sort key "
         "node graph path cost queue stack cache limit rate user order price date table row column file "
         "line token word text score model train batch epoch loss vector matrix sum mean median").split()


def synthetic(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    probs = list(humaneval_problems().values())
    rows = []
    for i in range(n):
        names = [f"{rng.choice(WORDS)}_{rng.randrange(10_000)}" for _ in range(14)]
        lines = [f"    {names[k]} = {names[k - 1]} * {rng.randrange(100)} + len({names[(k * 3) % 14]})"
                 for k in range(1, 14)]
        sol = f"def {names[0]}_fn({names[0]}):\n" + "\n".join(lines) + f"\n    return {names[13]}\n"
        instr = (f"Write a Python function that takes {names[0]} and computes {names[13]} by combining "
                 + " ".join(rng.choice(WORDS) for _ in range(30)) + ".")
        if i % 100 == 1:      # 1%: copies a HumanEval solution
            sol += "\n" + probs[rng.randrange(len(probs))]["canonical_solution"]
        if i % 50 == 2 and rows:   # 2%: near copy of an earlier example
            src = rows[rng.randrange(len(rows))]
            instr, sol = src["instruction"], src["solution"] + "\n# tweak\n"
        rows.append({"instruction": instr, "solution": sol})
    return rows


def fill(store, rows: list[dict]) -> None:
    snippets = pd.DataFrame({"id": [f"s{i}" for i in range(len(rows))], "kind": "function", "source": "bench",
                             "source_kind": "dir", "language": "python", "code": "pass", "n_chars": 4})
    store.insert_df("snippets", snippets)
    gens = pd.DataFrame({"id": range(1, len(rows) + 1), "snippet_id": [f"s{i}" for i in range(len(rows))],
                         "task": "code_generation", "parse_ok": True,
                         "fields": [json.dumps({"task_name": "code_generation", "instruction": r["instruction"],
                                                "information": "no input", "solution": r["solution"]})
                                    for r in rows]})
    store.insert_df("generations", gens)
    store.checkpoint()


def timed(fn, *a, **k):
    t0 = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t0


def numpy_pairs(vectors, threshold: float, block: int = 2048) -> set[tuple[int, int]]:
    """The reference: blocked matrix products, every pair i < j with cosine >= threshold."""
    import numpy as np
    out = set()
    for s in range(0, len(vectors), block):
        sims = vectors[s:s + block] @ vectors.T
        rows, cols = np.nonzero(sims >= threshold)
        out.update((s + int(r), int(c)) for r, c in zip(rows, cols) if c > s + r)
    return out


def bench_semantic(store, ex, spec: str, n: int, sample: int) -> dict:
    """Embedding rate on a sample of real example texts; search and grouping on n vectors."""
    import numpy as np
    texts = ex["text"].tolist()[:sample]
    (vec, info), t_embed = timed(semantic.text_vectors, store, texts)
    (vec2, info2), t_cached = timed(semantic.text_vectors, store, texts)
    rng = np.random.default_rng(0)
    base = np.vstack([vec] * (n // len(vec) + 1))[:n]
    big = base + rng.normal(0, 0.02, base.shape).astype(np.float32)       # near copies of real vectors
    big /= np.linalg.norm(big, axis=1, keepdims=True)
    pairs, t_pairs = timed(semantic.similar_pairs, big, semantic.DEFAULT_DUP_THRESHOLD)
    groups, t_group = timed(semantic.groups_around_keepers, list(range(n)), pairs)
    ref, t_ref = timed(numpy_pairs, big, semantic.DEFAULT_DUP_THRESHOLD)
    found = {(i, j) for i, j, _ in pairs}
    problems = semantic.benchmark_problems(load_benchmarks(spec))
    (bvec, _), t_bench_embed = timed(semantic.text_vectors, store, [p.text for p in problems])
    _, t_near = timed(semantic.nearest, big, bvec, semantic.NEAREST_K)
    rate = len(texts) / t_embed
    return {"embedded_sample": info["n_embedded"], "embed_texts_per_s": round(rate, 1),
            "embed_10k_s_extrapolated": round(10_000 / rate, 0), "cached_lookup_sample_s": round(t_cached, 3),
            "benchmark_problems": len(problems), "benchmark_embed_s": round(t_bench_embed, 2),
            "vectors": n, "pairs_faiss_s": round(t_pairs, 3), "pairs": len(pairs), "grouping_s": round(t_group, 3),
            "groups": len(groups), "pairs_numpy_blocked_s": round(t_ref, 3),
            "same_pairs_as_numpy": found == ref, "nearest_benchmarks_s": round(t_near, 3),
            "search_total_10k_s": round((t_pairs + t_group + t_near) * 10_000 / n, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=10_000)
    ap.add_argument("--exec-sample", type=int, default=40)
    ap.add_argument("--pairs-subset", type=int, default=1_000)
    ap.add_argument("--mbpp", default=str(DEFAULT_MBPP))
    ap.add_argument("--semantic-sample", type=int, default=400)
    ap.add_argument("--only", choices=("all", "semantic"), default="all")
    args = ap.parse_args()
    spec = "humaneval" + (f",mbpp={args.mbpp}" if Path(args.mbpp).exists() else "")
    res: dict = {"examples": args.examples, "benchmarks": spec.split(",")[0] + (",mbpp" if "mbpp" in spec else "")}

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "bench.duckdb")
        rows = synthetic(args.examples)
        fill(store, rows)
        ex = load_examples(store)
        texts = dict(zip(ex["generation_id"].astype(int), ex["text"]))
        strings = load_benchmarks(spec)
        res["benchmark_strings"] = len(strings)
        res["semantic"] = bench_semantic(store, ex, spec, args.examples, args.semantic_sample)
        if args.only == "semantic":
            store.close()
            print(json.dumps(res, indent=2))
            return

        # decontamination: Aho-Corasick vs one scan per string (same normalization, same hits)
        matcher, t_build = timed(Matcher, strings)
        norm = {g: match_form(t) for g, t in texts.items()}
        ac_hits, t_ac = timed(lambda: {g: matcher.substring_hits(t) for g, t in norm.items()})
        keys = list(matcher._keys.items())

        def naive():
            return {g: {i for k, idx in keys if k in t for i in idx} for g, t in norm.items()}
        sub = dict(list(norm.items())[: max(1, len(norm) // 10)])   # 10% of examples, extrapolated

        def naive_sub():
            return {g: {i for k, idx in keys if k in t for i in idx} for g, t in sub.items()}
        naive_hits, t_naive_sub = timed(naive_sub)
        t_naive = t_naive_sub * len(norm) / len(sub)
        assert all(naive_hits[g] == ac_hits[g] for g in sub), "Aho-Corasick and the scan disagree"
        ng, t_ngram = timed(lambda: Matcher(strings, ngram=12))
        _, t_ngram_match = timed(lambda: [ng.ngram_hits(t) for t in texts.values()])
        summary, t_run = timed(run_decontamination, store, spec)
        res["decontamination"] = {
            "automaton_build_s": round(t_build, 3), "aho_corasick_match_s": round(t_ac, 3),
            "naive_scan_s_extrapolated": round(t_naive, 2), "speedup_vs_naive": round(t_naive / t_ac, 1),
            "ngram12_build_s": round(t_ngram, 3), "ngram12_match_s": round(t_ngram_match, 3),
            "run_total_s": round(t_run, 2), "flagged": summary["n_flagged"],
            "planted_humaneval": sum(1 for i in range(args.examples) if i % 100 == 1),
        }

        # near-duplicates: LSH vs all pairs on a subset
        subset = dict(list(texts.items())[: args.pairs_subset])
        lsh_pairs, t_lsh_sub = timed(minhash_pairs, subset)
        sets = {g: token_set(t) for g, t in subset.items()}
        ids = list(sets)

        def brute():
            return {(a, b) for i, a in enumerate(ids) for b in ids[i + 1:] if jaccard(sets[a], sets[b]) >= 0.58}
        truth, t_brute_sub = timed(brute)
        found = {(min(p.a, p.b), max(p.a, p.b)) for p in lsh_pairs}
        nd, t_nd = timed(run_near_duplicates, store)
        scale = (len(texts) / len(subset)) ** 2
        res["near_duplicate"] = {
            "subset": len(subset), "lsh_subset_s": round(t_lsh_sub, 3), "all_pairs_subset_s": round(t_brute_sub, 2),
            "speedup_on_subset": round(t_brute_sub / t_lsh_sub, 1),
            "all_pairs_full_s_extrapolated": round(t_brute_sub * scale, 1),
            "run_total_s": round(t_nd, 2), "speedup_full_extrapolated": round(t_brute_sub * scale / t_nd, 1),
            "recall_vs_all_pairs": round(len(found & truth) / len(truth), 3) if truth else None,
            "false_positives": len(found - truth), "groups": nd["n_groups"], "flagged": nd["n_flagged"],
        }

        # execution on a sample
        ex_sum, t_exec = timed(run_execution_checks, store, sample=args.exec_sample, timeout=10)
        res["execution"] = {"sample": ex_sum["n_examples"], "total_s": round(t_exec, 2),
                            "s_per_example_2_workers": round(t_exec / max(1, ex_sum["n_examples"]), 3),
                            "statuses": ex_sum["statuses"], "network_isolation": ex_sum["network_isolation"],
                            "projected_10k_s": round(t_exec / max(1, ex_sum["n_examples"]) * args.examples, 0)}

        sim, t_sim = timed(humaneval_similarity, ex)
        res["analytics"] = {"humaneval_tfidf_s": round(t_sim, 2),
                            "median_max_similarity": round(float(sim["max_similarity"].median()), 3)}
        store.close()

    # headline ratios (bench/run_all.py prints keys containing "ratio")
    res["decontam_vs_naive_scan_ratio"] = res["decontamination"]["speedup_vs_naive"]
    res["neardup_vs_all_pairs_ratio"] = res["near_duplicate"]["speedup_full_extrapolated"]
    res["neardup_recall_ratio"] = res["near_duplicate"]["recall_vs_all_pairs"]
    res["semantic_pairs_faiss_vs_numpy_ratio"] = round(res["semantic"]["pairs_numpy_blocked_s"] /
                                                       max(res["semantic"]["pairs_faiss_s"], 1e-9), 2)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
