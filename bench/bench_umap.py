"""Map build at scale: how the rest of a big corpus is placed, and a 1M-point build in bounded memory.

* `--sizes` (default 60000): UMAP is fitted on a 20k sample as `core.maps.build.project_2d` does; the
  rest is placed both ways (`transform` = UMAP.transform with its layout optimisation,
  `neighbours` = the weighted mean of each point's fitted neighbours). Reported: seconds per
  placement and quality on 2,000 placed points = the share of each point's 10 nearest fitted
  neighbours in embedding space (cosine) that are also among its 10 nearest fitted points on the
  map (the fitted sample itself is laid out by UMAP either way).
* `--build N` (e.g. 1000000): `core.maps.build.map_layout` (fit on 20k, neighbour placement in chunks,
  MiniBatchKMeans) plus c-TF-IDF names from `label_sample`, on N cheap deterministic 384-d vectors
  generated in chunks; wall time per phase and the process's peak memory (ru_maxrss).

    python -m bench.bench_umap [--sizes 60000] [--build 1000000]
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from bench.common import timed, write_result
from core.maps.build import UMAP_FIT_SAMPLE, _fit_split, map_layout, place_rest
from core.maps.clusters import cluster_labels, label_sample


def vectors(n: int, dim: int = 384, n_topics: int = 200, seed: int = 0, chunk: int = 50_000) -> np.ndarray:
    """Unit float32 vectors shaped like sentence embeddings (topic centres + decaying noise), made in
    chunks so that only the float32 result is ever held whole."""
    rng = np.random.default_rng(seed)
    spectrum = (1.0 / np.sqrt(1.0 + np.arange(dim))).astype(np.float32)
    centres = (rng.normal(size=(n_topics, dim)) * spectrum).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, chunk):
        r = np.random.default_rng([seed, s])
        m = min(chunk, n - s)
        block = centres[r.integers(n_topics, size=m)] + 0.6 * r.standard_normal((m, dim), dtype=np.float32) * spectrum
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[s:s + m] = block
    return out


def peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def neighbour_preservation(X_fit, c_fit, X_test, c_test, k: int = 10) -> float:
    emb = np.argpartition(-(X_test @ X_fit.T), k, axis=1)[:, :k]
    d2 = ((c_test[:, None, :] - c_fit[None, :, :]) ** 2).sum(-1)
    mp = np.argpartition(d2, k, axis=1)[:, :k]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(emb, mp)]))


def compare_placements(n: int, test_points: int = 2000) -> dict:
    import umap
    X = vectors(n)
    fit_idx, rest_idx = _fit_split(n, UMAP_FIT_SAMPLE, 42)
    reducer = umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.1, metric="cosine", random_state=42,
                        low_memory=True)
    fit_coords, fit_s, _ = timed(lambda: reducer.fit_transform(X[fit_idx]))
    out = {"n": n, "fit_points": len(fit_idx), "placed_points": len(rest_idx), "fit_seconds": round(fit_s, 1)}
    test = rest_idx[np.random.default_rng(0).choice(len(rest_idx), min(test_points, len(rest_idx)), replace=False)]
    for placement in ("transform", "neighbours"):
        placed, secs, _ = timed(lambda placement=placement: np.vstack([place_rest(reducer, X[rest_idx[s:s + 20_000]], placement)
                                                   for s in range(0, len(rest_idx), 20_000)]))
        pos = {int(r): j for j, r in enumerate(rest_idx)}
        c_test = placed[[pos[int(t)] for t in test]]
        out[placement] = {"seconds": round(secs, 1), "points_per_second": round(len(rest_idx) / secs),
                          "neighbour_preservation_at_10": round(neighbour_preservation(
                              X[fit_idx], fit_coords, X[test], c_test), 3)}
        print(placement, out[placement], flush=True)
    out["neighbours_speedup"] = round(out["transform"]["seconds"] / out["neighbours"]["seconds"], 1)
    return out


def build(n: int) -> dict:
    t0 = time.perf_counter()
    X = vectors(n)
    out = {"n": n, "vectors_mb": round(X.nbytes / 2**20), "generate_seconds": round(time.perf_counter() - t0, 1)}
    phases: list[tuple[str, float]] = []

    def progress(done, total, note):
        phases.append((note, time.perf_counter()))

    t1 = time.perf_counter()
    coords, labels, params = map_layout(X, seed=42, progress=progress)
    out["layout_seconds"] = round(time.perf_counter() - t1, 1)
    out["umap"] = params["umap"]
    out["cluster_seconds"] = params["cluster_seconds"]
    out["clusters"] = int(labels.max() + 1)
    t2 = time.perf_counter()
    rows = label_sample(labels)
    names = [f"function_{i}" for i in rows]
    codes = [f"def handle_topic_{labels[i]}_item(x):\n    return parse_{labels[i] % 7}(x)\n" for i in rows]
    cluster_labels(labels[rows], names, [None] * len(rows), codes)
    out["label_snippets"] = int(len(rows))
    out["label_seconds"] = round(time.perf_counter() - t2, 1)
    out["total_seconds"] = round(time.perf_counter() - t0, 1)
    out["peak_rss_mb"] = peak_mb()
    out["peak_rss_over_vectors"] = round(out["peak_rss_mb"] / max(out["vectors_mb"], 1), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="60000")
    ap.add_argument("--build", type=int, default=0, help="also build a map of this many points (e.g. 1000000)")
    a = ap.parse_args()
    t0 = time.perf_counter()
    import umap  # noqa: F401  (numba compiles here on a first run)
    res: dict = {"import_seconds": round(time.perf_counter() - t0, 1), "fit_sample": UMAP_FIT_SAMPLE,
                 "placement": [], "build": None}
    for n in [int(v) for v in a.sizes.split(",") if v]:
        res["placement"].append(compare_placements(n))
        write_result("umap", res)
    if a.build:
        res["build"] = build(a.build)
    write_result("umap", res)


if __name__ == "__main__":
    main()
