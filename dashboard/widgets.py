"""Small pieces several pages share: the empty-store notice and the documents table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import streamlit as st

from dashboard import data

DOC_COLUMNS = ["event_at", "tickers", "kind", "source", "label", "score", "text"]


def data_span_or_stop(url: str) -> tuple[datetime, datetime]:
    """(oldest, newest) event_at, or a friendly notice and the end of the page."""
    oldest, newest = data.span(url)
    if oldest is None or newest is None:
        st.info(
            "No scored documents yet. Start the pipeline (`finsent up`) or replay a data set "
            "into Kafka; this page fills in as batches are committed."
        )
        st.stop()
    return oldest, newest


def documents_table(rows: list[dict[str, Any]], *, key: str, height: int | None = None) -> None:
    """Documents with their score, the text wide enough to read."""
    if not rows:
        st.caption("No documents.")
        return
    st.dataframe(
        data.frame_rows(rows, DOC_COLUMNS),
        key=key,
        hide_index=True,
        width="stretch",
        height=height or "auto",
        column_config={
            "event_at": st.column_config.DatetimeColumn("time (UTC)", format="YYYY-MM-DD HH:mm"),
            "score": st.column_config.ProgressColumn(
                "score", min_value=-1.0, max_value=1.0, format="%+.2f"
            ),
            "text": st.column_config.TextColumn("text", width="large"),
        },
    )
