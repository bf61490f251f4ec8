"""The corpus map: UMAP to 2D, clusters, and cluster labels, stored as runs.

* Projection: UMAP (cosine metric, seeded: the same vectors and seed give the same map).
  Corpora larger than `UMAP_FIT_SAMPLE` points are fitted on a seeded random sample; the
  rest is placed in chunks (with progress), by one of `PLACEMENTS`:
  ``transform`` = `UMAP.transform` (neighbours in the fitted index, then 30 epochs of
  layout optimisation per chunk), ``neighbours`` = the same neighbour search and weights,
  each point placed at the weighted mean of its fitted neighbours (UMAP's own starting
  point for transform, without the optimisation). ``auto`` uses transform up to
  `TRANSFORM_UP_TO` points and neighbours above (bench/bench_umap.py measures both: time
  and how many of a point's 10 nearest fitted neighbours stay its 10 nearest on the map).
* Clusters and their names: core.maps.clusters.
"""
from __future__ import annotations

import json
import threading
import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from core.errors import ShoalError
from core.maps.clusters import NOISE, cluster_labels, cluster_points, label_sample
from core.progress import ProgressFn, check_cancel, report
from core.store import Store, register

UMAP_FIT_SAMPLE = 20_000
PLACEMENTS = ("auto", "transform", "neighbours")
TRANSFORM_UP_TO = 200_000
PLACE_CHUNK = 20_000       # > 10k: UMAP.transform runs 100 epochs on chunks of at most 10k, 30 above


# --------------------------------------------------------------------------- projection

def _pca_2d(X: np.ndarray) -> np.ndarray:
    centred = X - X.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    out = centred @ vt[:2].T
    if out.shape[1] < 2:
        out = np.hstack([out, np.zeros((len(X), 2 - out.shape[1]))])
    return out.astype(np.float32)


def _fit_split(n: int, sample: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if n <= sample:
        return np.arange(n), np.array([], dtype=np.int64)
    fit_idx = np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))
    keep = np.ones(n, dtype=bool)
    keep[fit_idx] = False
    return fit_idx, np.flatnonzero(keep)


def place_rest(reducer, rows: np.ndarray, placement: str) -> np.ndarray:
    """2D positions for rows the reducer was not fitted on (see the module docstring)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if placement == "transform":
            return reducer.transform(rows).astype(np.float32)
        from umap.umap_ import init_graph_transform
        mode = reducer.transform_mode
        reducer.transform_mode = "graph"
        try:
            graph = reducer.transform(rows).tocsr()
        finally:
            reducer.transform_mode = mode
        graph.eliminate_zeros()
        return np.asarray(init_graph_transform(graph, reducer.embedding_), dtype=np.float32)


_UMAP_MODULES = ("umap.umap_", "umap.layouts", "umap.distances", "umap.sparse", "umap.spectral", "umap.utils")
_umap_cached = False


def cache_umap_kernels() -> int:
    """Keep UMAP's compiled numba kernels on disk, so compiling them (about 26 s on 2 cores) happens
    once per machine instead of once per process: umap-learn marks few of its kernels
    ``cache=True``; this turns numba's on-disk cache on for the others before their first call.
    numba writes beside the package, or under ``NUMBA_CACHE_DIR`` (or its per-user cache folder)
    when that is not writable. Returns how many kernels it turned caching on for."""
    global _umap_cached
    if _umap_cached:
        return 0
    import importlib

    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher
    turned = 0
    for name in _UMAP_MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        for obj in list(vars(mod).values()):
            if isinstance(obj, Dispatcher) and isinstance(getattr(obj, "_cache", None), NullCache):
                try:
                    obj.enable_caching()
                except Exception:  # noqa: BLE001 - a kernel numba cannot cache just compiles as before
                    continue
                turned += 1
    _umap_cached = True
    return turned


def fit_estimate(store: Store, fit_points: int) -> float | None:
    """Seconds a UMAP fit of `fit_points` should take, scaled (n^1.15) from the last map's fit in this
    database; None without one. The fit is one blocking call: this is what its progress can say."""
    latest = latest_map_id(store)
    raw = None if latest is None else store.scalar("SELECT params FROM maps WHERE id = ?", [latest])
    umap_info = (json.loads(raw) if isinstance(raw, str) else raw or {}).get("umap") or {}
    seconds, points = umap_info.get("fit_seconds"), umap_info.get("fit_points")
    if umap_info.get("method") != "umap" or not seconds or not points:
        return None
    return float(seconds) * (fit_points / float(points)) ** 1.15


def _span(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


class _FitTicker:
    """While UMAP fits (no progress of its own), say every second how long it has run and, with an
    estimate, about how long it takes: a long fit no longer sits at "0 / n" without a word."""

    def __init__(self, progress: ProgressFn | None, total: int, label: str, expected_s: float | None):
        self.progress, self.total, self.label, self.expected_s = progress, total, label, expected_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="umap-fit-ticker", daemon=True)

    def _run(self) -> None:
        t0 = time.perf_counter()
        while not self._stop.wait(1.0):
            about = f" of about {_span(self.expected_s)}" if self.expected_s else ""
            report(self.progress, 0, self.total, f"{self.label} · {_span(time.perf_counter() - t0)}{about}")

    def __enter__(self) -> _FitTicker:
        if self.progress is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def project_2d(X: np.ndarray, seed: int = 42, n_neighbors: int = 15, min_dist: float = 0.1,
               sample: int = UMAP_FIT_SAMPLE, n_epochs: int | None = None, chunk: int = PLACE_CHUNK,
               placement: str = "auto", progress: ProgressFn | None = None,
               cancel: threading.Event | None = None, expected_fit_s: float | None = None) -> tuple[np.ndarray, dict]:
    """2D coordinates (n, 2) float32 and facts about the run (fit size, placement, timings).
    `expected_fit_s`: what the fit should take (fit_estimate), said while it runs."""
    n = len(X)
    info: dict = {"fit_points": n, "transformed_points": 0}
    if placement not in PLACEMENTS:
        raise ShoalError(f"Unknown placement {placement!r}; use one of {', '.join(PLACEMENTS)}.")
    if n < 2:
        return np.zeros((n, 2), dtype=np.float32), info
    if n <= 10:  # too few for a neighbour graph: principal components are the honest picture
        info["method"] = "pca"
        return _pca_2d(X), info
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import umap  # first import compiles numba kernels (~20 s, cached afterwards)
        cache_umap_kernels()
    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, n - 1), min_dist=min_dist,
                        metric="cosine", random_state=seed, n_epochs=n_epochs, low_memory=True,
                        init="spectral" if n > 50 else "random")
    t0 = time.perf_counter()
    coords = np.zeros((n, 2), dtype=np.float32)
    fit_idx, rest_idx = _fit_split(n, sample, seed)
    label = f"UMAP: fitting {len(fit_idx):,} points"
    report(progress, 0, n, label + (f" (about {_span(expected_fit_s)})" if expected_fit_s else ""))
    with warnings.catch_warnings(), _FitTicker(progress, n, label, expected_fit_s):
        warnings.simplefilter("ignore")
        coords[fit_idx] = reducer.fit_transform(X[fit_idx])
    info.update(method="umap", fit_points=int(len(fit_idx)), fit_seconds=round(time.perf_counter() - t0, 2))
    done = len(fit_idx)
    report(progress, done, n, "UMAP: fitted")
    if placement == "auto":
        placement = "transform" if n <= TRANSFORM_UP_TO else "neighbours"
    t1 = time.perf_counter()
    for s in range(0, len(rest_idx), chunk):
        check_cancel(cancel)
        part = rest_idx[s:s + chunk]
        coords[part] = place_rest(reducer, X[part], placement)
        done += len(part)
        report(progress, done, n, f"UMAP: placing the rest of the corpus ({placement})")
    if len(rest_idx):
        info.update(transformed_points=int(len(rest_idx)), placement=placement,
                    transform_seconds=round(time.perf_counter() - t1, 2))
    return coords, info


# --------------------------------------------------------------------------- runs

@dataclass
class MapResult:
    map_id: int
    name: str
    model: str
    n_points: int
    n_clusters: int
    n_missing: int
    seconds: float
    params: dict

    def summary(self) -> dict:
        return asdict(self)


def map_layout(X: np.ndarray, method: str = "kmeans", n_clusters: int | None = None, seed: int = 42,
               sample: int = UMAP_FIT_SAMPLE, n_neighbors: int = 15, min_dist: float = 0.1,
               n_epochs: int | None = None, placement: str = "auto", progress: ProgressFn | None = None,
               cancel: threading.Event | None = None,
               expected_fit_s: float | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """The compute part of a map: (coordinates, cluster per point, params) from vectors alone."""
    n = len(X)
    coords, umap_info = project_2d(X, seed=seed, n_neighbors=n_neighbors, min_dist=min_dist, sample=sample,
                                   n_epochs=n_epochs, placement=placement, progress=progress, cancel=cancel,
                                   expected_fit_s=expected_fit_s)
    check_cancel(cancel)
    report(progress, n, n, f"clustering ({method})")
    t1 = time.perf_counter()
    labels = cluster_points(X, coords, method=method, n_clusters=n_clusters or None, seed=seed)
    params = {"method": method, "n_clusters_requested": n_clusters or None, "seed": seed,
              "n_neighbors": n_neighbors, "min_dist": min_dist, "n_epochs": n_epochs, "umap_sample": sample,
              "umap": umap_info, "cluster_seconds": round(time.perf_counter() - t1, 2)}
    return coords, labels, params


def build_map(store: Store, model: str | None = None, n_clusters: int | None = None, method: str = "kmeans",
              seed: int = 42, name: str | None = None, sample: int = UMAP_FIT_SAMPLE, n_neighbors: int = 15,
              min_dist: float = 0.1, n_epochs: int | None = None, placement: str = "auto",
              progress: ProgressFn | None = None, cancel: threading.Event | None = None) -> MapResult:
    """Project, cluster and label every embedded snippet; store the run; return its summary."""
    from core.embed.run import embedding_status, load_embeddings

    t0 = time.perf_counter()
    ids, X, key = load_embeddings(store, model)
    if len(ids) == 0:
        raise ShoalError(f"No snippet has an embedding under model {key!r}: run `shoal embed` first.")
    if n_clusters is not None and n_clusters < 0:
        raise ShoalError("The number of clusters cannot be negative (0 or empty = automatic).")
    n_missing = embedding_status(store, key)["n_snippets"] - len(ids)
    check_cancel(cancel)
    coords, labels, params = map_layout(X, method=method, n_clusters=n_clusters, seed=seed, sample=sample,
                                        n_neighbors=n_neighbors, min_dist=min_dist, n_epochs=n_epochs,
                                        placement=placement, progress=progress, cancel=cancel,
                                        expected_fit_s=fit_estimate(store, min(len(ids), sample)))
    del X
    check_cancel(cancel)
    report(progress, len(ids), len(ids), "naming clusters")
    rows = label_sample(labels, seed=seed)
    meta = _snippet_meta(store, [ids[i] for i in rows])
    names = cluster_labels(labels[rows], meta["func_name"].tolist(), meta["docstring"].tolist(),
                           meta["code"].tolist())
    del meta
    params["label_snippets"] = int(len(rows))
    sizes = pd.Series(labels).value_counts()
    n_real = int(sum(1 for g in sizes.index if g != NOISE))
    map_id = _store_map(store, name, key, params, ids, coords, labels, names, sizes)
    _checkpoint(store)
    params["seconds"] = round(time.perf_counter() - t0, 2)
    name = name or f"map {map_id}"
    return MapResult(int(map_id), name, key, len(ids), n_real, n_missing, params["seconds"], params)


def _checkpoint(store: Store) -> None:
    """Fold the new map into the database file now; skipped (DuckDB does it later on its own)
    while another write is in flight, e.g. a background task's progress."""
    import duckdb
    try:
        store.checkpoint()
    except duckdb.TransactionException:
        pass


def _store_map(store: Store, name: str | None, key: str, params: dict, ids: list[str], coords: np.ndarray,
               labels: np.ndarray, names: dict, sizes: pd.Series) -> int:
    pts = pd.DataFrame({"snippet_id": ids, "x": coords[:, 0].astype(np.float32),
                        "y": coords[:, 1].astype(np.float32), "cluster": labels.astype(np.int32)})
    cl = pd.DataFrame([{"cluster": g, "label": names[g][0], "terms": json.dumps(names[g][1]),
                        "size": int(sizes[g])} for g in sorted(names)])

    def write(cur) -> int:
        map_id = cur.execute(
            "INSERT INTO maps(name, model, params, n_points, n_clusters, status) VALUES (?, ?, ?, ?, ?, 'done') "
            "RETURNING id", [name, key, json.dumps(params), len(ids),
                             int(sum(1 for g in sizes.index if g != NOISE))]).fetchone()[0]
        cur.execute("UPDATE maps SET name = ? WHERE id = ?", [name or f"map {map_id}", map_id])
        register(cur, "_map_pts", pts)
        cur.execute("INSERT INTO map_points SELECT ?, snippet_id, x, y, cluster FROM _map_pts", [map_id])
        cur.unregister("_map_pts")
        register(cur, "_map_cl", cl)
        cur.execute("INSERT INTO clusters SELECT ?, cluster, label, terms, size FROM _map_cl", [map_id])
        cur.unregister("_map_cl")
        return int(map_id)

    return store.write(write)


def _snippet_meta(store: Store, ids: list[str]) -> pd.DataFrame:
    cur = store.cursor()
    register(cur, "_map_ids", pd.DataFrame({"id": ids, "ord": np.arange(len(ids))}))
    try:
        return cur.execute("SELECT s.id, s.func_name, s.docstring, s.code FROM _map_ids w "
                           "JOIN snippets s ON s.id = w.id ORDER BY w.ord").df()
    finally:
        cur.unregister("_map_ids")


def latest_map_id(store: Store) -> int | None:
    """The newest finished map: the one place that says which map is "the latest"."""
    return store.scalar("SELECT max(id) FROM maps WHERE status = 'done'")


def map_coverage(store: Store, map_id: int | None = None) -> dict[str, int]:
    """How much of the corpus a map (the latest by default) holds: `mapped`, `total` snippets and
    `unmapped` (added since it was built; a selection on the map cannot draw them). Zeros without a map."""
    map_id = latest_map_id(store) if map_id is None else map_id
    total = int(store.scalar("SELECT count(*) FROM snippets") or 0)
    if map_id is None:
        return {"map_id": 0, "mapped": 0, "total": total, "unmapped": 0}
    mapped = int(store.scalar("SELECT count(*) FROM map_points WHERE map_id = ?", [int(map_id)]) or 0)
    unmapped = int(store.scalar("SELECT count(*) FROM snippets s WHERE NOT EXISTS (SELECT 1 FROM map_points p "
                                "WHERE p.map_id = ? AND p.snippet_id = s.id)", [int(map_id)]) or 0)
    return {"map_id": int(map_id), "mapped": mapped, "total": total, "unmapped": unmapped}


def stale_map_note(cov: dict[str, int]) -> str | None:
    """What to tell a person about to use a map that misses snippets added since (None: it has them all)."""
    if not cov["map_id"] or not cov["unmapped"]:
        return None
    return (f"The map holds {cov['mapped']:,} snippets; {cov['unmapped']:,} were added since it was built. A "
            "selection draws only from the mapped ones: build the map again to include them, or go on with "
            "these.")


def get_map(store: Store, map_id: int | None = None) -> dict:
    """A stored map run (the latest when `map_id` is None)."""
    if map_id is None:
        map_id = latest_map_id(store)
        if map_id is None:
            raise ShoalError("No map yet: run `shoal map` (or Build map on the Map page) first.")
    row = store.one("SELECT * FROM maps WHERE id = ?", [int(map_id)])
    if row is None:
        raise ShoalError(f"No map with id {map_id}.")
    row["params"] = json.loads(row["params"]) if row.get("params") else {}
    return row


def list_maps(store: Store) -> pd.DataFrame:
    return store.df("SELECT id, name, model, n_points, n_clusters, created_at FROM maps "
                    "WHERE status = 'done' ORDER BY id DESC")


def map_clusters(store: Store, map_id: int) -> pd.DataFrame:
    df = store.df("SELECT cluster, label, size, terms FROM clusters WHERE map_id = ? ORDER BY cluster", [map_id])
    df["terms"] = [json.loads(t) if t else [] for t in df["terms"]]
    return df


def map_points(store: Store, map_id: int) -> pd.DataFrame:
    """Point table for drawing: coordinates, cluster and short metadata (never the code)."""
    return store.df(
        "SELECT p.snippet_id, p.x, p.y, p.cluster, c.label, s.func_name, s.kind, s.language, s.source, s.path "
        "FROM map_points p JOIN snippets s ON s.id = p.snippet_id "
        "LEFT JOIN clusters c ON c.map_id = p.map_id AND c.cluster = p.cluster "
        "WHERE p.map_id = ? ORDER BY p.snippet_id", [map_id])


REVIEW_STATUSES = ("accepted", "rejected", "judge passed", "judge failed", "not judged", "no example")


def map_review_status(store: Store, map_id: int) -> pd.DataFrame:
    """Each map point's review status (snippet_id, status), one of `REVIEW_STATUSES`.

    A snippet with several generated examples takes the most decided one: a human accept,
    else a human reject, else the judge's verdict (passed before failed), else "not judged";
    a snippet no example was generated from is "no example".
    """
    return store.df(
        "WITH per_snippet AS (SELECT snippet_id, "
        "  CASE WHEN bool_or(human_verdict = 'accepted') THEN 'accepted' "
        "       WHEN bool_or(human_verdict = 'rejected') THEN 'rejected' "
        "       WHEN bool_or(judge_overall) THEN 'judge passed' "
        "       WHEN bool_or(NOT judge_overall) THEN 'judge failed' ELSE 'not judged' END AS status "
        "  FROM review_effective GROUP BY snippet_id) "
        "SELECT p.snippet_id, COALESCE(r.status, 'no example') AS status FROM map_points p "
        "LEFT JOIN per_snippet r ON r.snippet_id = p.snippet_id WHERE p.map_id = ? ORDER BY p.snippet_id",
        [map_id])


def snippet_preview(store: Store, snippet_ids: list[str], lines: int = 4, width: int = 80) -> list[str]:
    """The first `lines` lines of each snippet's code (each cut at `width` characters), in order."""
    if not snippet_ids:
        return []
    cur = store.cursor()
    register(cur, "_prev_ids", pd.DataFrame({"id": snippet_ids, "ord": np.arange(len(snippet_ids))}))
    try:
        codes = cur.execute("SELECT s.code FROM _prev_ids w LEFT JOIN snippets s ON s.id = w.id ORDER BY w.ord"
                            ).fetchall()
    finally:
        cur.unregister("_prev_ids")
    out = []
    for (code,) in codes:
        rows = (code or "").splitlines()[:lines]
        out.append("\n".join(r if len(r) <= width else r[:width - 1] + "…" for r in rows))
    return out
