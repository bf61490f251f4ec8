"""Which map points lie inside a lasso (a polygon) or a box drawn on the map.

The browser sends only the shape; the points are resolved here, on numpy arrays, so a lasso
over a million points never travels as a million point records. `PointIndex` sorts the
points by y once; the even-odd ray cast then visits, for each polygon edge, only the points
whose y lies in that edge's band (a contiguous slice of the sorted order): the work is about
the number of (point, edge) crossings, not points x edges.
"""
from __future__ import annotations

import numpy as np


class PointIndex:
    """Map coordinates sorted by y, for fast polygon and box queries (build once per map)."""

    def __init__(self, x, y):
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.shape != y.shape or x.ndim != 1:
            raise ValueError("x and y must be 1-D arrays of the same length")
        self.n = len(x)
        self.order = np.argsort(y, kind="stable")
        self.xs = x[self.order]
        self.ys = y[self.order]

    def in_polygon(self, px, py) -> np.ndarray:
        """Row numbers (ascending) of the points inside the polygon (even-odd rule).

        A point exactly on a horizontal boundary counts for the lower edge only (half-open
        bands), so two polygons that share an edge never both claim a point.
        """
        px = np.asarray(px, dtype=np.float64)
        py = np.asarray(py, dtype=np.float64)
        if len(px) < 3 or len(px) != len(py):
            return np.zeros(0, dtype=np.int64)
        inside = np.zeros(self.n, dtype=bool)
        x0s, y0s = px, py
        x1s, y1s = np.roll(px, -1), np.roll(py, -1)   # closes the polygon
        for x0, y0, x1, y1 in zip(x0s, y0s, x1s, y1s):
            if y0 == y1:
                continue
            lo, hi = (y0, y1) if y0 < y1 else (y1, y0)
            a = int(np.searchsorted(self.ys, lo, side="left"))
            b = int(np.searchsorted(self.ys, hi, side="left"))
            if a == b:
                continue
            cross_x = x0 + (self.ys[a:b] - y0) * ((x1 - x0) / (y1 - y0))
            inside[a:b] ^= self.xs[a:b] < cross_x
        return np.sort(self.order[inside])

    def in_box(self, x_range, y_range) -> np.ndarray:
        """Row numbers (ascending) of the points inside a box (edges included)."""
        xa, xb = sorted(float(v) for v in x_range)
        ya, yb = sorted(float(v) for v in y_range)
        a = int(np.searchsorted(self.ys, ya, side="left"))
        b = int(np.searchsorted(self.ys, yb, side="right"))
        xs = self.xs[a:b]
        return np.sort(self.order[a:b][(xs >= xa) & (xs <= xb)])


def points_in_polygon(x, y, px, py) -> np.ndarray:
    """One-off form of `PointIndex(x, y).in_polygon(px, py)`."""
    return PointIndex(x, y).in_polygon(px, py)
