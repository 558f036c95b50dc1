"""Ticker: one ticker's sentiment and volume over time, its daily close when prices are
loaded (`finsent prices load`), and its latest documents (most negative first on demand)."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, data
from dashboard.timerange import time_range_picker
from dashboard.widgets import data_span_or_stop, documents_table

url = data.settings().database_url

st.title("Ticker drill-down")
oldest, newest = data_span_or_stop(url)
mv = data.model_version(url)

pick, rng = st.columns([2, 1])
with rng:
    tr = time_range_picker(oldest, newest, key="ticker_range")
active = data.ticker_activity(url, tr.start, tr.end)
if not active:
    st.info(f"No ticker is mentioned in {tr.label.lower()} of data; pick a longer range.")
    st.stop()
symbols = [r["ticker"] for r in active]
counts = {r["ticker"]: r["n"] for r in active}
wanted = st.query_params.get("ticker", "").upper()
with pick:
    ticker = st.selectbox(
        "Ticker (busiest first)",
        symbols,
        index=symbols.index(wanted) if wanted in symbols else 0,
        format_func=lambda s: f"{s} ({counts[s]:,} documents)",
        key="ticker_pick",
    )
st.query_params["ticker"] = ticker

timeline = data.ticker_timeline(url, ticker, tr.start, tr.end, mv, tr.bucket)
prices = data.price_series(url, ticker, tr.start.date(), tr.end.date())
n = sum(r["n"] for r in timeline)
mean = sum(r["mean_score"] * r["n"] for r in timeline) / n if n else 0.0
neg = sum(r["neg_share"] * r["n"] for r in timeline) / n if n else 0.0
c1, c2, c3, c4 = st.columns(4)
c1.metric("Documents", f"{n:,}")
c2.metric("Mean score", f"{mean:+.3f}")
c3.metric("Negative share", f"{neg:.0%}")
c4.metric("Last close", f"{prices[-1]['close']:.2f}" if prices else "no prices",
          help="Daily prices appear once loaded with `finsent prices load`.")

st.plotly_chart(
    charts.sentiment_with_volume(
        timeline, title=f"{ticker}: mean score and volume", prices=prices
    ),
    key="ticker_chart",
)
if not prices:
    st.caption("No daily prices for this ticker and range (`finsent prices load` adds them).")

st.subheader("Latest documents")
most_negative = st.toggle("Most negative first", key="most_negative")
docs = data.latest_documents(url, tr.start, tr.end, mv, ticker, most_negative)
documents_table(docs, key="ticker_docs")
