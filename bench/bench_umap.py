"""UMAP time for 10k and 50k points (384-d embedding-like vectors), as `core.maps.project_2d`
runs it: seeded; above 20k points it fits on a 20k sample and transforms the rest.

    python -m bench.bench_umap [--sizes 10000,50000]
"""
from __future__ import annotations

import argparse
import time

from bench.common import embedding_like, timed, write_result
from core.maps import UMAP_FIT_SAMPLE, cluster_points, project_2d


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,50000")
    a = ap.parse_args()
    t0 = time.perf_counter()
    import umap  # noqa: F401  (numba compiles here on a first run)
    res = {"import_seconds": round(time.perf_counter() - t0, 1), "fit_sample": UMAP_FIT_SAMPLE, "runs": []}
    # numba compiles UMAP's kernels on first use (nearest-neighbour descent above 4096 points, the
    # transform path): warm both up on a small sample fitted on a sub-sample, timed on its own.
    _, warm, _ = timed(lambda: project_2d(embedding_like(6000), sample=5000, n_epochs=20))
    res["jit_warmup_seconds"] = round(warm, 1)
    for n in [int(x) for x in a.sizes.split(",")]:
        X = embedding_like(n)
        (coords, info), wall, cpu = timed(lambda: project_2d(X, seed=42))
        labels, kwall, _ = timed(lambda: cluster_points(X, coords, n_clusters=None))
        res["runs"].append({"n": n, "umap_seconds": round(wall, 1), "umap_cpu_seconds": round(cpu, 1), **info,
                            "kmeans_seconds": round(kwall, 1), "clusters": int(labels.max() + 1)})
        print(res["runs"][-1], flush=True)
        write_result("umap", res)  # after each size, so a long run still leaves its figures


if __name__ == "__main__":
    main()
