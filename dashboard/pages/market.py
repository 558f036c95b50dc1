"""Market: the volume-weighted sentiment index over time, top movers, volume by source kind."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from dashboard import charts, data
from dashboard.timerange import time_range_picker
from dashboard.widgets import data_span_or_stop
from storage.queries import MOVERS_MAX_PERIOD, index_from_kinds

url = data.settings().database_url


def _span(length: timedelta) -> str:
    hours = length.total_seconds() / 3600
    return f"{round(hours / 24, 1):g} days" if hours >= 48 else f"{round(hours, 1):g} hours"


st.title("Market sentiment")
oldest, newest = data_span_or_stop(url)
mv = data.model_version(url)

head, side = st.columns([3, 1])
with side:
    tr = time_range_picker(oldest, newest, key="market_range")
by_kind = data.market_by_kind(url, tr.start, tr.end, mv, tr.bucket)
index_rows = index_from_kinds(by_kind)

n_docs = sum(r["n"] for r in index_rows)
mean = sum(r["mean_score"] * r["n"] for r in index_rows) / n_docs if n_docs else None
neg = sum(r["neg_share"] * r["n"] for r in index_rows) / n_docs if n_docs else None
open_alerts = len(data.alerts(url, "open"))
with head:
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Documents", f"{n_docs:,}")
    c2.metric("Market index", "n/a" if mean is None else f"{mean:+.3f}",
              help="Mean score of every document in the range (p_positive - p_negative); "
              "each document weighs one, so busy tickers and hours weigh more.")
    c3.metric("Negative share", "n/a" if neg is None else f"{neg:.0%}")
    c4.metric("Open alerts", open_alerts)
    st.caption(f"model {mv} · data up to {newest:%Y-%m-%d %H:%M} UTC")

if not index_rows:
    st.info(f"No documents in {tr.label.lower()} of data; pick a longer range.")
    st.stop()

st.plotly_chart(
    charts.sentiment_with_volume(index_rows, title="Sentiment index (volume-weighted mean score)"),
    key="market_index_chart",
)

left, right = st.columns(2)
with left:
    st.subheader("Top movers")
    period = min(tr.end - tr.start, MOVERS_MAX_PERIOD)
    st.caption(f"mean score of the last {_span(period)} against the {_span(period)} before")
    movers = data.top_movers(url, tr.start, tr.end, mv)
    if movers:
        st.plotly_chart(charts.movers_bar(movers), key="movers_chart")
        st.dataframe(
            data.frame_rows(movers, ["ticker", "mean_score", "prev_mean", "change", "n", "prev_n"]),
            hide_index=True,
            key="movers_table",
            column_config={
                c: st.column_config.NumberColumn(c, format="%+.3f")
                for c in ("mean_score", "prev_mean", "change")
            },
        )
    else:
        st.caption("Not enough documents per ticker in this and the previous period.")
with right:
    st.subheader("Volume by source kind")
    st.plotly_chart(charts.volume_by_kind(by_kind), key="volume_chart")
