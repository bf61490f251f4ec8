"""Static embeddings (model2vec table distilled from all-MiniLM-L6-v2) against MiniLM itself, on real code.

Texts: real functions, embedded as Shoal embeds snippets (core.embed.run.snippet_text): `--stdlib` from
the demo corpus (core.ingest's stdlib reader, functions only) and `--site` from this interpreter's
site-packages (bench_scale's reader), sampled with a fixed seed. Both go through a DuckDB store and
`embed_corpus`, so MiniLM's vectors are cached in `--workdir` and a rerun measures only the rest.
The reference is MiniLM on the fast backend (ONNX int8, what `auto` uses on a CPU; mean cosine
0.993 to PyTorch's).

Measured, static vs MiniLM:
* neighbour recall@10: of each text's 10 nearest neighbours under MiniLM, the share static finds
  among its own 10 nearest (random: 10 / n);
* k-center coverage scored in MiniLM space: exact k-center picks made on the static vectors, on
  MiniLM's own vectors, and random picks (mean of 5 draws), each scored by MiniLM distances (max
  and mean distance of every text to its nearest pick) at several budgets;
* the planted-paraphrase leak test (tests/support/semantic_planted.py: 55 paraphrased HumanEval
  problems, 55 clean stdlib examples, 13 paraphrased duplicates): precision and recall at MiniLM's
  tuned threshold (0.62) and at static's own best threshold, static as a shortlist for MiniLM
  (its recall of MiniLM's flags and the share of examples it passes on), and time per 10k examples;
* throughput on the same texts in the same run: static vs int8 ONNX vs PyTorch (CPU and wall time).

    python -m bench.bench_static [--stdlib 1500] [--site 1000] [--workdir DIR] [--rate-texts 256]
"""
from __future__ import annotations

import argparse
import os
import random
import sysconfig
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.common import write_result  # noqa: E402

BUDGETS = (10, 25, 50, 100, 200)
RANDOM_DRAWS = 5


# --------------------------------------------------------------------------- corpus

def site_functions(n: int, rng: random.Random, per_file: int = 3) -> list[dict]:
    """`n` functions of site-packages: files in a seeded order, at most `per_file` from each (spread
    over many packages without parsing all of them)."""
    import ast
    root = Path(sysconfig.get_paths()["purelib"])
    files = sorted(root.rglob("*.py"))
    rng.shuffle(files)
    out: list[dict] = []
    for path in files:
        try:
            src = path.read_text(encoding="utf-8")
            tree = ast.parse(src)
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError, RecursionError):
            continue
        found = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for node in rng.sample(found, len(found))[:per_file]:
            code = ast.get_source_segment(src, node) or ""
            if 50 <= len(code) <= 800 and "\n" in code:
                out.append({"code": code, "name": node.name, "docstring": ast.get_docstring(node)})
        if len(out) >= n:
            return out[:n]
    return out


def _snippet_rows(n_stdlib: int, n_site: int, seed: int = 0) -> pd.DataFrame:
    """`snippets` rows: sampled demo (stdlib) functions and site-packages functions."""
    import hashlib

    from core.ingest.model import ReadOptions, Snippet
    from core.ingest.stdlib import open_stdlib

    rng = random.Random(seed)
    _, items = open_stdlib("stdlib", ReadOptions())
    std = [s for s in items if isinstance(s, Snippet) and s.kind == "function" and 50 <= len(s.code) <= 800]
    std = rng.sample(std, min(n_stdlib, len(std)))
    site = site_functions(n_site, rng)
    rows = [{"code": s.code, "func_name": s.func_name, "docstring": s.docstring, "source": "stdlib"} for s in std]
    rows += [{"code": f["code"], "func_name": f["name"], "docstring": f["docstring"] or None,
              "source": "site-packages"} for f in site]
    out, seen = [], set()
    for r in rows:
        sid = hashlib.sha256(r["code"].encode()).hexdigest()[:32]
        if sid not in seen:
            seen.add(sid)
            out.append({"id": sid, "kind": "function", "source": r["source"], "source_kind": "dir",
                        "language": "python", "code": r["code"], "n_chars": len(r["code"]),
                        "func_name": r["func_name"], "docstring": r["docstring"]})
    return pd.DataFrame(out)


def corpus_vectors(store, rows: pd.DataFrame) -> dict:
    """MiniLM (fast) and static vectors of every row, in the same order, and the time each took."""
    from core.embed.run import embed_corpus, load_embeddings
    if not store.scalar("SELECT count(*) FROM snippets"):
        store.insert_df("snippets", rows)
    out: dict = {}
    for backend in ("fast", "static"):
        r = embed_corpus(store, backend=backend)
        ids, X, key = load_embeddings(store, r.model_key)
        out[backend] = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        out[f"{backend}_ids"] = ids
        out[f"{backend}_run"] = {"embedded": r.n_embedded, "cached": r.n_cached, "seconds": round(r.seconds, 2),
                                 "model_key": key}
    assert out["fast_ids"] == out["static_ids"]
    return out


# --------------------------------------------------------------------------- agreement

def top_k(X: np.ndarray, k: int = 10) -> np.ndarray:
    """Indices of each row's k nearest other rows by cosine (exact; blocks of 2,048 rows)."""
    out = np.empty((len(X), k), dtype=np.int64)
    for s in range(0, len(X), 2048):
        sims = X[s:s + 2048] @ X.T
        sims[np.arange(len(sims)), np.arange(s, s + len(sims))] = -np.inf
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        out[s:s + len(sims)] = part
    return out


def neighbour_recall(ref: np.ndarray, other: np.ndarray, k: int = 10) -> dict:
    a, b = top_k(ref, k), top_k(other, k)
    hits = [len(set(x) & set(y)) / k for x, y in zip(a, b)]
    return {"recall_at_10": round(float(np.mean(hits)), 4), "random_expected": round(k / (len(ref) - 1), 4),
            "median": float(np.median(hits)), "share_zero": round(float(np.mean(np.asarray(hits) == 0)), 4)}


def kcenter_coverage(ref: np.ndarray, static: np.ndarray, budgets=BUDGETS) -> list[dict]:
    """Picks made in each space, all scored in MiniLM's (`ref`) space."""
    from core.select.baselines import coverage, random_sample
    from core.select.kcenter import kcenter_greedy
    rows = []
    for k in budgets:
        if k >= len(ref):
            continue
        own = coverage(ref, ref[kcenter_greedy(ref, k, seed=0, distances=False)[0]])
        stat = coverage(ref, ref[kcenter_greedy(static, k, seed=0, distances=False)[0]])
        rand = [coverage(ref, ref[random_sample(len(ref), k, seed=s)]) for s in range(RANDOM_DRAWS)]
        r_max = float(np.mean([c["coverage_max"] for c in rand]))
        r_mean = float(np.mean([c["coverage_mean"] for c in rand]))
        gain = (r_max - stat["coverage_max"]) / max(r_max - own["coverage_max"], 1e-9)
        rows.append({"k": k, "minilm_picks_max": round(own["coverage_max"], 4),
                     "static_picks_max": round(stat["coverage_max"], 4), "random_max": round(r_max, 4),
                     "minilm_picks_mean": round(own["coverage_mean"], 4),
                     "static_picks_mean": round(stat["coverage_mean"], 4), "random_mean": round(r_mean, 4),
                     "static_share_of_minilm_gain_over_random_max": round(gain, 3)})
    return rows


# --------------------------------------------------------------------------- planted leaks

def planted_store(path: Path):
    """The planted set of tests/core/dataset/checks/test_semantic.py (without its user benchmark file)."""
    from core.store import open_store
    from tests.support import semantic_planted as P
    from tests.support.seed_data import add_example, wave

    store = open_store(path)
    labels: dict[int, str] = {}
    for e in P.humaneval_paraphrases(45, seed=0):
        labels[add_example(store, wave(e["instruction"], e["solution"]))] = "leak"
    clean = P.stdlib_examples(55, seed=0)
    for e in clean:
        labels[add_example(store, wave(e["instruction"], e["solution"]))] = "clean"
    rng = random.Random(3)
    for k in list(range(12)) + [0]:
        d = P.duplicate_of(clean[k], rng)
        labels[add_example(store, wave(d["instruction"], d["solution"]))] = "clean"
    return store, labels


def _best_sims(store, backend: str) -> tuple[dict[int, float], dict]:
    import json

    from core.dataset.checks import semantic as S
    from core.dataset.checks.results import current_checks
    t0 = time.process_time()
    s = S.run_semantic_decontamination(store, "humaneval", backend=backend)
    cpu = time.process_time() - t0
    cur = current_checks(store, S.LEAK_KIND)
    best = {int(g): json.loads(d)["nearest"][0]["similarity"] for g, d in zip(cur["generation_id"], cur["detail"])}
    return best, {"cpu_seconds": round(cpu, 2), "n_examples": s["n_examples"], "n_problems": s["n_problems"],
                  "n_embedded": s["n_embedded"], "seconds_embed": s["seconds_embed"]}


def _pr(best: dict[int, float], labels: dict[int, str], t: float) -> dict:
    flagged = {g for g, v in best.items() if v >= t}
    leaks = {g for g, lab in labels.items() if lab == "leak"}
    tp = len(flagged & leaks)
    return {"threshold": round(t, 3), "precision": round(tp / len(flagged), 3) if flagged else None,
            "recall": round(tp / len(leaks), 3), "clean_flagged": len(flagged - leaks)}


def leak_test(workdir: Path) -> dict:
    """Precision / recall of the semantic leak check with MiniLM (fast) and with static vectors."""
    from core.dataset.checks.semantic import DEFAULT_LEAK_THRESHOLD
    path = workdir / "planted.duckdb"
    path.unlink(missing_ok=True)
    store, labels = planted_store(path)
    try:
        out: dict = {"n_leaks": sum(v == "leak" for v in labels.values()),
                     "n_clean": sum(v == "clean" for v in labels.values())}
        best = {}
        for backend in ("fast", "static"):
            best[backend], out[f"{backend}_run"] = _best_sims(store, backend)
        out["minilm_at_tuned"] = _pr(best["fast"], labels, DEFAULT_LEAK_THRESHOLD)
        out["static_at_minilm_threshold"] = _pr(best["static"], labels, DEFAULT_LEAK_THRESHOLD)
        clean_max = max(v for g, v in best["static"].items() if labels[g] == "clean")
        t_static = float(np.nextafter(np.float32(clean_max), np.float32(2)))   # no clean example flagged
        out["static_at_own_threshold"] = _pr(best["static"], labels, t_static)
        out["static_best_f1"] = max((_pr(best["static"], labels, t) for t in np.arange(0.3, 0.99, 0.01)),
                                    key=lambda r: 2 * (r["precision"] or 0) * r["recall"] /
                                    max((r["precision"] or 0) + r["recall"], 1e-9))
        out["shortlist"] = shortlist(best, labels, DEFAULT_LEAK_THRESHOLD)
        return out
    finally:
        store.close()


def shortlist(best: dict, labels: dict, t_minilm: float) -> dict:
    """Static as a shortlist: the lowest static threshold that passes on every MiniLM flag, and how
    much of the set it passes on (MiniLM would embed only those)."""
    from core.dataset.checks.semantic import LEAK_SHORTLIST
    flagged = [g for g, v in best["fast"].items() if v >= t_minilm]
    n_clean = sum(v == "clean" for v in labels.values())

    def at(t: float) -> dict:
        passed = [g for g, v in best["static"].items() if v >= t]
        return {"static_threshold": round(t, 3), "minilm_flags_kept": round(
                    sum(best["static"][g] >= t for g in flagged) / max(len(flagged), 1), 3),
                "share_passed_on": round(len(passed) / len(best["static"]), 3),
                "clean_share_passed_on": round(sum(labels[g] == "clean" for g in passed) / n_clean, 3)}
    t_low = min(best["static"][g] for g in flagged) if flagged else 1.0
    return {"lowest_that_keeps_every_minilm_flag": at(t_low), "shoal_default": at(LEAK_SHORTLIST)}


# --------------------------------------------------------------------------- throughput

def throughput(texts: list[str], rounds: int = 3) -> dict:
    """Texts per second of static, int8 ONNX and PyTorch on the same texts, interleaved rounds."""
    from core.embed.model import encode, load_model
    models = {b: load_model(None, b) for b in ("static", "fast", "torch")}
    for m in models.values():
        encode(m, texts[:8])
    wall: dict[str, list[float]] = {b: [] for b in models}
    cpu: dict[str, list[float]] = {b: [] for b in models}
    for _ in range(rounds):
        for b, m in models.items():
            reps = 20 if b == "static" else 1     # static is too quick to time once
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(reps):
                encode(m, texts, 32)
            wall[b].append((time.perf_counter() - t0) / reps)
            cpu[b].append((time.process_time() - c0) / reps)
    per_s = {b: round(len(texts) / min(w), 1) for b, w in wall.items()}
    cpu_per_s = {b: round(len(texts) / max(min(c), 1e-9), 1) for b, c in cpu.items()}
    ratio = lambda d, a, b: round(float(np.median([x / y for x, y in zip(d[a], d[b])])), 1)  # noqa: E731
    return {"texts": len(texts), "rounds": rounds, "wall_per_s": per_s, "cpu_per_s": cpu_per_s,
            "static_over_int8_wall": ratio(wall, "fast", "static"), "static_over_int8_cpu": ratio(cpu, "fast", "static"),
            "static_over_torch_wall": ratio(wall, "torch", "static"), "int8_over_torch_wall": ratio(wall, "torch", "fast")}


def static_bulk(texts: list[str], n: int) -> dict:
    """Static alone on `n` texts (the corpus repeated): the rate a 2M corpus would see."""
    from core.embed.model import encode, load_model
    m = load_model(None, "static")
    big = (texts * (n // len(texts) + 1))[:n]
    t0, c0 = time.perf_counter(), time.process_time()
    encode(m, big)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"texts": n, "seconds": round(wall, 2), "per_s": round(n / wall), "cpu_per_s": round(n / max(cpu, 1e-9))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stdlib", type=int, default=1500)
    ap.add_argument("--site", type=int, default=1000)
    ap.add_argument("--rate-texts", type=int, default=256)
    ap.add_argument("--bulk", type=int, default=100_000, help="texts for static's bulk rate")
    ap.add_argument("--workdir", default=None, help="keep the store (MiniLM vectors cached) here")
    ap.add_argument("--skip", default="", help="comma-separated: leaks,throughput")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    from core.embed.static import StaticEncoder
    from core.store import open_store
    work = Path(a.workdir or tempfile.mkdtemp(prefix="shoal-bench-static-"))
    work.mkdir(parents=True, exist_ok=True)
    res: dict = {"reference": "all-MiniLM-L6-v2 on the fast backend (ONNX int8)"}
    t0 = time.perf_counter()
    from core.embed.model import load_model
    enc = load_model(None, "static")
    assert isinstance(enc, StaticEncoder)
    res["static_model"] = {**enc.info, "load_or_distil_seconds": round(time.perf_counter() - t0, 1)}
    rows = _snippet_rows(a.stdlib, a.site)
    with open_store(work / "static.duckdb") as store:
        v = corpus_vectors(store, rows)
    res["corpus"] = {"texts": len(v["fast"]), "stdlib": int((rows["source"] == "stdlib").sum()),
                     "site_packages": int((rows["source"] == "site-packages").sum()),
                     "minilm_run": v["fast_run"], "static_run": v["static_run"]}
    res["neighbours"] = neighbour_recall(v["fast"], v["static"])
    res["kcenter"] = kcenter_coverage(v["fast"], v["static"])
    write_result("static", res)
    if "leaks" not in skip:
        res["leaks"] = leak_test(work)
        write_result("static", res)
    if "throughput" not in skip:
        from core.embed.run import snippet_text
        texts = [snippet_text(f, d, c) for f, d, c in zip(rows["func_name"], rows["docstring"], rows["code"])]
        res["throughput"] = throughput(random.Random(1).sample(texts, min(a.rate_texts, len(texts))))
        res["static_bulk"] = static_bulk(texts, a.bulk)
    write_result("static", res)


if __name__ == "__main__":
    main()
