"""Browser render time of a 100k-point map on the real Map page (Chromium via Playwright).

A database with 100k snippets and a stored 40-cluster map is prepared (synthetic coordinates:
the page only reads stored map runs), the real app is started, and the time from navigation
to a plot that holds every point (plus two animation frames) is measured: once on a fresh
server (DuckDB read + figure build + transfer + WebGL draw) and then on reloads (the point
table is cached server-side; "once computed"). Code text never enters the point payload.

    python -m bench.bench_map_render [--n 100000] [--reloads 3]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import write_result
from core.store import open_store
from tests.support.streamlit_server import StreamlitServer

ALL_POINTS_DRAWN = """(n) => {
  const gd = document.querySelector('.js-plotly-plot');
  if (!gd || !gd._fullData) return false;
  let total = 0;
  for (const t of gd._fullData) if (t.name !== 'selected') total += (t._length || 0);
  return total >= n;
}"""


def prepare(db: Path, n: int, k: int = 40) -> None:
    rng = np.random.default_rng(0)
    ids = [hashlib.sha256(str(i).encode()).hexdigest()[:32] for i in range(n)]
    centres = rng.normal(size=(k, 2)) * 12
    cl = rng.integers(k, size=n)
    xy = centres[cl] + rng.normal(size=(n, 2))
    langs = np.array(["python", "go", "java", "javascript", "php", "ruby"])
    with open_store(db) as s:
        s.insert_df("snippets", pd.DataFrame({
            "id": ids, "kind": "function", "source": "bench", "source_kind": "dir",
            "language": langs[rng.integers(6, size=n)], "func_name": [f"function_{i}" for i in range(n)],
            "code": [f"def function_{i}(x):\n    return x + {i}\n" for i in range(n)], "n_chars": 30}))
        map_id = s.execute("INSERT INTO maps(name, model, params, n_points, n_clusters) VALUES "
                           "('bench', 'bench-model', '{}', ?, ?) RETURNING id", [n, k]).fetchone()[0]
        s.insert_df("map_points", pd.DataFrame({"map_id": map_id, "snippet_id": ids, "x": xy[:, 0].astype(np.float32),
                                                "y": xy[:, 1].astype(np.float32), "cluster": cl.astype(np.int32)}))
        s.insert_df("clusters", pd.DataFrame({"map_id": map_id, "cluster": np.arange(k), "size": np.bincount(cl, minlength=k),
                                              "label": [f"term{c} · word{c} · name{c}" for c in range(k)],
                                              "terms": json.dumps([])}))
        s.checkpoint()


def visit(page, url: str, n: int) -> float:
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_function(ALL_POINTS_DRAWN, arg=n, timeout=180_000, polling=50)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--reloads", type=int, default=3)
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright
    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
    db = Path(tempfile.mkdtemp(prefix="shoal-bench-map-")) / "map.duckdb"
    prepare(db, a.n)
    with StreamlitServer(db) as srv, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        first = visit(page, srv.url + "/Map", a.n)
        reloads = [visit(page, srv.url + "/Map", a.n) for _ in range(a.reloads)]
        browser.close()
    res = {"points": a.n, "first_visit_seconds": round(first, 2),
           "reload_seconds": [round(t, 2) for t in reloads],
           "reload_median_seconds": round(float(np.median(reloads)), 2),
           "target": "< 3 s once computed", "meets_target": bool(np.median(reloads) < 3)}
    write_result("map_render", res)


if __name__ == "__main__":
    main()
