"""Colours the charts share."""
from __future__ import annotations

# one colour per cluster (cycled past 40); noise points (cluster -1) are grey
CLUSTER_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                   "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
                   "#e6550d", "#31a354", "#756bb1", "#636363", "#6baed6", "#fd8d3c", "#74c476", "#9e9ac8",
                   "#969696", "#9c9ede", "#cedb9c", "#e7cb94", "#e7969c", "#de9ed6", "#08519c", "#a63603",
                   "#006d2c", "#54278f", "#252525", "#4292c6", "#f16913", "#41ab5d", "#807dba", "#737373"]
NOISE = "#bbbbbb"
SELECTED, NOT_SELECTED = "#d62728", "#d0d0d0"
# an example's review status on the corpus map (Dataset page)
REVIEW_STATUS = {"accepted": "#2ca02c", "rejected": "#d62728", "unreviewed": "#ff7f0e", "no example": "#d0d0d0"}
