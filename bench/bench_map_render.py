"""The Map page at scale in Chromium (Playwright): render time of 100k- and 1M-point maps, and lasso time.

For each size a database with that many snippets and a stored 40-cluster map is prepared
(synthetic coordinates: the page only reads stored map runs), the real app is started, and:

* render: navigation -> every point drawn by the map component (its frame's body carries
  data-points=N two animation frames after plotly's WebGL draw): a first visit on a fresh
  server (DuckDB read + drawing build + transfer + draw), then reloads ("once computed": the
  point table and the drawing are cached server-side, the browser gets them again).
  Each reload also records when the map frame's script started, plotly.js had loaded, the
  arguments arrived, the typed arrays were built, plotly returned and the frame was painted.
* lasso, server side: building the map's PointIndex, then resolving a lasso polygon over
  about half the map to snippet ids (core.maps.lasso), median of several runs.
* lasso, end to end in the browser: mouse-up of a drawn lasso -> the page shows how many
  points it holds (plotly's own selection highlight + our event + a rerun + resolution).

Code text never enters the point payload at these sizes (hover previews stop at 20k points).

    python -m bench.bench_map_render [--sizes 100000,1000000] [--reloads 2]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import write_result
from core.maps.lasso import PointIndex
from core.store import open_store
from tests.support.streamlit_server import StreamlitServer

FRAME = "iframe[title*='shoal_map']"


def prepare(db: Path, n: int, k: int = 40, chunk: int = 250_000) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(k, 2)) * 12
    langs = np.array(["python", "go", "java", "javascript", "php", "ruby"])
    with open_store(db) as s:
        map_id = s.execute("INSERT INTO maps(name, model, params, n_points, n_clusters) VALUES "
                           "('bench', 'bench-model', '{}', ?, ?) RETURNING id", [n, k]).fetchone()[0]
        sizes = np.zeros(k, dtype=np.int64)
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            idx = np.arange(start, start + m)
            ids = [hashlib.sha256(str(i).encode()).hexdigest()[:32] for i in idx]
            cl = rng.integers(k, size=m)
            sizes += np.bincount(cl, minlength=k)
            xy = centres[cl] + rng.normal(size=(m, 2))
            s.insert_df("snippets", pd.DataFrame({
                "id": ids, "kind": np.where(idx % 20 == 0, "seed", "function"), "source": "bench",
                "source_kind": "dir", "language": langs[rng.integers(6, size=m)],
                "func_name": [f"function_{i}" for i in idx], "n_chars": 30,
                "code": [f"def function_{i}(x):\n    return x + {i}\n" for i in idx]}))
            s.insert_df("map_points", pd.DataFrame({"map_id": map_id, "snippet_id": ids,
                                                    "x": xy[:, 0].astype(np.float32), "y": xy[:, 1].astype(np.float32),
                                                    "cluster": cl.astype(np.int32)}))
        s.insert_df("clusters", pd.DataFrame({"map_id": map_id, "cluster": np.arange(k), "size": sizes,
                                              "label": [f"term{c} · word{c} · name{c}" for c in range(k)],
                                              "terms": json.dumps([])}))
        s.checkpoint()


def visit(page, url: str, n: int, phases: list | None = None) -> float:
    t0, wall0 = time.perf_counter(), time.time() * 1000
    page.goto(url)
    page.frame_locator(FRAME).locator(f"body[data-points='{n}']").wait_for(timeout=600_000)
    took = time.perf_counter() - t0
    if phases is not None:   # ms since navigation at which the map frame reached each step
        frame = next(f for f in page.frames if "shoal_map" in f.url)
        stamps = frame.evaluate("() => window.shoalTimes")
        phases.append({k: round((v - wall0) / 1000, 2) for k, v in stamps.items()})
    return took


LASSO = [(0.10, 0.10), (0.60, 0.05), (0.75, 0.50), (0.45, 0.95), (0.05, 0.60)]


def lasso_server_side(db: Path, rounds: int = 5) -> dict:
    with open_store(db) as s:
        xy = s.df("SELECT x, y FROM map_points ORDER BY snippet_id")
    x, y = xy["x"].to_numpy(), xy["y"].to_numpy()
    t0 = time.perf_counter()
    index = PointIndex(x, y)
    build = time.perf_counter() - t0
    x0, x1, y0, y1 = x.min(), x.max(), y.min(), y.max()
    px = [x0 + fx * (x1 - x0) for fx, _ in LASSO]
    py = [y1 - fy * (y1 - y0) for _, fy in LASSO]
    times, inside = [], 0
    for _ in range(rounds):
        t = time.perf_counter()
        inside = len(index.in_polygon(px, py))
        times.append(time.perf_counter() - t)
    return {"index_build_seconds": round(build, 3), "resolve_median_seconds": round(statistics.median(times), 4),
            "points_inside": inside, "polygon_vertices": len(px)}


def lasso_in_browser(page) -> float:
    frame = next(f for f in page.frames if "shoal_map" in f.url)
    box = page.locator(FRAME).bounding_box()
    size = frame.evaluate("() => document.getElementById('plot')._fullLayout._size")
    pix = [(box["x"] + size["l"] + fx * size["w"], box["y"] + size["t"] + fy * size["h"]) for fx, fy in LASSO]
    page.mouse.move(*pix[0])
    page.mouse.down()
    for p in pix[1:] + pix[:1]:
        page.mouse.move(*p, steps=6)
    t0 = time.perf_counter()
    page.mouse.up()
    page.get_by_text(re.compile(r"points in the lasso selection")).wait_for(timeout=600_000)
    return time.perf_counter() - t0


def measure_page(pw, db: Path, n: int, reloads: int) -> dict:
    """Render and lasso figures of the Map page on a database that holds an n-point map (its latest)."""
    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
    out: dict = {"points": n, "lasso_server": lasso_server_side(db)}
    srv = StreamlitServer(db, log_path=db.with_suffix(".log")).start(timeout=180)
    try:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        out["first_visit_seconds"] = round(visit(page, srv.url + "/Map", n), 2)
        phases: list = []
        times = [visit(page, srv.url + "/Map", n, phases) for _ in range(reloads)]
        out["reload_phases_seconds"] = phases
        out["reload_seconds"] = [round(t, 2) for t in times]
        out["reload_median_seconds"] = round(float(np.median(times)), 2)
        out["lasso_browser_seconds"] = round(lasso_in_browser(page), 2)
        browser.close()
    finally:
        srv.stop()
    out["render_meets_3s"] = out["reload_median_seconds"] < 3
    out["lasso_server_meets_1s"] = out["lasso_server"]["resolve_median_seconds"] < 1
    return out


def run_size(pw, n: int, reloads: int) -> dict:
    db = Path(tempfile.mkdtemp(prefix="shoal-bench-map-")) / "map.duckdb"
    t0 = time.perf_counter()
    prepare(db, n)
    prepare_seconds = round(time.perf_counter() - t0, 1)
    return {"prepare_seconds": prepare_seconds, **measure_page(pw, db, n, reloads)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--reloads", type=int, default=2)
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright
    res: dict = {"target": "render < 3 s once computed; lasso < 1 s", "runs": []}
    with sync_playwright() as pw:
        for n in [int(v) for v in a.sizes.split(",")]:
            res["runs"].append(run_size(pw, n, a.reloads))
            print(res["runs"][-1], flush=True)
            write_result("map_render", res)
    if len(res["runs"]) > 1:
        a0, a1 = res["runs"][0], res["runs"][-1]
        res["ratios"] = {f"render_{a1['points']}_over_{a0['points']}":
                         round(a1["reload_median_seconds"] / a0["reload_median_seconds"], 2),
                         f"lasso_server_{a1['points']}_over_{a0['points']}":
                         round(a1["lasso_server"]["resolve_median_seconds"]
                               / max(a0["lasso_server"]["resolve_median_seconds"], 1e-6), 2)}
    write_result("map_render", res)


if __name__ == "__main__":
    main()
