"""The corpus map as a WebGL scatter component, and what a user did on it.

Why a component rather than st.plotly_chart: Streamlit's chart turns click events off while
the lasso tool is active, and reports a lasso as one JSON record per selected point (a
million records for a big lasso). This component (ui/map/component/index.html: plotly.js
scattergl inside a Streamlit component frame) receives the coordinates as raw float32 bytes
and sends back only small events: a clicked point, a lasso or box *shape* (resolved to
snippets on the server by core.maps.lasso), or a clicked cluster (legend entry or map label).
"""
from __future__ import annotations

import hashlib
import html
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.maps.lasso import PointIndex
from core.paths import cache_dir, private_dir
from ui.palettes import CLUSTER_PALETTE, NOISE, NOT_SELECTED, REVIEW_STATUS, SELECTED
from ui.text import short

HOVER_CODE_UP_TO = 20_000      # maps up to this size carry a code preview per point for the hover
DRAW_ALL_UP_TO = 200_000       # above: a density image of every point + a sample drawn as points
OVERVIEW_SAMPLE = 50_000       # (measured: plotly scattergl draws 100k points in ~1.5 s, 1M in ~7 s)
COMPONENT_DIR = Path(__file__).resolve().parent / "component"
_component = None


def _asset_dir() -> Path:
    """The component's files: our index.html plus the plotly.js that ships with plotly (copied,
    since Streamlit serves component files only from inside the component's folder), in a folder of
    this user's cache that only this user can write: a shared temp folder could be planted by
    another local user, whose page would then run with the app's origin."""
    import plotly
    page = (COMPONENT_DIR / "index.html").read_bytes()
    digest = hashlib.sha256(page + plotly.__version__.encode()).hexdigest()[:12]
    root = private_dir(cache_dir() / "map-component")
    out = root / digest
    if not (out / "plotly.min.js").exists():
        tmp = Path(tempfile.mkdtemp(prefix="tmp-", dir=root))
        (tmp / "index.html").write_bytes(page)
        shutil.copyfile(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", tmp / "plotly.min.js")
        try:
            tmp.rename(out)
        except OSError:   # another process made it first
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def map_component():
    global _component
    if _component is None:
        import streamlit.components.v1 as components
        _component = components.declare_component("shoal_map", path=str(_asset_dir()))
    return _component


# --------------------------------------------------------------------------- what is drawn

@dataclass
class MapDrawing:
    """Points in draw order (grouped by colour) and the arguments the component receives."""
    order: np.ndarray                 # draw position -> row of the point table
    args: dict = field(repr=False)

    def row_of(self, pos: int) -> int | None:
        return int(self.order[pos]) if 0 <= pos < len(self.order) else None


def colour_groups(pts: pd.DataFrame, colour_by: str, chosen_mask: np.ndarray, cluster_label: dict,
                  status: pd.Series | None = None) -> tuple[np.ndarray, list[dict]]:
    """A group number per point and the groups: [{"name", "colour", "cluster"}], legend order."""
    if colour_by == "cluster":
        codes = pts["cluster"].astype(int).to_numpy()
        keys = sorted(set(codes.tolist()), key=lambda c: (c == -1, c))
        groups = [{"name": html.escape(short(f"{c}: {cluster_label.get(c, '')}", 34)), "cluster": int(c),
                   "colour": NOISE if c == -1 else CLUSTER_PALETTE[c % len(CLUSTER_PALETTE)]} for c in keys]
        arr = np.array(keys)
        perm = np.argsort(arr)
        return perm[np.searchsorted(arr[perm], codes)], groups
    if colour_by == "selection":
        codes = np.where(chosen_mask, 1, 0)
        return codes, [{"name": "not selected", "colour": NOT_SELECTED, "cluster": None},
                       {"name": "selected", "colour": SELECTED, "cluster": None}]
    if colour_by == "review status":
        values = (status if status is not None else pd.Series("no example", index=pts.index)).fillna("no example")
        keys = [s for s in REVIEW_STATUS if s != "unreviewed" and (values == s).any()]
        lookup = {s: i for i, s in enumerate(keys)}
        return values.map(lookup).to_numpy(), [{"name": s, "colour": REVIEW_STATUS[s], "cluster": None}
                                               for s in keys]
    values = pts[colour_by].fillna("?").astype(str)
    keys = sorted(values.unique())
    lookup = {s: i for i, s in enumerate(keys)}
    # legend names are plotly's pseudo-HTML: sources and languages are data, shown as text
    return values.map(lookup).to_numpy(), [{"name": html.escape(short(s, 34)),
                                            "colour": CLUSTER_PALETTE[i % len(CLUSTER_PALETTE)],
                                            "cluster": None} for i, s in enumerate(keys)]


def cluster_label_positions(pts: pd.DataFrame, cluster_label: dict, width: int = 26) -> list[dict]:
    """Where each cluster's name is written on the map: the median of its points."""
    out = []
    for c, grp in pts.groupby("cluster"):
        if int(c) == -1:
            continue
        out.append({"cluster": int(c), "x": float(grp["x"].median()), "y": float(grp["y"].median()),
                    "text": html.escape(short(f"{int(c)}: {cluster_label.get(int(c), '')}", width))})
    return out


def hover_texts(names: list, previews: list[str]) -> list[str]:
    """Hover labels (plotly's pseudo-HTML): the function name, then the first lines of code."""
    out = []
    for name, code in zip(names, previews):
        head = f"<b>{html.escape(str(name))}</b><br>" if isinstance(name, str) and name else ""
        out.append(head + html.escape(code or "").replace("\n", "<br>"))
    return out


def drawn_rows(n: int, view_rows: np.ndarray | None, seed: int = 0) -> np.ndarray | None:
    """Which rows are drawn as points: all up to DRAW_ALL_UP_TO; above, a seeded sample of
    OVERVIEW_SAMPLE of the rows in view (the whole map until the user zooms), so zooming in far
    enough draws every point there. None = all rows."""
    rows = np.arange(n) if view_rows is None else np.asarray(view_rows)
    if len(rows) <= DRAW_ALL_UP_TO:
        return None if view_rows is None else rows
    keep = np.random.default_rng(seed).choice(len(rows), OVERVIEW_SAMPLE, replace=False)
    return np.sort(rows[keep])


def density_image(x: np.ndarray, y: np.ndarray, codes: np.ndarray, colours: list[str], extent: tuple,
                  width: int = 1400, height: int = 900) -> str:
    """Every point as one pixel of its group's colour, denser pixels more opaque: a PNG data URL
    drawn under the sampled points of a big map, so the overview still shows all of them."""
    import base64
    import io

    from PIL import Image
    x0, x1, y0, y1 = extent
    px = np.clip(((x - x0) / max(x1 - x0, 1e-12) * (width - 1)).astype(np.int64), 0, width - 1)
    py = np.clip(((y1 - y) / max(y1 - y0, 1e-12) * (height - 1)).astype(np.int64), 0, height - 1)
    pix = py * width + px
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in colours], dtype=np.uint8)
    img = np.zeros((width * height, 4), dtype=np.uint8)
    img[pix, :3] = rgb[codes]                      # one point's colour per pixel (the last drawn)
    count = np.bincount(pix, minlength=width * height).astype(np.float64)
    alpha = np.where(count > 0, 90 + 165 * np.log1p(count) / np.log1p(max(count.max(), 1)), 0)
    img[:, 3] = alpha.astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img.reshape(height, width, 4), "RGBA").save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def drawing(pts: pd.DataFrame, codes: np.ndarray, groups: list[dict], *, data_key: str,
            chosen_mask: np.ndarray, labels: list[dict], hover: list[str] | None = None,
            highlight_name: str = "selected", height: int = 680, dragmode: str = "lasso",
            rows: np.ndarray | None = None, overview: str | None = None, ui_key: str = "") -> MapDrawing:
    """Arguments for the component: coordinates as float32 bytes in draw order (grouped).

    `rows`: the rows drawn as points (None = all; see `drawn_rows`); `overview`: a density image
    of every point (`density_image`), drawn beneath them.
    """
    n = len(pts)
    x_all, y_all = pts["x"].to_numpy(np.float32), pts["y"].to_numpy(np.float32)
    rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    order = rows[np.argsort(codes[rows], kind="stable")]
    bounds = np.searchsorted(codes[order], np.arange(len(groups) + 1))
    xy = np.concatenate([x_all[order], y_all[order]])
    draw_groups = [{**g, "start": int(bounds[i]), "end": int(bounds[i + 1])}
                   for i, g in enumerate(groups) if bounds[i + 1] > bounds[i]]
    chosen = np.flatnonzero(chosen_mask)
    highlight = np.concatenate([x_all[chosen], y_all[chosen]]).astype(np.float32)
    size = 7 if n < 2_000 else 4 if n < 30_000 else 2.5 if len(order) < 300_000 else 1.5
    pad_x, pad_y = 0.02 * float(np.ptp(x_all) or 1), 0.02 * float(np.ptp(y_all) or 1)
    extent = (float(x_all.min()) - pad_x, float(x_all.max()) + pad_x, float(y_all.min()) - pad_y,
              float(y_all.max()) + pad_y) if n else (0.0, 1.0, 0.0, 1.0)
    hover_drawn = [hover[i] for i in order] if hover is not None and len(hover) == n else None
    args = {"xy": xy.tobytes(), "groups": draw_groups, "labels": labels, "size": size, "height": height,
            "dragmode": dragmode, "data_key": data_key, "highlight": highlight.tobytes(),
            "overlay_key": hashlib.sha1(highlight.tobytes()).hexdigest()[:12], "highlight_name": html.escape(highlight_name),
            "hover": hover_drawn, "n_total": n, "extent": list(extent), "overview": overview,
            "track_view": n > DRAW_ALL_UP_TO, "ui_key": ui_key or data_key}
    return MapDrawing(order, args)


# --------------------------------------------------------------------------- what the user did

@dataclass
class ChartState:
    """The chart's lasting effect on the page: the point shown, the area that limits the pool."""
    clicked_row: int | None = None
    area_rows: np.ndarray | None = None
    area_kind: str | None = None      # "lasso" | "box"
    view: tuple | None = None         # (x range, y range) the user zoomed to; None = the whole map
    last_event: float | None = None


def apply_event(state: ChartState, event: dict | None, drawing_: MapDrawing,
                index: PointIndex) -> tuple[ChartState, int | None]:
    """Fold one component event into the state; returns (state, cluster clicked or None).

    Events repeat (the component keeps its last value across reruns): one already applied,
    recognised by its time stamp, changes nothing.
    """
    if not event or event.get("t") == state.last_event:
        return state, None
    state.last_event = event.get("t")
    kind = event.get("kind")
    if kind == "click":
        state.clicked_row = drawing_.row_of(int(event.get("pos", -1)))
    elif kind == "lasso":
        state.area_rows, state.area_kind = index.in_polygon(event["x"], event["y"]), "lasso"
    elif kind == "box":
        state.area_rows, state.area_kind = index.in_box(event["x"], event["y"]), "box"
    elif kind == "clear":
        state.area_rows, state.area_kind = None, None
    elif kind == "view":
        state.view = None if event.get("reset") else (tuple(event["x"]), tuple(event["y"]))
    elif kind == "cluster" and event.get("cluster") is not None:
        return state, int(event["cluster"])
    return state, None


def toggle(values: list[int], item: int) -> list[int]:
    """`values` with `item` added (kept sorted) or, if present, removed."""
    return [v for v in values if v != item] if item in values else sorted([*values, item])
