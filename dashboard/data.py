"""The dashboard's only way to the store: one cached engine per URL, cached query results.

``st.cache_resource`` keeps one engine (and its pool) per database URL for every session;
``st.cache_data(ttl=...)`` keeps query results briefly, keyed by their arguments, so ten
people on the market page cost one query per TTL. Writes (acknowledge, rules) clear the
caches they make stale. Every function takes the URL first so caches never mix stores.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import streamlit as st
from sqlalchemy.engine import Engine

from finsent.config import Settings, load_settings
from storage import queries
from storage.db import make_engine

PAGE_TTL_S = 15  # market and ticker pages: minutes-scale charts
LIVE_TTL_S = 1  # the live feed refreshes every couple of seconds
ALERTS_TTL_S = 3


def settings() -> Settings:
    """FINSENT_* from the environment (``finsent dashboard`` passes its flags that way)."""
    return load_settings()


@st.cache_resource(show_spinner=False)
def engine(url: str) -> Engine:
    return make_engine(url)


@st.cache_data(ttl=PAGE_TTL_S, show_spinner=False)
def span(url: str) -> tuple[datetime | None, datetime | None]:
    return queries.data_span(engine(url))


@st.cache_data(ttl=PAGE_TTL_S, show_spinner=False)
def model_version(url: str) -> str | None:
    return queries.current_model_version(engine(url))


@st.cache_data(ttl=PAGE_TTL_S, show_spinner=False)
def market_by_kind(url: str, start: datetime, end: datetime, mv: str | None, bucket: str) -> list:
    return queries.market_by_kind(engine(url), start, end, model_version=mv, bucket=bucket)


@st.cache_data(ttl=PAGE_TTL_S, show_spinner=False)
def top_movers(url: str, start: datetime, end: datetime, mv: str | None) -> list:
    return queries.top_movers(engine(url), start, end, model_version=mv)


@st.cache_data(ttl=PAGE_TTL_S, show_spinner=False)
def ticker_activity(url: str, start: datetime, end: datetime) -> list:
    return queries.ticker_activity(engine(url), start, end)


@st.cache_data(ttl=PAGE_TTL_S, show_spinner=False)
def ticker_timeline(
    url: str, ticker: str, start: datetime, end: datetime, mv: str | None, bucket: str
) -> list:
    return queries.ticker_timeline(
        engine(url), ticker, start, end, model_version=mv, bucket=bucket
    )


@st.cache_data(ttl=PAGE_TTL_S, show_spinner=False)
def price_series(url: str, ticker: str, start: date, end: date) -> list:
    return queries.price_series(engine(url), ticker, start, end)


@st.cache_data(ttl=PAGE_TTL_S, show_spinner=False)
def latest_documents(
    url: str,
    start: datetime,
    end: datetime,
    mv: str | None,
    ticker: str | None,
    most_negative: bool,
    limit: int = 50,
) -> list:
    return queries.latest_documents(
        engine(url), start, end, model_version=mv, ticker=ticker,
        most_negative=most_negative, limit=limit,
    )


@st.cache_data(ttl=LIVE_TTL_S, show_spinner=False)
def live_feed(url: str, limit: int) -> list:
    return queries.live_feed(engine(url), limit=limit)


@st.cache_data(ttl=ALERTS_TTL_S, show_spinner=False)
def alerts(url: str, status: str | None, limit: int = 200) -> list:
    return queries.list_alerts(engine(url), status=status, limit=limit)  # type: ignore[arg-type]


@st.cache_data(ttl=ALERTS_TTL_S, show_spinner=False)
def documents(url: str, ids: tuple[int, ...]) -> list:
    return queries.documents_by_ids(engine(url), list(ids))


@st.cache_data(ttl=ALERTS_TTL_S, show_spinner=False)
def rules(url: str) -> list:
    return queries.list_rules(engine(url))


@st.cache_data(ttl=300, show_spinner=False)
def schema(url: str) -> list:
    return queries.schema_listing(engine(url))


def newest_alert_id(url: str) -> int:
    """Uncached on purpose: the alerts page polls it to notice new alerts."""
    return queries.newest_alert_id(engine(url))


def alerts_changed() -> None:
    """After a write that changes alerts or rules: drop what the pages would show stale."""
    alerts.clear()
    rules.clear()


def frame_rows(rows: list[dict[str, Any]], columns: list[str]) -> list[dict[str, Any]]:
    """Only the columns a table shows, in order."""
    return [{c: r.get(c) for c in columns} for r in rows]
