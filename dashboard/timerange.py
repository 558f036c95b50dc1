"""The time-range selector shared by the market and ticker pages.

Ranges end at the newest document's ``event_at`` (data time, as the alert engine uses), not
at the wall clock: a replay of 2015 tweets shows 2015, and 'last 24 hours' means the last
24 hours of data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import streamlit as st

from storage.queries import Bucket, pick_bucket

RANGES: dict[str, timedelta | None] = {
    "Last hour": timedelta(hours=1),
    "Last 6 hours": timedelta(hours=6),
    "Last 24 hours": timedelta(days=1),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
    "All time": None,
}
DEFAULT_RANGE = "Last 24 hours"


@dataclass(frozen=True)
class TimeRange:
    label: str
    start: datetime  # excluded
    end: datetime  # included
    bucket: Bucket


def resolve_range(label: str, oldest: datetime, newest: datetime) -> TimeRange:
    """(start, end] for a range label, ending at the newest document."""
    length = RANGES[label]
    start = oldest - timedelta(seconds=1) if length is None else newest - length
    return TimeRange(label, start, newest, pick_bucket(start, newest))


def time_range_picker(oldest: datetime, newest: datetime, *, key: str) -> TimeRange:
    """A selectbox in the page header; the choice is kept per page in session state."""
    labels = list(RANGES)
    label = st.selectbox(
        "Time range",
        labels,
        index=labels.index(DEFAULT_RANGE),
        key=key,
        help="Ranges end at the newest document (data time), so replays of past data work.",
    )
    chosen = resolve_range(label, oldest, newest)
    st.caption(
        f"{chosen.start:%Y-%m-%d %H:%M} → {chosen.end:%Y-%m-%d %H:%M} UTC · "
        f"{chosen.bucket} buckets"
    )
    return chosen
