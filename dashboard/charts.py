"""Plotly figures from query rows; plain functions, no Streamlit, so tests can build them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

NEGATIVE = "#d62728"
POSITIVE = "#2ca02c"
VOLUME = "rgba(120, 120, 160, 0.35)"
KIND_COLORS = {"news": "#1f77b4", "comment": "#ff7f0e"}


def _layout(fig: go.Figure, height: int = 360) -> go.Figure:
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        # below the plot: the title holds the top left, the tool bar the top right
        legend={"orientation": "h", "y": -0.2, "yanchor": "top", "x": 0, "xanchor": "left"},
        hovermode="x unified",
    )
    return fig


def sentiment_with_volume(
    rows: Sequence[dict[str, Any]], *, title: str, prices: Sequence[dict[str, Any]] = ()
) -> go.Figure:
    """Mean score over time (top, fixed [-1, 1] axis) with the daily close on the right axis
    when ``prices`` are given, and document volume as bars underneath on its own axis."""
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.04,
        specs=[[{"secondary_y": True}], [{}]],
    )
    x = [r["bucket"] for r in rows]
    fig.add_trace(
        go.Scatter(
            x=x, y=[r["mean_score"] for r in rows], name="mean score", mode="lines+markers",
            line={"color": "#444", "width": 2}, marker={"size": 4},
        ),
        row=1, col=1, secondary_y=False,
    )
    fig.add_hline(y=0, line_dash="dot", line_color="#999", row=1, col=1)
    if prices:
        fig.add_trace(
            go.Scatter(
                x=[p["day"] for p in prices], y=[p["close"] for p in prices],
                name="close (daily)", mode="lines+markers", line={"color": "#1f77b4", "width": 1.5},
                marker={"size": 5},
            ),
            row=1, col=1, secondary_y=True,
        )
        fig.update_yaxes(title_text="close", secondary_y=True, showgrid=False, row=1, col=1)
    fig.add_trace(
        go.Bar(x=x, y=[r["n"] for r in rows], name="documents", marker_color=VOLUME),
        row=2, col=1,
    )
    fig.update_yaxes(title_text="mean score", range=[-1.05, 1.05], secondary_y=False, row=1, col=1)
    fig.update_yaxes(title_text="docs", row=2, col=1)
    fig.update_layout(title={"text": title, "x": 0, "font": {"size": 14}})
    return _layout(fig, height=420)


def movers_bar(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """Change of mean score per ticker versus the previous period, red down, green up."""
    tickers = [r["ticker"] for r in rows][::-1]
    change = [r["change"] for r in rows][::-1]
    fig = go.Figure(
        go.Bar(
            x=change, y=tickers, orientation="h",
            marker_color=[NEGATIVE if c < 0 else POSITIVE for c in change],
            text=[f"{c:+.2f}" for c in change], textposition="auto",
        )
    )
    fig.update_xaxes(title_text="change of mean score vs previous period")
    return _layout(fig, height=max(220, 28 * len(rows) + 60))


def volume_by_kind(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """Stacked document counts per source kind."""
    fig = go.Figure()
    for kind in sorted({r["kind"] for r in rows}):
        part = [r for r in rows if r["kind"] == kind]
        fig.add_trace(
            go.Bar(
                x=[r["bucket"] for r in part], y=[r["n"] for r in part], name=kind,
                marker_color=KIND_COLORS.get(kind),
            )
        )
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title_text="documents")
    return _layout(fig, height=280)
