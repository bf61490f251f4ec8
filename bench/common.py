"""Helpers for the map/selection benchmarks: timing side by side and writing bench/results/<name>.json."""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def write_result(name: str, data: dict) -> Path:
    """Write the figures (plus machine facts) to bench/results/<name>.json and print them."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {**data, "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
                                "python": platform.python_version()}}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=float))
    print(json.dumps(data, indent=2, default=float))
    return path


def timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    """(result, wall seconds, CPU seconds of this process) of one call."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def interleaved(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, dict]:
    """Run each function once per round, in turn (A B C A B C ...), so load changes hit all alike.

    Returns, per name, the wall and CPU seconds of every round; compare with `median_ratio`.
    """
    out = {k: {"wall": [], "cpu": []} for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            _, w, c = timed(fn)
            out[k]["wall"].append(w)
            out[k]["cpu"].append(c)
    return out


def median_ratio(times: dict[str, dict], slow: str, fast: str, kind: str = "wall") -> float:
    """Median over rounds of slow/fast (each round's pair ran back to back)."""
    return round(statistics.median(a / b for a, b in zip(times[slow][kind], times[fast][kind])), 3)


def embedding_like(n: int, dim: int = 384, n_topics: int = 200, seed: int = 0) -> np.ndarray:
    """Synthetic unit vectors shaped like sentence embeddings: topic centres plus noise whose
    variance decays over dimensions (real embeddings put most variance in few directions)."""
    rng = np.random.default_rng(seed)
    spectrum = 1.0 / np.sqrt(1.0 + np.arange(dim))
    centres = rng.normal(size=(n_topics, dim)) * spectrum
    topic = rng.integers(n_topics, size=n)
    X = centres[topic] + 0.6 * rng.normal(size=(n, dim)) * spectrum
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32)
