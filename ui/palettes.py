"""Colours the charts share."""
from __future__ import annotations

import numpy as np

# One colour per cluster, 40 of them (the most clusters an automatic map makes). Chosen by
# greedy farthest-point in CIELAB from an 18-level RGB grid, lightness 30..82 and chroma > 25
# (greys are kept for noise and unselected points), starting from plotly's blue: any two
# differ by ΔE76 ≥ 26 (the classic "tab20"-style lists repeat near-identical pairs at
# ΔE < 10). The first colours are the most distinct, so a small map gets the clearest ones.
# Past 40 clusters the colours cycle (the map then also writes each cluster's number on it).
CLUSTER_PALETTE = ["#1e78b4", "#00e100", "#ff0000", "#0000ff", "#ff1eb4", "#e1c378", "#00e1c3", "#871e2d",
                   "#005a00", "#ffb4e1", "#5a2da5", "#ff9600", "#b4d20f", "#e100ff", "#694b00", "#ff2d69",
                   "#2d7869", "#4bc35a", "#e187ff", "#ff8769", "#693c69", "#69d2f0", "#5a87ff", "#960078",
                   "#b47878", "#788700", "#b42d00", "#784bff", "#96c396", "#f0c300", "#b4b4ff", "#e15a96",
                   "#b42dc3", "#b4870f", "#b4d269", "#96875a", "#004ba5", "#2d965a", "#b469b4", "#693c2d"]
NOISE = "#bbbbbb"
SELECTED, NOT_SELECTED = "#d62728", "#d0d0d0"
# an example's review status on a corpus map: "unreviewed" is the Dataset page's name for an
# example nobody decided; the Map page splits it by the judge's verdict
REVIEW_STATUS = {"accepted": "#2ca02c", "rejected": "#d62728", "unreviewed": "#ff7f0e", "judge passed": "#1f77b4",
                 "judge failed": "#9467bd", "not judged": "#ff7f0e", "no example": "#d0d0d0"}


def srgb_to_lab(hex_colours: list[str]) -> np.ndarray:
    """CIELAB (D65) of '#rrggbb' colours, shape (n, 3)."""
    rgb = np.array([[int(h[i:i + 2], 16) / 255 for i in (1, 3, 5)] for h in hex_colours])
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = lin @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def min_colour_distance(hex_colours: list[str]) -> float:
    """Smallest ΔE76 between any two of the colours."""
    lab = srgb_to_lab(hex_colours)
    d = np.sqrt(((lab[:, None] - lab[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return float(d.min())
