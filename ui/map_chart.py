"""The corpus map as a plotly figure, and the points a user picked on it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ui.palettes import CLUSTER_PALETTE, NOISE, NOT_SELECTED, SELECTED
from ui.text import short


def _groups(pts: pd.DataFrame, colour_by: str, chosen_mask: np.ndarray, cluster_label: dict):
    """The colour group of each point and each group's legend name."""
    if colour_by == "cluster":
        groups = pts["cluster"].astype(int)
        return groups, {g: short(f"{g}: {cluster_label.get(g, '')}") for g in groups.unique()}
    if colour_by == "selection":
        groups = pd.Series(np.where(chosen_mask, "selected", "not selected"), index=pts.index)
        return groups, {"selected": "selected", "not selected": "not selected"}
    groups = pts[colour_by].fillna("?").astype(str)
    return groups, {g: g for g in groups.unique()}


def _colour(group, j: int) -> str:
    if group == "not selected":
        return NOT_SELECTED
    if group == "selected":
        return SELECTED
    return CLUSTER_PALETTE[j % len(CLUSTER_PALETTE)] if group != -1 else NOISE


@st.cache_resource(show_spinner=False, max_entries=8)
def map_figure(db: str, map_id: int, colour_by: str, highlight: int | None, _pts: pd.DataFrame,
               _chosen_mask: np.ndarray, _cluster_label: dict) -> go.Figure:
    """The map figure, built once per (map, colouring, highlighted selection): building 100k
    validated plotly points takes about a second, so reruns reuse it."""
    pts, chosen_mask = _pts, _chosen_mask
    fig = go.Figure()
    n = len(pts)
    size = 7 if n < 2_000 else 4 if n < 30_000 else 2.5
    groups, names = _groups(pts, colour_by, chosen_mask, _cluster_label)
    rows = np.arange(n)
    for j, g in enumerate(sorted(names, key=lambda v: (str(type(v)), v))):
        m = (groups == g).to_numpy()
        fig.add_trace(go.Scattergl(
            x=pts["x"].to_numpy()[m], y=pts["y"].to_numpy()[m], mode="markers", name=str(names[g]),
            marker=dict(size=size, color=_colour(g, j), opacity=0.75), customdata=rows[m],
            text=pts["func_name"].fillna("").to_numpy()[m],
            hovertemplate="%{text}<br>%{fullData.name}<extra></extra>"))
    if chosen_mask.any() and colour_by != "selection":
        fig.add_trace(go.Scattergl(
            x=pts["x"].to_numpy()[chosen_mask], y=pts["y"].to_numpy()[chosen_mask], mode="markers",
            name="selected", marker=dict(size=size + 5, color="rgba(0,0,0,0)", line=dict(width=1.5, color="black")),
            customdata=rows[chosen_mask], text=pts["func_name"].fillna("").to_numpy()[chosen_mask],
            hovertemplate="%{text}<br>selected<extra></extra>"))
    # Many clusters: the legend goes below the map in rows, so it never squeezes the map into a strip.
    n_traces = len(fig.data)
    legend = dict(itemsizing="constant", font=dict(size=11))
    height = 640
    if n_traces > 8:
        legend.update(orientation="h", x=0, xanchor="left", y=-0.01, yanchor="top", entrywidth=0.33,
                      entrywidthmode="fraction")
        height += 20 * -(-n_traces // 3)
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=10, b=0), dragmode="lasso", uirevision=str(map_id),
                      legend=legend, xaxis=dict(visible=False), yaxis=dict(visible=False))
    return fig


def picked_rows(points: list) -> list[int]:
    """Row numbers (the points' customdata) of the points in a plotly selection event."""
    out = []
    for p in points:
        cd = p.get("customdata")
        if isinstance(cd, (list, tuple)):
            cd = cd[0] if cd else None
        if cd is not None:
            out.append(int(cd))
    return sorted(set(out))
